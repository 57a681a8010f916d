//! The one integration-test binary: every module here links into it.

mod cli;
mod discovery;
mod support;
mod token;
