//! Outgoing mail: what Custos sends (verification, reset and notice mails, rendered from askama
//! templates as text + HTML), the durable queue it goes through, and the `Mailer` seam that delivers.
//!
//! Every mail is first written to the `mail_outbox` table (body sealed under the KEK: it carries
//! one-time links), then delivered: at once by a task spawned on enqueue, and again by the periodic
//! drain when that failed, with exponential backoff, until [`MAX_ATTEMPTS`]. A failed send never undoes
//! what caused the mail (the account exists); the person can ask for a new link.
//!
//! Mailers: `outbox` (default) writes `<mail_outbox_dir>/<id>.eml` and logs the link, so a local
//! setup works without a mail server; `smtp` delivers through lettre (STARTTLS, implicit TLS, or none
//! for a local relay), with credentials from the config.

pub mod outbox;
pub mod smtp;

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::config::{MailTransport, Settings};
use crate::store::{QueuedMail, StoreError};

/// Delivery attempts before a mail is given up (about 17 h of backoff in all).
pub const MAX_ATTEMPTS: u32 = 12;
/// How long one replica owns a claimed mail before another may retry it.
const LEASE_SECS: i64 = 120;
/// How often a replica looks for mail whose retry is due.
pub const DRAIN_EVERY: Duration = Duration::from_secs(30);

/// A mail ready to send.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail could not be built: {0}")]
    Build(String),
    #[error("delivery failed: {0}")]
    Transport(String),
}

/// Delivers one mail. `id` is the queue id (a stable Message-ID, a file name).
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, id: &str, mail: &Mail) -> Result<(), MailError>;
    fn kind(&self) -> &'static str;
}

/// The mailer the configuration names.
pub fn from_settings(s: &Settings) -> Result<Arc<dyn Mailer>, MailError> {
    Ok(match s.raw.mail_transport {
        MailTransport::Outbox => Arc::new(outbox::OutboxMailer::new(
            s.raw.mail_outbox_dir.clone(),
            &s.raw.mail_from,
        )?),
        MailTransport::Smtp => Arc::new(smtp::SmtpMailer::new(&s.raw)?),
    })
}

/// Builds the RFC 5322 message (text and HTML alternatives).
pub fn message(from: &str, id: &str, mail: &Mail) -> Result<lettre::Message, MailError> {
    use lettre::message::{Mailbox, MultiPart};
    let from: Mailbox = from
        .parse()
        .map_err(|e| MailError::Build(format!("from: {e}")))?;
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| MailError::Build(format!("to: {e}")))?;
    let domain = from.email.domain().to_string();
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .message_id(Some(format!("<{id}@{domain}>")))
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| MailError::Build(e.to_string()))
}

#[derive(Template)]
#[template(path = "mail/message.txt")]
struct TextBody<'a> {
    heading: &'a str,
    before: &'a [String],
    action: Option<(&'a str, &'a str)>,
    after: &'a [String],
    issuer: &'a str,
}

#[derive(Template)]
#[template(path = "mail/message.html")]
struct HtmlBody<'a> {
    heading: &'a str,
    before: &'a [String],
    action: Option<(&'a str, &'a str)>,
    after: &'a [String],
    issuer: &'a str,
}

/// The content of one mail before rendering.
pub struct Compose<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub heading: &'a str,
    pub before: Vec<String>,
    /// A button label and its link.
    pub action: Option<(&'a str, &'a str)>,
    pub after: Vec<String>,
}

impl Compose<'_> {
    pub fn render(&self, issuer: &str) -> Result<Mail, MailError> {
        let text = TextBody {
            heading: self.heading,
            before: &self.before,
            action: self.action,
            after: &self.after,
            issuer,
        }
        .render()
        .map_err(|e| MailError::Build(e.to_string()))?;
        let html = HtmlBody {
            heading: self.heading,
            before: &self.before,
            action: self.action,
            after: &self.after,
            issuer,
        }
        .render()
        .map_err(|e| MailError::Build(e.to_string()))?;
        Ok(Mail {
            to: self.to.to_string(),
            subject: self.subject.to_string(),
            text,
            html,
        })
    }
}

fn aad(id: &str) -> String {
    format!("custos-mail:{id}")
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("mail body could not be sealed")]
    Seal,
}

