//! sea-orm models; private to `store`. Shapes follow the migrations crate exactly.

pub mod account_tokens;
pub mod audit_events;
pub mod clients;
pub mod consents;
pub mod logout_outbox;
pub mod mail_outbox;
pub mod mfa_recovery_codes;
pub mod mfa_totp;
pub mod passkeys;
pub mod refresh_families;
pub mod refresh_tokens;
pub mod session_clients;
pub mod sessions;
pub mod signing_keys;
pub mod user_roles;
pub mod users;
