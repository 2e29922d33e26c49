//! Sending one outbox message over SMTP with lettre, and telling a failure that
//! retrying can fix from one it cannot.

use std::time::Duration;

use agenda_entity::outbox_message;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::settings::{MailSettings, SmtpUrl};

/// The SMTP connection pool of one process.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Retrying may help: the server is unreachable, timed out, or answered 4xx.
    Transient(String),
    /// Retrying cannot help: the server answered 5xx (unknown mailbox, refused
    /// message), or the message itself is unusable (a malformed address).
    Permanent(String),
}

impl Smtp {
    /// The transport for `url` (`SMTP_URL`), with `settings`' sender and timeout.
    pub fn new(url: &SmtpUrl, settings: &MailSettings) -> Result<Smtp, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|e| agenda_storage::db::redact(&e.to_string()))?
            .timeout(Some(settings.send_timeout))
            .build();
        Ok(Smtp {
            transport,
            from: settings.from.clone(),
            timeout: settings.send_timeout,
        })
    }

    /// Delivers `message`: the SMTP server's `250 OK` is success.
    pub async fn send(&self, message: &outbox_message::Model) -> Result<(), SendError> {
        let email = self.build(message)?;
        // The transport's own timeout covers each SMTP command; this bounds the whole
        // exchange, connection and TLS included.
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Err(_) => Err(SendError::Transient(format!(
                "no answer within {} s",
                self.timeout.as_secs_f64()
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let text = agenda_storage::db::redact(&e.to_string());
                if e.is_permanent() {
                    Err(SendError::Permanent(text))
                } else {
                    Err(SendError::Transient(text))
                }
            }
        }
    }

    fn build(&self, message: &outbox_message::Model) -> Result<Message, SendError> {
        let address = message.to_address.parse().map_err(|e| {
            SendError::Permanent(format!("the recipient address is not usable: {e}"))
        })?;
        let to = Mailbox::new(message.to_name.clone(), address);
        Message::builder()
            .message_id(Some(message.message_id.clone()))
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .date(message.created_at.into())
            .multipart(MultiPart::alternative_plain_html(
                message.body_text.clone(),
                message.body_html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("the message cannot be built: {e}")))
    }
}
