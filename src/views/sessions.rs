//! The account's "Sessions" page (extends `templates/account/base.html`).

use askama::Template;
use askama_web::WebTemplate;

/// One session as the person sees it.
pub struct SessionRow {
    /// The public session id: what the end-session form names.
    pub sid: String,
    pub device: String,
    pub ip: Option<String>,
    pub started: String,
    pub last_seen: String,
    /// When it ends at the latest (absolute expiry).
    pub expires: String,
    /// The session this page was loaded in.
    pub current: bool,
    pub remember_me: bool,
    /// How the person signed in ("Password", "Password and authenticator app").
    pub methods: String,
    /// Names of the apps that got tokens in it.
    pub apps: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/sessions.html")]
pub struct SessionsPage {
    pub nav: &'static str,
    pub csrf: String,
    pub notice: Option<&'static str>,
    pub sessions: Vec<SessionRow>,
}
