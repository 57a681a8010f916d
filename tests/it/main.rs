//! The one integration-test binary: every module here links into it.

mod accounts;
mod backchannel;
mod browser;
mod bruteforce;
mod cli;
mod code_flow;
mod discovery;
mod endpoints;
mod ephemeral;
mod faults;
mod import;
mod keys_rotation;
mod logout;
mod mfa;
mod passkeys;
mod proxy;
mod real_browser;
mod refresh_store;
mod replicas;
mod sessions;
mod support;
mod token;
