//! Password reset against a real SMTP server on loopback (Python's aiosmtpd, installed by
//! the test setup): identical answers for known and unknown addresses, the code arrives
//! by mail, only the newest code works and only once, and using it sets the password and
//! ends every session. Without SMTP, development mail lands in a folder.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Server, cookie};

/// An aiosmtpd server on a free loopback port, which it prints, storing each message in
/// the maildir named by its argument.
const SINK: &str = r#"
import asyncio, sys
from aiosmtpd.smtp import SMTP
from aiosmtpd.handlers import Mailbox

async def main():
    handler = Mailbox(sys.argv[1])
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// An SMTP sink writing each message into a maildir.
struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    fn start(test: &str) -> Option<SmtpSink> {
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            assert!(
                std::env::var("AEGIS_TEST_REQUIRE_SERVICES").is_err(),
                "aiosmtpd is required (python3 -m pip install aiosmtpd)"
            );
            eprintln!("SKIPPED: recovery::{test} (python3 with aiosmtpd not available)");
            return None;
        }
        // The sink binds a free port itself and prints it: choosing a port here and
        // handing it over would leave a moment in which a test running beside this one
        // could take the same port, and both would then read one sink's mail.
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .args(["-c", SINK])
            .arg(dir.path().join("box"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the sink's standard output");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the sink's port");
        let port: u16 = line.trim().parse().expect("aiosmtpd did not start");
        Some(SmtpSink { port, dir, child })
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn messages(&self) -> Vec<String> {
        read_dir_texts(&self.dir.path().join("box").join("new"))
    }

    /// The password-reset mails among the messages.
    fn resets(&self) -> Vec<String> {
        only_resets(self.messages())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_dir_texts(dir: &Path) -> Vec<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    // In delivery order (maildir names do not sort by time).
    paths.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// Waits until `count` messages are there and returns them.
async fn wait_for(get: impl Fn() -> Vec<String>, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = get();
        if m.len() >= count || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn only_resets(messages: Vec<String>) -> Vec<String> {
    messages
        .into_iter()
        .filter(|m| m.contains("Reset code: "))
        .collect()
}

fn reset_code(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.strip_prefix("Reset code: "))
        .expect("a reset code in the mail")
        .trim()
        .to_string()
}

async fn request(s: &Server, email: &str) -> (u16, String) {
    let r = s
        .req(
            "POST",
            "/api/v1/password/reset/request",
            Some(&json!({"email": email})),
            &[],
        )
        .await;
    (r.status, r.text)
}

async fn reset(s: &Server, token: &str, password: &str) -> u16 {
    s.req(
        "POST",
        "/api/v1/password/reset",
        Some(&json!({"token": token, "new_password": password})),
        &[],
    )
    .await
    .status
}

const NEW_PASSWORD: &str = "a whole new passphrase 77";

async fn reset_by_mail(db: Db) {
    let Some(sink) = SmtpSink::start("reset_by_mail") else {
        return;
    };
    let url = sink.url();
    let s = Server::start(db, &[("AEGIS_MAIL_SMTP_URL", &url)]).await;
    let (token_a, _) = s.signed_in("zoe@example.com").await;
    let token_b = s
        .login("", "zoe@example.com", PASSWORD)
        .await
        .session_cookie()
        .unwrap();

    // Same answer, byte for byte, for an address with and without an account.
    let known = request(&s, "zoe@example.com").await;
    let unknown = request(&s, "nobody@example.com").await;
    assert_eq!(known.0, 202);
    assert_eq!(known, unknown, "no account enumeration");
    let first = reset_code(&wait_for(|| sink.resets(), 1).await[0]);
    assert!(!first.is_empty());

    // A second request kills the first code.
    assert_eq!(request(&s, "zoe@example.com").await.0, 202);
    let mails = wait_for(|| sink.resets(), 2).await;
    assert_eq!(mails.len(), 2, "the unknown address got no mail");
    assert!(mails.iter().all(|m| m.contains("zoe@example.com")));
    let second = reset_code(&mails[1]);
    assert_ne!(first, second);
    assert_eq!(
        reset(&s, &first, NEW_PASSWORD).await,
        422,
        "old code is dead"
    );
    assert_eq!(
        reset(&s, &second, "weak").await,
        422,
        "policy still applies"
    );
    let stored: i64 =
        s.db.scalar_i64("SELECT COUNT(*) FROM email_tokens WHERE purpose = 'password_reset'")
            .await;
    assert_eq!(stored, 1, "a refused password leaves the code usable");
    assert_eq!(reset(&s, &second, NEW_PASSWORD).await, 204);
    assert_eq!(
        reset(&s, &second, NEW_PASSWORD).await,
        422,
        "a code works once"
    );

    // Every session is gone, the old password is refused, the new one works.
    for t in [&token_a, &token_b] {
        let r = s
            .req("GET", "/api/v1/session", None, &[("cookie", &cookie(t))])
            .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(s.login("", "zoe@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        s.login("", "zoe@example.com", NEW_PASSWORD).await.status,
        200
    );
    let count = |a: &'static str| {
        let db = s.db.clone();
        async move {
            db.scalar_i64(&format!(
                "SELECT COUNT(*) FROM audit_events WHERE action = '{a}'"
            ))
            .await
        }
    };
    assert_eq!(count("password.reset").await, 1);
    assert_eq!(count("password.reset_request").await, 3);
    let tokens =
        s.db.blobs("SELECT token_hash FROM email_tokens WHERE purpose = 'password_reset'")
            .await;
    assert!(tokens.is_empty(), "used codes are deleted");
}
both_backends!(reset_by_mail);

/// Without SMTP in development, mail is written to `mail.dir`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mail_goes_to_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    let s = Server::start(
        Db::Sqlite,
        &[("AEGIS_MAIL_DIR", mail_dir.to_str().unwrap())],
    )
    .await;
    s.register("", "yan@example.com").await;
    assert_eq!(request(&s, "yan@example.com").await.0, 202);
    // The registration's verification mail, then the reset mail.
    let mails = only_resets(wait_for(|| read_dir_texts(&mail_dir), 2).await);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: yan@example.com"));
    let code = reset_code(&mails[0]);
    assert_eq!(reset(&s, &code, NEW_PASSWORD).await, 204);
}

fn verification_code(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.strip_prefix("Verification code: "))
        .expect("a verification code in the mail")
        .trim()
        .to_string()
}

/// Register → verification mail → (sign-in refused while unverified, under the tenant
/// policy) → verify → sign in.
async fn email_verification(db: Db) {
    let Some(sink) = SmtpSink::start("email_verification") else {
        return;
    };
    let url = sink.url();
    let s = Server::start(db, &[("AEGIS_MAIL_SMTP_URL", &url)]).await;
    s.create_admin("boss@example.com");
    let r = s.login("", "boss@example.com", PASSWORD).await;
    let admin = cookie(&r.session_cookie().unwrap());
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    let h = [("cookie", admin.as_str()), ("x-csrf-token", csrf.as_str())];
    let p = s
        .req(
            "PUT",
            "/api/v1/admin/email-policy",
            Some(&json!({"require_verified": true})),
            &h,
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);

    let reg = s.register("", "una@example.com").await;
    assert_eq!(reg.json()["user"]["email_verified"], false);
    let first = verification_code(&wait_for(|| sink.messages(), 1).await[0]);
    let refused = s.login("", "una@example.com", PASSWORD).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("not verified")
    );
    assert!(refused.header("set-cookie").is_none());

    // Resend: same answer for every address; only the unverified account gets mail,
    // and its new code replaces the first.
    let resend = |email: &'static str| {
        let s = &s;
        async move {
            let r = s
                .req(
                    "POST",
                    "/api/v1/email/verify/resend",
                    Some(&json!({"email": email})),
                    &[],
                )
                .await;
            (r.status, r.text)
        }
    };
    let a = resend("una@example.com").await;
    let b = resend("nobody@example.com").await;
    let c = resend("boss@example.com").await;
    assert_eq!(a.0, 202);
    assert!(a == b && b == c, "identical answers");
    let mails = wait_for(|| sink.messages(), 2).await;
    assert_eq!(mails.len(), 2);
    let second = verification_code(&mails[1]);
    let verify = |token: String| {
        let s = &s;
        async move {
            s.req(
                "POST",
                "/api/v1/email/verify",
                Some(&json!({"token": token})),
                &[],
            )
            .await
            .status
        }
    };
    assert_eq!(
        verify(first).await,
        422,
        "the first code died with the resend"
    );
    assert_eq!(verify(second.clone()).await, 204);
    assert_eq!(verify(second).await, 422, "a code works once");
    let ok = s.login("", "una@example.com", PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["user"]["email_verified"], true);
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'email.verified'")
            .await,
        1
    );
}
both_backends!(email_verification);
