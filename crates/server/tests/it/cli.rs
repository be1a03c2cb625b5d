//! The command line: help texts, `config check`/`reference`, and `serve` with no
//! configuration at all.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::harness::run_cli;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn help_names_every_command() {
    let out = run_cli(&["--help"], &[], None);
    assert!(out.status.success());
    let help = text(&out);
    for cmd in ["serve", "migrate", "secrets", "config", "tenant", "user"] {
        assert!(help.contains(cmd), "--help lacks {cmd}: {help}");
    }
    let out = run_cli(&["user", "import", "--help"], &[], None);
    assert!(out.status.success());
    let help = text(&out);
    assert!(
        help.contains("--format") && help.contains("bcrypt"),
        "{help}"
    );
}

#[test]
fn config_check_explains_each_problem() {
    let env = vec![
        ("AEGIS_LISTEN".to_string(), "nowhere".to_string()),
        ("AEGIS_PASSWORD_MIN_STRENGTH".to_string(), "9".to_string()),
    ];
    let out = run_cli(&["config", "check"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    assert!(msg.contains("listen: 'nowhere' is not an address"), "{msg}");
    assert!(
        msg.contains("password.min_strength: must be 0..=4"),
        "{msg}"
    );

    let env = vec![(
        "AEGIS_SESSION_IDLE_TIMEOUT_SECS".to_string(),
        "soon".to_string(),
    )];
    let out = run_cli(&["config", "check"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("AEGIS_SESSION_IDLE_TIMEOUT_SECS: expected an integer"),
        "{}",
        text(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aegis.toml");
    std::fs::write(&file, "[session]\nidle_timout_secs = 5\n").unwrap();
    let out = run_cli(
        &["--config", file.to_str().unwrap(), "config", "check"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("idle_timout_secs"), "{}", text(&out));
}

#[test]
fn config_reference_lists_every_environment_variable() {
    let out = run_cli(&["config", "reference"], &[], None);
    assert!(out.status.success());
    let reference = text(&out);
    for var in [
        "AEGIS_DATABASE_URL",
        "AEGIS_SECRET_KEY",
        "AEGIS_SESSION_IDLE_TIMEOUT_SECS",
        "AEGIS_CORS_ALLOWED_ORIGINS",
        "AEGIS_HTTP_MAX_BODY_BYTES",
    ] {
        assert!(reference.contains(var), "reference lacks {var}");
    }
    // The README documents the same keys.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for line in reference.lines().filter_map(|l| l.strip_prefix("#   ")) {
        let key = line.split_whitespace().next().unwrap();
        assert!(
            readme.contains(&format!("`{key}`")),
            "README lacks key {key}"
        );
    }
}

#[test]
fn serve_without_configuration_uses_an_sqlite_file_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line:?}");
    assert!(dir.path().join("aegis.db").exists());
    let out = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["tenant", "list"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("default\t"),
        "{}",
        text(&out)
    );
}
