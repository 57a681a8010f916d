//! Audit events: who did what to which account, client or key. Written to SQL; a failure to write is
//! logged loudly but never turns the action itself into an error after it has happened.

use serde_json::Value;

use crate::store::{AuditEvent, Store};

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

pub async fn record(store: &Store, now: i64, e: Event) {
    let row = AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        at: now,
        kind: e.kind.to_string(),
        actor: e.actor,
        subject: e.subject,
        client_id: e.client_id,
        ip: e.ip,
        details: e.details,
    };
    if let Err(err) = store.record(&row).await {
        tracing::error!(kind = row.kind, error = %err, "audit event could not be written");
    }
}
