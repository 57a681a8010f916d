//! The one integration-test binary: every module here links into it.

mod cli;
mod discovery;
mod ephemeral;
mod faults;
mod proxy;
mod support;
mod token;
