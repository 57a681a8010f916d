//! The pages of the account issue: stand-alone sign-in, registration, email verification, password
//! reset, and the self-service account pages (which extend `templates/account/base.html`).

use askama::Template;
use askama_web::WebTemplate;

#[derive(Template, WebTemplate)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub return_to: String,
    pub csrf: String,
    pub email: String,
    pub error: Option<&'static str>,
    /// Whether to offer the registration page.
    pub registration: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/profile.html")]
pub struct ProfilePage {
    pub nav: &'static str,
    pub notice: Option<&'static str>,
    pub error: Option<&'static str>,
    pub csrf: String,
    pub name: String,
    pub name_error: Option<&'static str>,
    pub email: String,
    pub email_verified: bool,
    pub pending_email: Option<String>,
    pub new_email: String,
    pub email_error: Option<&'static str>,
}
