//! Mail delivery: SMTP (lettre, with a timeout and a circuit breaker so a dead relay
//! cannot hang or slow the server) or, in development without SMTP, `.eml` files in a
//! folder whose path the log names.

use std::path::PathBuf;
use std::time::Duration;

use aegis_core::mail::{Mail, Mailer};
use aegis_core::{CoreError, Result};
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub use crate::breaker::CircuitBreaker;

/// Writes each message to `<dir>/<time>-<uuid>.eml`.
pub struct FileMailer {
    dir: PathBuf,
    from: String,
}

impl FileMailer {
    pub fn new(dir: PathBuf, from: String) -> FileMailer {
        FileMailer { dir, from }
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        let message = build(&self.from, mail)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| CoreError::Internal(format!("mail dir: {e}")))?;
        let path = self.dir.join(format!(
            "{}-{}.eml",
            aegis_core::clock::now_millis(),
            uuid::Uuid::now_v7().simple()
        ));
        tokio::fs::write(&path, message.formatted())
            .await
            .map_err(|e| CoreError::Internal(format!("mail file: {e}")))?;
        tracing::info!(path = %path.display(), "mail written (development mail sink)");
        Ok(())
    }
}

fn build(from: &str, mail: &Mail) -> Result<Message> {
    Message::builder()
        .from(
            from.parse()
                .map_err(|e| CoreError::Internal(format!("mail.from: {e}")))?,
        )
        .to(mail
            .to
            .parse()
            .map_err(|e| CoreError::Internal(format!("mail recipient: {e}")))?)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.text.clone())
        .map_err(|e| CoreError::Internal(format!("mail: {e}")))
}

/// SMTP delivery with a timeout per message and a circuit breaker.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
    breaker: CircuitBreaker,
    timeout: Duration,
}

impl SmtpMailer {
    /// `url`: `smtps://user:pass@host:465`, `smtp://host:587?tls=required` (STARTTLS) or,
    /// for development relays only, `smtp://host:25`.
    pub fn new(
        url: &str,
        from: String,
        timeout: Duration,
        breaker: CircuitBreaker,
    ) -> std::result::Result<SmtpMailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("mail.smtp_url: {e}"))?
            .timeout(Some(timeout))
            .build();
        Ok(SmtpMailer {
            transport,
            from,
            breaker,
            timeout,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        if !self.breaker.allow() {
            metrics::counter!("aegis_mail_failures_total", "reason" => "circuit_open").increment(1);
            return Err(CoreError::Internal("mail relay circuit open".into()));
        }
        let message = build(&self.from, mail)?;
        let sent = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        let ok = matches!(sent, Ok(Ok(_)));
        self.breaker.record(ok);
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                metrics::counter!("aegis_mail_failures_total", "reason" => "smtp").increment(1);
                Err(CoreError::Internal(format!("smtp: {e}")))
            }
            Err(_) => {
                metrics::counter!("aegis_mail_failures_total", "reason" => "timeout").increment(1);
                Err(CoreError::Internal("smtp: timed out".into()))
            }
        }
    }
}
