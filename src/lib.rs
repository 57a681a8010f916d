//! Custos: an OAuth 2.0 / OpenID Connect issuer in one binary.

pub mod app;
pub mod audit;
pub mod backchannel;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod ephemeral;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod session;
pub mod sessions;
pub mod store;
pub mod views;
