//! MFA through the real server, with codes from an independent implementation
//! (Python's pyotp, installed by the test setup): enrollment confirmed only by a valid
//! code, two-step login, one use per time step, ±1 step accepted and ±2 refused, backup
//! codes single-use and replaced on regeneration, disabling, the secret stored only as
//! ciphertext bound to its row, and key rotation.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::both_backends;
use crate::harness::{Db, PASSWORD, Resp, Server, cookie};

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const K2: &str = "k2:HxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo";

/// Whether pyotp is importable; without it the test reports itself skipped (or fails
/// when AEGIS_TEST_REQUIRE_SERVICES is set, as in CI, whose setup installs it).
fn pyotp_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pyotp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("AEGIS_TEST_REQUIRE_SERVICES").is_err(),
            "pyotp is required (python3 -m pip install pyotp)"
        );
        eprintln!("SKIPPED: mfa::{test} (python3 with pyotp not available)");
    }
    ok
}

/// The code pyotp computes for a time step.
fn pyotp_code(secret: &str, step: u64) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &(step * 30).to_string(),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn now_step() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// Hands out codes for steps the server has not seen yet, within its ±1 window.
struct Authenticator {
    secret: String,
    last: u64,
}

impl Authenticator {
    /// The earliest unused step in [now-1, now+1]; waits for time to move if all three
    /// were used.
    async fn next_code(&mut self) -> String {
        loop {
            let now = now_step();
            if let Some(step) = (now - 1..=now + 1).find(|s| *s > self.last) {
                self.last = step;
                return pyotp_code(&self.secret, step);
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

async fn post(s: &Server, path: &str, body: Value, token: &str, csrf: &str) -> Resp {
    let c = cookie(token);
    s.req(
        "POST",
        path,
        Some(&body),
        &[("cookie", c.as_str()), ("x-csrf-token", csrf)],
    )
    .await
}

async fn count(s: &Server, action: &str) -> i64 {
    s.db.scalar_i64(&format!(
        "SELECT COUNT(*) FROM audit_events WHERE action = '{action}'"
    ))
    .await
}

/// Password step then second step; returns the second step's answer.
async fn two_step(s: &Server, email: &str, second: Value) -> Resp {
    let first = s.login("", email, PASSWORD).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json()["mfa_required"], true);
    assert!(
        first.header("set-cookie").is_none(),
        "no session before the second step"
    );
    let mut body = second;
    body["mfa_token"] = first.json()["mfa_token"].clone();
    s.req("POST", "/api/v1/login/mfa", Some(&body), &[]).await
}

async fn totp_enrollment_and_two_step_login(db: Db) {
    if !pyotp_available("totp_enrollment_and_two_step_login") {
        return;
    }
    let s = Server::start(db, &[("AEGIS_ENCRYPTION_KEYS", K1)]).await;
    let (token, csrf) = s.signed_in("mia@example.com").await;

    // Enrollment: a secret, its otpauth URI and a QR code; stored only encrypted.
    let e = post(&s, "/api/v1/mfa/totp/enroll", json!({}), &token, &csrf).await;
    assert_eq!(e.status, 200, "{}", e.text);
    let secret = e.json()["secret"].as_str().unwrap().to_string();
    let uri = e.json()["otpauth_uri"].as_str().unwrap().to_string();
    assert!(
        uri.starts_with("otpauth://totp/Aegis:mia%40example.com?secret="),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret}&")));
    assert!(e.json()["qr_svg"].as_str().unwrap().contains("<svg"));
    assert!(
        e.json()["qr_png"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBORw0KGgo"),
        "a PNG data URL"
    );
    let stored = s.db.strings("SELECT secret_enc FROM mfa_totp").await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("k1."), "key id prefix: {}", stored[0]);
    assert!(
        !stored[0].contains(&secret),
        "the secret is not readable in the database"
    );

    // Not active until confirmed by a valid code.
    let r = s.login("", "mia@example.com", PASSWORD).await;
    assert!(
        r.json()["mfa_required"].is_null(),
        "pending enrollment is not active"
    );
    let bad = post(
        &s,
        "/api/v1/mfa/totp/confirm",
        json!({"code": "000000"}),
        &token,
        &csrf,
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let mut app = Authenticator { secret, last: 0 };
    let ok = post(
        &s,
        "/api/v1/mfa/totp/confirm",
        json!({"code": app.next_code().await}),
        &token,
        &csrf,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let backup: Vec<String> = serde_json::from_value(ok.json()["backup_codes"].clone()).unwrap();
    assert_eq!(backup.len(), 10);
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM mfa_backup_codes")
            .await,
        10
    );
    let plain = s.db.blobs("SELECT code_hash FROM mfa_backup_codes").await;
    assert!(plain.iter().all(|h| h.len() == 32), "stored hashed");

    // Two-step login; ±2 steps refused, a used step refused (replay), ±1 accepted.
    let sessions_before = s.db.scalar_i64("SELECT COUNT(*) FROM sessions").await;
    let far = pyotp_code(&app.secret, now_step() - 2);
    let r = two_step(&s, "mia@example.com", json!({"code": far})).await;
    assert_eq!(r.status, 401, "two steps back is refused");
    let replay = pyotp_code(&app.secret, app.last);
    let r = two_step(&s, "mia@example.com", json!({"code": replay})).await;
    assert_eq!(
        r.status, 401,
        "the confirmation's step cannot be used again"
    );
    assert_eq!(
        s.db.scalar_i64("SELECT COUNT(*) FROM sessions").await,
        sessions_before,
        "no session from the password step or a failed second step"
    );
    let code = app.next_code().await;
    let r = two_step(&s, "mia@example.com", json!({"code": code.clone()})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.session_cookie().is_some());
    let r = two_step(&s, "mia@example.com", json!({"code": code})).await;
    assert_eq!(r.status, 401, "a code works once");
    assert!(count(&s, "login.mfa_required").await >= 4);

    // Backup codes: once each, counted, audited.
    let r = two_step(&s, "mia@example.com", json!({"backup_code": backup[0]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = two_step(&s, "mia@example.com", json!({"backup_code": backup[0]})).await;
    assert_eq!(r.status, 401, "a backup code works once");
    assert_eq!(count(&s, "mfa.backup_code.used").await, 1);
    let st = s
        .req("GET", "/api/v1/mfa", None, &[("cookie", &cookie(&token))])
        .await;
    assert_eq!(st.json()["backup_codes_remaining"], 9);
    assert_eq!(st.json()["totp"]["enabled"], true);

    // Regeneration needs a fresh code and invalidates the old set.
    let r = post(
        &s,
        "/api/v1/mfa/backup-codes",
        json!({"code": app.next_code().await}),
        &token,
        &csrf,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh: Vec<String> = serde_json::from_value(r.json()["backup_codes"].clone()).unwrap();
    let r = two_step(&s, "mia@example.com", json!({"backup_code": backup[1]})).await;
    assert_eq!(r.status, 401, "old codes die with regeneration");
    let r = two_step(&s, "mia@example.com", json!({"backup_code": fresh[0]})).await;
    assert_eq!(r.status, 200);

    // Disabling needs re-authentication; afterwards login is one step again.
    let r = post(&s, "/api/v1/mfa/totp/disable", json!({}), &token, &csrf).await;
    assert_eq!(r.status, 422);
    let r = post(
        &s,
        "/api/v1/mfa/totp/disable",
        json!({"password": "not my password 123"}),
        &token,
        &csrf,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        &s,
        "/api/v1/mfa/totp/disable",
        json!({"password": PASSWORD}),
        &token,
        &csrf,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.login("", "mia@example.com", PASSWORD).await;
    assert!(r.session_cookie().is_some());
    assert_eq!(count(&s, "mfa.enroll").await, 1);
    assert_eq!(count(&s, "mfa.enable").await, 1);
    assert_eq!(count(&s, "mfa.disable").await, 1);
    assert_eq!(count(&s, "mfa.backup_codes.regenerate").await, 1);
}
both_backends!(totp_enrollment_and_two_step_login);

/// Enrolls `email` (signed in with `token`) and returns its authenticator.
async fn enrolled(s: &Server, email: &str) -> Authenticator {
    let (token, csrf) = s.signed_in(email).await;
    let e = post(s, "/api/v1/mfa/totp/enroll", json!({}), &token, &csrf).await;
    let mut app = Authenticator {
        secret: e.json()["secret"].as_str().unwrap().to_string(),
        last: 0,
    };
    let ok = post(
        s,
        "/api/v1/mfa/totp/confirm",
        json!({"code": app.next_code().await}),
        &token,
        &csrf,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    app
}

/// Ciphertexts are bound to their row, and `aegis keys rotate` moves every secret to
/// the new key without locking anyone out.
async fn secrets_are_bound_and_rotate(db: Db) {
    if !pyotp_available("secrets_are_bound_and_rotate") {
        return;
    }
    let s = Server::start(db, &[("AEGIS_ENCRYPTION_KEYS", K1)]).await;
    let mut ann = enrolled(&s, "ann@example.com").await;
    let mut ben = enrolled(&s, "ben@example.com").await;

    // Rotation: k2 becomes active, k1 still decrypts; the CLI re-encrypts.
    let both = format!("{K1},{K2}");
    let rotated = s.another(&[
        ("AEGIS_ENCRYPTION_KEYS", &both),
        ("AEGIS_ENCRYPTION_ACTIVE_KEY", "k2"),
    ]);
    let mut env_cli = vec![
        ("AEGIS_DATABASE_URL".to_string(), s.db.app_url.clone()),
        (
            "AEGIS_DATABASE_OWNER_URL".to_string(),
            s.db.owner_url.clone(),
        ),
        ("AEGIS_ENCRYPTION_KEYS".to_string(), both.clone()),
        ("AEGIS_ENCRYPTION_ACTIVE_KEY".to_string(), "k2".to_string()),
    ];
    env_cli.push(("AEGIS_LOG_LEVEL".to_string(), "warn".to_string()));
    let out = crate::harness::run_cli(&["keys", "rotate"], &env_cli, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 2 secrets"));
    let stored = s.db.strings("SELECT secret_enc FROM mfa_totp").await;
    assert!(stored.iter().all(|c| c.starts_with("k2.")), "{stored:?}");
    // Only k2 left: everyone still signs in.
    let only_k2 = rotated.another(&[("AEGIS_ENCRYPTION_KEYS", K2)]);
    let r = two_step(
        &only_k2,
        "ann@example.com",
        json!({"code": ann.next_code().await}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = two_step(
        &only_k2,
        "ben@example.com",
        json!({"code": ben.next_code().await}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Moving Ann's ciphertext onto Ben's row does not give Ben Ann's secret.
    let ann_cipher = s
        .db
        .strings(
            "SELECT t.secret_enc FROM mfa_totp t JOIN users u ON u.id = t.user_id WHERE u.email = 'ann@example.com'",
        )
        .await
        .remove(0);
    s.db.execute(&format!(
        "UPDATE mfa_totp SET secret_enc = '{ann_cipher}' WHERE user_id = (SELECT id FROM users WHERE email = 'ben@example.com')"
    ))
    .await;
    let r = two_step(
        &only_k2,
        "ben@example.com",
        json!({"code": ann.next_code().await}),
    )
    .await;
    assert_ne!(
        r.status, 200,
        "a moved ciphertext must not decrypt: {}",
        r.text
    );
    assert!(r.session_cookie().is_none());
}
both_backends!(secrets_are_bound_and_rotate);

/// Under "require MFA for admins" an admin without MFA reaches only enrollment until
/// enrolled; "everyone" extends that to members.
async fn tenant_policy_requires_enrollment(db: Db) {
    if !pyotp_available("tenant_policy_requires_enrollment") {
        return;
    }
    let s = Server::start(db, &[]).await;
    s.create_admin("root@example.com");
    let (member, member_csrf) = s.signed_in("max@example.com").await;
    let r = s.login("", "root@example.com", PASSWORD).await;
    let admin = r.session_cookie().unwrap();
    let admin_csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
    let as_admin = |t: &str| [("cookie", cookie(t)), ("x-csrf-token", admin_csrf.clone())];

    let h = as_admin(&admin);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bad = s
        .req(
            "PUT",
            "/api/v1/admin/mfa-policy",
            Some(&json!({"policy": "sometimes"})),
            &h,
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let r = s
        .req(
            "PUT",
            "/api/v1/admin/mfa-policy",
            Some(&json!({"policy": "admins"})),
            &h,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The admin is held at enrollment...
    let users = s.req("GET", "/api/v1/admin/users", None, &h).await;
    assert_eq!(users.status, 403, "{}", users.text);
    assert!(
        users.json()["message"]
            .as_str()
            .unwrap()
            .contains("MFA enrollment required")
    );
    assert_eq!(s.req("GET", "/api/v1/session", None, &h).await.status, 200);
    // ...members are not.
    let m = cookie(&member);
    assert_eq!(
        s.req("GET", "/api/v1/sessions", None, &[("cookie", m.as_str())])
            .await
            .status,
        200
    );
    // Enrolling opens the admin endpoints.
    let e = post(
        &s,
        "/api/v1/mfa/totp/enroll",
        json!({}),
        &admin,
        &admin_csrf,
    )
    .await;
    assert_eq!(e.status, 200, "{}", e.text);
    let mut app = Authenticator {
        secret: e.json()["secret"].as_str().unwrap().to_string(),
        last: 0,
    };
    let ok = post(
        &s,
        "/api/v1/mfa/totp/confirm",
        json!({"code": app.next_code().await}),
        &admin,
        &admin_csrf,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        s.req("GET", "/api/v1/admin/users", None, &h).await.status,
        200
    );

    // "everyone", set from the CLI (the server sees it once its tenant cache expires).
    let out = s.cli(&["tenant", "mfa-policy", "default", "everyone"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    let r = s
        .req("GET", "/api/v1/sessions", None, &[("cookie", m.as_str())])
        .await;
    assert_eq!(r.status, 403, "members must enroll now: {}", r.text);
    let e = post(
        &s,
        "/api/v1/mfa/totp/enroll",
        json!({}),
        &member,
        &member_csrf,
    )
    .await;
    assert_eq!(e.status, 200, "enrollment stays reachable");
    assert_eq!(count(&s, "tenant.mfa_policy").await, 2);
}
both_backends!(tenant_policy_requires_enrollment);
