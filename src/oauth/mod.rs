//! The protocol: request checks, client authentication, grants and token formats. Free of axum and
//! sea-orm: handlers in `http/` parse the wire format into these types and render what comes back.

pub mod authorize;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod grants;
pub mod id_token;
pub mod introspection;
pub mod pkce;
pub mod revocation;
pub mod scope;
pub mod tokens;
pub mod userinfo;
pub mod verify;
