//! Audit events: who did what to which account, client or key. Written to SQL; a failure to write is
//! logged loudly but never turns the action itself into an error after it has happened.

use serde_json::Value;

use crate::store::{AuditEvent, Store};

#[derive(Clone, Debug)]
pub struct Event {
    kind: &'static str,
    actor: Option<String>,
    subject: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    details: Value,
}

impl Event {
    pub fn new(kind: &'static str) -> Event {
        Event {
            kind,
            actor: None,
            subject: None,
            client_id: None,
            ip: None,
            details: Value::Object(Default::default()),
        }
    }
    pub fn actor(mut self, a: impl Into<String>) -> Self {
        self.actor = Some(a.into());
        self
    }
    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }
    pub fn client(mut self, c: impl Into<String>) -> Self {
        self.client_id = Some(c.into());
        self
    }
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }
    pub fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }
}

impl Event {
    /// The row this event is stored as, happening at `now`: for writing it in the same transaction as
    /// what it records.
    pub fn into_row(self, now: i64) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            at: now,
            kind: self.kind.to_string(),
            actor: self.actor,
            subject: self.subject,
            client_id: self.client_id,
            ip: self.ip,
            details: self.details,
        }
    }
}

pub async fn record(store: &Store, now: i64, e: Event) {
    let row = e.into_row(now);
    if let Err(err) = store.record(&row).await {
        tracing::error!(kind = row.kind, error = %err, "audit event could not be written");
    }
}
