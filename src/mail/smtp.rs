//! SMTP delivery through lettre (rustls, no native TLS): STARTTLS (required, not opportunistic),
//! implicit TLS, or a plain connection for a relay on the same host.

use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Mail, MailError, Mailer};
use crate::config::{Config, SmtpTls};

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

impl SmtpMailer {
    pub fn new(c: &Config) -> Result<SmtpMailer, MailError> {
        let host = c.smtp_host.clone().unwrap_or_default();
        let build = |e: lettre::transport::smtp::Error| MailError::Build(format!("smtp: {e}"));
        let mut b = match c.smtp_tls {
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(build)?
            }
            SmtpTls::Implicit => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(build)?
            }
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
        }
        .port(c.smtp_port)
        .timeout(Some(Duration::from_secs(15)));
        if let Some(user) = &c.smtp_username {
            let pass = c
                .smtp_password
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_default();
            b = b.credentials(Credentials::new(user.clone(), pass));
        }
        Ok(SmtpMailer {
            transport: b.build(),
            from: c.mail_from.clone(),
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, id: &str, mail: &Mail) -> Result<(), MailError> {
        let msg = super::message(&self.from, id, mail)?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Transport(e.to_string()))
    }

    fn kind(&self) -> &'static str {
        "smtp"
    }
}
