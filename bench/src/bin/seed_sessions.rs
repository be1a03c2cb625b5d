//! Creates many live sessions for one account directly in the database, the way login
//! stores them (SHA-256 of a random token), for the memory benchmark: logging in
//! 100,000 times would measure Argon2id, not memory.
//!
//! `seed_sessions DATABASE_URL EMAIL COUNT COOKIE_FILE` writes one
//! `__Host-aegis_session=<token>` line per session to COOKIE_FILE.

use std::io::Write;

use aegis_core::model::RequestMeta;
use aegis_core::sessions::{SessionPolicy, new_session};
use secrecy::ExposeSecret;

/// Sessions inserted per transaction.
const BATCH: usize = 2_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, email, count, file] = args.as_slice() else {
        return Err("usage: seed_sessions DATABASE_URL EMAIL COUNT COOKIE_FILE".into());
    };
    let count: usize = count.parse()?;
    let store = aegis_store::open(url, &aegis_store::ConnectOptions::default()).await?;
    let tenant = store
        .tenant_by_slug("default")
        .await?
        .ok_or("no default tenant: start the server once first")?;
    let user = {
        let mut tx = store.read(tenant.id).await?;
        tx.user_by_email(email)
            .await?
            .ok_or("no such account: register it first")?
    };
    let policy = SessionPolicy::default();
    let meta = RequestMeta {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("aegis-bench".into()),
        ..RequestMeta::default()
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    let mut left = count;
    while left > 0 {
        let n = left.min(BATCH);
        let mut tx = store.write(tenant.id).await?;
        for _ in 0..n {
            let s = new_session(&policy, &user, &meta)?;
            tx.insert_session(&s.session).await?;
            writeln!(out, "__Host-aegis_session={}", s.token.expose_secret())?;
        }
        tx.commit().await?;
        left -= n;
    }
    out.flush()?;
    Ok(())
}
