//! Outgoing email (invitations) over SMTP.
//!
//! `AICARPOOL_SMTP_URL` names the server: `smtp://host:25` (plain, for a
//! local relay or tests), `smtp://user:pass@host:587?tls=required`
//! (STARTTLS) or `smtps://user:pass@host` (TLS from the first byte).
//! Without it no mail is sent and the API hands the link back to share by
//! hand.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one message may take to hand over.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Why mail could not be set up or sent. Messages never carry the SMTP
/// password.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(
        "AICARPOOL_SMTP_URL is not a usable SMTP URL (smtp://host:port or smtps://user:pass@host)"
    )]
    Url,
    #[error("{field} is not a valid email address")]
    Address { field: &'static str },
    #[error("building the message failed")]
    Build(#[source] lettre::error::Error),
    #[error("the SMTP server did not accept the message")]
    Send(#[source] lettre::transport::smtp::Error),
    #[error("the SMTP server did not answer")]
    Unreachable,
}

/// An SMTP client and the sender address. `Debug` shows only the sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// What an invitation mail says.
#[derive(Debug)]
pub struct InvitationMail<'a> {
    pub to: &'a str,
    /// The group's, enterprise's or department's name (the subject).
    pub place_name: &'a str,
    /// What joining gives, e.g. `the carpool group "x" as member`.
    pub place: &'a str,
    pub inviter: &'a str,
    pub url: &'a str,
    pub expires_at: DateTime<Utc>,
}

impl Mailer {
    /// A mailer for `url`, sending as `from` (`Name <addr>` or `addr`).
    pub fn new(url: &str, from: &str) -> Result<Self, MailError> {
        let from: Mailbox = from.parse().map_err(|_| MailError::Address {
            field: "AICARPOOL_MAIL_FROM",
        })?;
        // `from_url` also takes `user:pass@` as the SMTP login.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| MailError::Url)?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        Ok(Self { transport, from })
    }

    /// Sends an alert: `summary` as the subject, `body` as the text.
    pub async fn send_alert(&self, to: &str, summary: &str, body: &str) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| MailError::Address { field: "target" })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("[AiCarpool] {}", one_line(summary)))
            .header(ContentType::TEXT_PLAIN)
            .body(format!("{}\r\n\r\n{body}\r\n", one_line(summary)))
            .map_err(MailError::Build)?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(MailError::Send)
    }

    /// Connects to the SMTP server and says hello (`aicarpool check`).
    pub async fn reach(&self) -> Result<(), MailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Unreachable),
            Err(e) => Err(MailError::Send(e)),
        }
    }

    /// Sends the invitation link to its addressee.
    pub async fn send_invitation(&self, mail: &InvitationMail<'_>) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError::Address { field: "email" })?;
        let body = format!(
            "Hello,\r\n\r\n{inviter} invites you to {place} on AiCarpool.\r\n\r\n\
             Open this link to accept (it expires {expires}):\r\n\r\n{url}\r\n\r\n\
             If you did not expect this, ignore this mail.\r\n",
            inviter = one_line(mail.inviter),
            place = one_line(mail.place),
            expires = mail.expires_at.format("%Y-%m-%d %H:%M UTC"),
            url = mail.url,
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!(
                "Invitation to {} on AiCarpool",
                one_line(mail.place_name)
            ))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(MailError::Build)?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(MailError::Send)
    }
}

/// Names go into headers and text: no line breaks.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_on_one_line() {
        assert_eq!(one_line("a\r\nBcc: x"), "a  Bcc: x");
    }

    #[tokio::test]
    async fn bad_settings_are_refused_without_leaking() {
        let e = Mailer::new("http://u:secret@host", "a@b.io").err();
        assert!(matches!(e, Some(MailError::Url)));
        assert!(!format!("{e:?}").contains("secret"));
        let e = Mailer::new("smtp://127.0.0.1:2525", "not an address").err();
        assert!(matches!(e, Some(MailError::Address { .. })));
        let m = Mailer::new("smtps://u:secret@mail.example.com", "AiCarpool <a@b.io>");
        assert!(m.is_ok());
        assert!(!format!("{m:?}").contains("secret"));
    }
}