/// Queues a mail durably and starts delivering it in the background. `link` is the one-time link the
/// mail carries: with the outbox transport (development) it is also logged, so the README tour works
/// without opening files; with SMTP it never reaches a log.
pub async fn enqueue(
    state: &AppState,
    compose: Compose<'_>,
    link: Option<&str>,
) -> Result<String, EnqueueError> {
    let id = queue(state, &compose).await?;
    if state.settings.raw.mail_transport == MailTransport::Outbox {
        tracing::info!(mail_id = %id, to = %compose.to, subject = %compose.subject, link = link.unwrap_or("-"),
            "mail queued (outbox transport: the link is logged for local use only)");
    } else {
        tracing::info!(mail_id = %id, subject = %compose.subject, "mail queued");
    }
    let st = state.clone();
    let only = id.clone();
    tokio::spawn(async move {
        if let Err(e) = drain(&st, st.mailer.as_ref(), Some(&only)).await {
            tracing::warn!(error = %e, "mail delivery could not start; the periodic drain retries");
        }
    });
    Ok(id)
}

/// Seals and inserts; no delivery.
pub async fn queue(state: &AppState, compose: &Compose<'_>) -> Result<String, EnqueueError> {
    let mail = compose.render(&state.settings.issuer_str)?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let body = serde_json::to_vec(&mail).map_err(|_| EnqueueError::Seal)?;
    let sealed = state
        .kek
        .seal(&aad(&id), &body)
        .map_err(|_| EnqueueError::Seal)?;
    state
        .store
        .enqueue_mail(&id, &mail.to, &mail.subject, &sealed, state.clock.now())
        .await?;
    Ok(id)
}

/// Seconds until the next attempt after `attempts` failed ones: 30 s doubling, at most 4 h.
pub fn backoff_secs(attempts: u32) -> i64 {
    (30i64 << attempts.saturating_sub(1).min(16)).min(4 * 3600)
}

/// What one drain pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub sent: u32,
    pub retrying: u32,
    pub given_up: u32,
}

/// Claims the due mails (or only `only`) and tries each once with `mailer`.
pub async fn drain(
    state: &AppState,
    mailer: &dyn Mailer,
    only: Option<&str>,
) -> Result<Drained, StoreError> {
    let now = state.clock.now();
    let claimed = state
        .store
        .claim_due_mail(now, LEASE_SECS, 50, only)
        .await?;
    let mut out = Drained::default();
    for m in claimed {
        match deliver(state, mailer, &m).await {
            Ok(()) => {
                state.store.mark_mail_sent(&m.id, state.clock.now()).await?;
                out.sent += 1;
            }
            Err(e) => {
                let now = state.clock.now();
                let retry_at = (m.attempts < MAX_ATTEMPTS).then(|| now + backoff_secs(m.attempts));
                state
                    .store
                    .mark_mail_failed(&m.id, &e.to_string(), retry_at, now)
                    .await?;
                if retry_at.is_some() {
                    tracing::warn!(mail_id = %m.id, attempts = m.attempts, error = %e, "mail delivery failed; will retry");
                    out.retrying += 1;
                } else {
                    tracing::error!(mail_id = %m.id, attempts = m.attempts, error = %e, "mail delivery failed for good");
                    out.given_up += 1;
                }
            }
        }
    }
    Ok(out)
}

async fn deliver(state: &AppState, mailer: &dyn Mailer, m: &QueuedMail) -> Result<(), MailError> {
    let body = state
        .kek
        .open(&aad(&m.id), &m.body_sealed)
        .map_err(|_| MailError::Build("the sealed body cannot be opened with this KEK".into()))?;
    let mail: Mail =
        serde_json::from_slice(&body).map_err(|e| MailError::Build(format!("stored body: {e}")))?;
    mailer.send(&m.id, &mail).await
}

/// Drains every [`DRAIN_EVERY`] until aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = drain(&state, state.mailer.as_ref(), None).await {
                tracing::warn!(error = %e, "mail drain failed; retrying at the next pass");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(super::backoff_secs(1), 30);
        assert_eq!(super::backoff_secs(2), 60);
        assert_eq!(super::backoff_secs(3), 120);
        assert_eq!(super::backoff_secs(30), 4 * 3600);
    }
}
