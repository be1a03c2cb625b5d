//! Outgoing mail: what the domain sends, and the trait a delivery backend implements
//! (SMTP or, in development, files). Templates live here so every flow's text is in one
//! place and never carries more than the recipient needs.

use async_trait::async_trait;

use crate::Result;

/// One plain-text message.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Delivers mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<()>;
}

/// The password-reset message: the token to paste (or a link built from it), and what to
/// do if the request was not the recipient's.
pub fn password_reset(to: &str, token: &str, valid_minutes: i64) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "Reset your password".into(),
        text: format!(
            "Someone asked to reset the password of this account.\n\n\
             Reset code: {token}\n\n\
             Send it with a new password to POST /api/v1/password/reset within \
             {valid_minutes} minutes. It works once.\n\n\
             If this was not you, ignore this message: your password is unchanged.\n"
        ),
    }
}

/// The address-verification message sent at registration (and on request).
pub fn email_verification(to: &str, token: &str, valid_minutes: i64) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "Confirm your e-mail address".into(),
        text: format!(
            "Welcome. Confirm that this address is yours.\n\n\
             Verification code: {token}\n\n\
             Send it to POST /api/v1/email/verify within {valid_minutes} minutes. It \
             works once.\n\n\
             If you did not create an account, ignore this message.\n"
        ),
    }
}
