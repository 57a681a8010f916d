//! The default mailer: each mail becomes `<dir>/<id>.eml` (RFC 5322, readable by any mail client), so
//! a development setup and the README tour need no mail server.

use std::path::PathBuf;

use async_trait::async_trait;

use super::{Mail, MailError, Mailer};

pub struct OutboxMailer {
    dir: PathBuf,
    from: String,
}

impl OutboxMailer {
    pub fn new(dir: PathBuf, from: &str) -> Result<OutboxMailer, MailError> {
        Ok(OutboxMailer {
            dir,
            from: from.to_string(),
        })
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, id: &str, mail: &Mail) -> Result<(), MailError> {
        let msg = super::message(&self.from, id, mail)?;
        let dir = self.dir.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // The files hold one-time links: private to this user, like the database.
            crate::keys::seal::create_private_dir(&dir)?;
            let tmp = dir.join(format!(".{id}.eml.tmp"));
            std::fs::write(&tmp, msg.formatted())?;
            std::fs::rename(&tmp, dir.join(format!("{id}.eml")))
        })
        .await
        .map_err(|e| MailError::Transport(e.to_string()))?
        .map_err(|e| MailError::Transport(format!("outbox {}: {e}", self.dir.display())))
    }

    fn kind(&self) -> &'static str {
        "outbox"
    }
}
