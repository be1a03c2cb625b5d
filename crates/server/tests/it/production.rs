//! Production mode refuses insecure configuration: exit code 1, one line per problem.

use crate::harness::{SECRET, run_cli};

fn secure_env(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("AEGIS_MODE".into(), "production".into()),
        ("AEGIS_SECRET_KEY".into(), SECRET.into()),
        ("AEGIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into()),
        (
            "AEGIS_MAIL_SMTP_URL".into(),
            "smtps://aegis:pw@mail.internal:465".into(),
        ),
        (
            "AEGIS_ENCRYPTION_KEYS".into(),
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into(),
        ),
        (
            "AEGIS_DATABASE_URL".into(),
            format!("sqlite://{}", dir.join("prod.db").display()),
        ),
        ("AEGIS_LISTEN".into(), "127.0.0.1:0".into()),
    ]
}

/// Runs `aegis serve` with one setting changed and returns (exit code, stderr).
fn serve_with(change: &[(&str, Option<&str>)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = secure_env(dir.path());
    for (k, v) in change {
        env.retain(|(key, _)| key != k);
        if let Some(v) = v {
            env.push((k.to_string(), v.to_string()));
        }
    }
    let out = run_cli(&["serve"], &env, None);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(change: &[(&str, Option<&str>)], expected: &str) {
    let (code, stderr) = serve_with(change);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in {stderr}"
    );
    assert!(!stderr.contains(SECRET), "secrets never printed");
}

#[test]
fn secure_configuration_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(&["config", "check"], &secure_env(dir.path()), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("configuration ok"));
    assert!(!stdout.contains(SECRET), "the secret is redacted");
}

#[test]
fn refuses_insecure_cookie() {
    assert_refused(
        &[("AEGIS_SESSION_COOKIE_SECURE", Some("false"))],
        "session.cookie_secure",
    );
}

#[test]
fn refuses_missing_secret() {
    assert_refused(&[("AEGIS_SECRET_KEY", None)], "secret_key: missing");
}

#[test]
fn refuses_short_secret() {
    assert_refused(
        &[("AEGIS_SECRET_KEY", Some("abc123"))],
        "secret_key: too short",
    );
}

#[test]
fn refuses_known_default_secret() {
    assert_refused(
        &[(
            "AEGIS_SECRET_KEY",
            Some("changeme-changeme-changeme-changeme-1234"),
        )],
        "secret_key: a known default",
    );
}

#[test]
fn refuses_plaintext_postgres() {
    assert_refused(
        &[(
            "AEGIS_DATABASE_URL",
            Some("postgres://aegis@db.internal/aegis?sslmode=prefer"),
        )],
        "database_url: PostgreSQL connections must use TLS",
    );
}

#[test]
fn refuses_wildcard_cors_with_credentials() {
    assert_refused(
        &[("AEGIS_CORS_ALLOWED_ORIGINS", Some("*"))],
        "cors: allowed_origins contains '*'",
    );
}

#[test]
fn refuses_plain_http_without_trusted_proxy() {
    assert_refused(
        &[("AEGIS_TRUSTED_PROXIES", None)],
        "listen: Aegis serves plain HTTP",
    );
}

#[test]
fn refuses_debug() {
    assert_refused(&[("AEGIS_DEBUG", Some("true"))], "debug: must be false");
}

#[test]
fn reports_every_problem_at_once() {
    let (code, stderr) = serve_with(&[
        ("AEGIS_SECRET_KEY", None),
        ("AEGIS_SESSION_COOKIE_SECURE", Some("false")),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("secret_key") && stderr.contains("cookie_secure"),
        "{stderr}"
    );
}

#[test]
fn development_allows_insecure_cookie_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = secure_env(dir.path());
    env.retain(|(k, _)| k != "AEGIS_MODE");
    env.push(("AEGIS_SESSION_COOKIE_SECURE".into(), "false".into()));
    let out = run_cli(&["config", "check"], &env, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_generate_prints_a_strong_key() {
    let out = run_cli(&["secrets", "generate"], &[], None);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("AEGIS_SECRET_KEY="))
        .expect("env line");
    assert_eq!(key.len(), 64);
    assert!(aegis::config::weak_secret(key).is_none());
}

#[test]
fn refuses_plaintext_redis() {
    assert_refused(
        &[("AEGIS_REDIS_URL", Some("redis://cache.internal:6379"))],
        "redis_url: Redis connections must use TLS in production (rediss://)",
    );
}

#[test]
fn refuses_missing_encryption_keys() {
    assert_refused(
        &[("AEGIS_ENCRYPTION_KEYS", None)],
        "encryption.keys: missing",
    );
}

#[test]
fn refuses_plaintext_smtp() {
    assert_refused(
        &[("AEGIS_MAIL_SMTP_URL", Some("smtp://mail.internal:25"))],
        "mail.smtp_url: SMTP must use TLS in production",
    );
}

#[test]
fn refuses_plain_http_public_url() {
    assert_refused(
        &[("AEGIS_PUBLIC_URL", Some("http://auth.example.com"))],
        "public_url: must be https:// in production",
    );
    assert_refused(
        &[("AEGIS_PUBLIC_URL", Some("https://auth.example.com/?x=1"))],
        "public_url: 'https://auth.example.com/?x=1' is not a URL",
    );
    assert_refused(
        &[(
            "AEGIS_OIDC_RETURN_TO_ORIGINS",
            Some("https://app.example.com/path"),
        )],
        "oidc.return_to_origins",
    );
}
