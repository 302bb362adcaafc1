//! Where outbox messages go: an SMTP server through `lettre` (plain, STARTTLS or implicit
//! TLS, optional AUTH, all from `PHOENIX_SMTP_URL`), or — in development only — the log.

use std::time::Duration;

use anyhow::Context as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport as _, Message, Tokio1Executor};
use phoenix_common::config::{Config, SMTP_LOG};

use super::templates::Rendered;

/// Delivers rendered messages. Cheap to clone (the SMTP transport is shared).
#[derive(Clone)]
pub struct Mailer {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Smtp(std::sync::Arc<Smtp>),
    Log,
}

struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the SMTP credentials: never printed.
        f.write_str(if self.is_dev_log() { "Mailer(dev log)" } else { "Mailer(smtp)" })
    }
}

/// Why a message was not delivered, in words fit for `auth.outbox.last_error` and the log:
/// never the server's own text (it may quote the address), only its class and reply code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// The stored and logged text.
    pub message: String,
    /// The server could not be reached or the connection failed (every further message of
    /// this run would fail the same way), as opposed to a reply about this message.
    pub connection: bool,
}

impl Mailer {
    /// An SMTP mailer for `url` (`smtp://host:25`, `smtp://user:pass@host:587?tls=required`
    /// or `…?tls=starttls` for STARTTLS, `smtps://user:pass@host:465` for TLS), sending as
    /// `from`; each SMTP command waits at most `timeout`.
    pub fn smtp(url: &str, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        // Never echo the URL: it may carry the password.
        let url = url.replace("tls=starttls", "tls=required");
        let scheme = url.split("://").next().unwrap_or_default().chars().take(8).collect::<String>();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|_| anyhow::anyhow!("PHOENIX_SMTP_URL ({scheme}://…) is not a usable SMTP URL"))?
            .timeout(Some(timeout))
            .build();
        let from: Mailbox = from.parse().context("PHOENIX_MAIL_FROM is not a usable sender address")?;
        Ok(Self { inner: Inner::Smtp(std::sync::Arc::new(Smtp { transport, from })) })
    }

    /// Prints each message to the log (`DEV MAIL (not sent)`) instead of sending it.
    pub fn dev_log() -> Self {
        Self { inner: Inner::Log }
    }

    /// The mailer `config` asks for: `None` without `PHOENIX_SMTP_URL`, the log for `log`.
    pub fn from_config(config: &Config, timeout: Duration) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.smtp_url else { return Ok(None) };
        if url.expose() == SMTP_LOG {
            return Ok(Some(Self::dev_log()));
        }
        let from = config.mail_from.as_deref().context("PHOENIX_MAIL_FROM is required with PHOENIX_SMTP_URL")?;
        Self::smtp(url.expose(), from, timeout).map(Some)
    }

    /// Whether messages only go to the log.
    pub fn is_dev_log(&self) -> bool {
        matches!(self.inner, Inner::Log)
    }

    /// Sends `mail` to `to`; `outbox_id` names it in the dev log.
    pub async fn send(&self, outbox_id: i64, to: &str, mail: &Rendered) -> Result<(), SendError> {
        match &self.inner {
            Inner::Log => {
                // Development only (the config refuses `log` in production): the link is the point.
                tracing::info!(
                    outbox_id,
                    "DEV MAIL (not sent; PHOENIX_SMTP_URL=log)\n  subject: {}\n{}",
                    mail.subject,
                    mail.text.lines().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
                );
                Ok(())
            }
            Inner::Smtp(smtp) => {
                let Smtp { transport, from } = &**smtp;
                let to: Mailbox = to.parse().map_err(|_| SendError {
                    message: "the recipient's address is not usable".into(),
                    connection: false,
                })?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject.clone())
                    .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
                    .map_err(|_| SendError { message: "the message could not be built".into(), connection: false })?;
                transport.send(message).await.map(drop).map_err(|e| classify(&e))
            }
        }
    }
}

/// `last_error` for a lettre error: its class and reply code, never its text.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(|c| format!(" ({c})")).unwrap_or_default();
    let (message, connection) = if e.is_permanent() {
        (format!("smtp: rejected permanently{code}"), false)
    } else if e.is_transient() {
        (format!("smtp: rejected for now{code}"), false)
    } else if e.is_timeout() {
        ("smtp: timed out".to_owned(), true)
    } else if e.is_tls() {
        ("smtp: TLS failed".to_owned(), true)
    } else if e.is_response() {
        ("smtp: unexpected reply".to_owned(), true)
    } else if e.is_client() {
        ("smtp: client error".to_owned(), false)
    } else {
        ("smtp: cannot connect, or the connection was lost".to_owned(), true)
    };
    SendError { message, connection }
}
