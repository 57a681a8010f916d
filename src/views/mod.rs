//! One askama template struct per page. No inline script or style: the CSP forbids both.

pub mod accounts;
pub mod mfa;
pub mod sessions;

use askama::Template;
use askama_web::WebTemplate;

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    pub code: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub client_name: String,
    pub req: String,
    pub csrf: String,
    pub email: String,
    pub error: Option<&'static str>,
    /// `passkey_passwordless`: offer "Sign in with a passkey".
    pub passkey: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub client_name: String,
    pub user_email: String,
    pub scopes: Vec<String>,
    pub req: String,
    pub csrf: String,
}

/// The consent page speaks of scopes in plain words.
pub fn describe_scope(s: &str) -> String {
    match s {
        "openid" => "Confirm who you are".into(),
        "profile" => "See your name and profile".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Stay connected to your account while you are away".into(),
        other => format!("Use the permission “{other}”"),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    pub confirm: bool,
    pub client_name: Option<String>,
    pub logout_id: String,
    pub csrf: String,
}
