//! OpenID Connect Discovery 1.0 and RFC 8414 metadata, built once from the path constants the router
//! uses. Only what works is advertised.

use serde_json::{Value, json};

use crate::config::{Alg, Settings};
use crate::http::paths;

pub fn metadata(s: &Settings) -> Value {
    let url = |p: &str| format!("{}{p}", s.issuer_str);
    json!({
        "issuer": s.issuer_str,
        "authorization_endpoint": url(paths::AUTHORIZE),
        "token_endpoint": url(paths::TOKEN),
        "jwks_uri": url(paths::JWKS),
        "userinfo_endpoint": url(paths::USERINFO),
        "end_session_endpoint": url(paths::LOGOUT),
        "revocation_endpoint": url(paths::REVOKE),
        "introspection_endpoint": url(paths::INTROSPECT),
        // Public clients may revoke their own tokens (RFC 7009 §2.1); only confidential ones introspect.
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": crate::oauth::authorize::OIDC_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": Alg::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "at_hash", "name", "email", "email_verified", "updated_at"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": [crate::session::ACR_PASSWORD, crate::mfa::ACR_MFA],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        // OpenID Connect Back-Channel Logout 1.0: logout tokens always carry `sid` as well as `sub`.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}
