//! Email over SMTP with lettre: plain SMTP to a relay, one connection per
//! message, a deterministic `Message-ID` per notification.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::EmailConfig;

/// Why an email was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("invalid sender {0:?} (notifications.email.from)")]
    Sender(String),
    #[error("invalid recipient address {0:?}")]
    Recipient(String),
    #[error("building the message: {0}")]
    Build(String),
    #[error("SMTP: {0}")]
    Smtp(String),
}

impl EmailError {
    /// True when trying again may help (the server, not the message, failed).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Smtp(_))
    }
}

/// Sends mail through one SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

/// One email to send.
pub struct Mail<'a> {
    /// The recipient's address.
    pub to: &'a str,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Unique per notification, so a repeated send carries the same `Message-ID`.
    pub id: &'a str,
}

impl Mailer {
    /// A mailer for `config`'s server and sender.
    pub fn new(config: &EmailConfig) -> Result<Self, EmailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| EmailError::Sender(config.from.clone()))?;
        let domain = from.email.domain().to_owned();
        // Plain SMTP: TLS is the relay's job (see the README), which keeps
        // a TLS stack for mail out of the node.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.smtp_host.as_str())
            .port(config.smtp_port)
            .timeout(Some(config.timeout));
        if !config.smtp_username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.smtp_username.clone(),
                config.smtp_password.clone(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// The `Message-ID` of notification `id`.
    pub fn message_id(&self, id: &str) -> String {
        format!("<{id}@{}>", self.domain)
    }

    /// Sends one email.
    pub async fn send(&self, mail: Mail<'_>) -> Result<(), EmailError> {
        let to: Address = mail.to.parse().map_err(|_| EmailError::Recipient(mail.to.to_owned()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(mail.subject)
            .message_id(Some(self.message_id(mail.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|e| EmailError::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| EmailError::Smtp(e.to_string()))
    }
}
