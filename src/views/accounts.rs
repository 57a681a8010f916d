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

#[derive(Template, WebTemplate)]
#[template(path = "register.html")]
pub struct RegisterPage {
    pub csrf: String,
    pub invite: Option<String>,
    pub email: String,
    pub name: String,
    pub email_error: Option<String>,
    pub name_error: Option<String>,
    pub password_error: Option<String>,
    pub min_length: usize,
}

/// A page of plain information: a title, paragraphs, and maybe one link onwards.
#[derive(Template, WebTemplate)]
#[template(path = "info.html")]
pub struct InfoPage {
    pub title: String,
    pub paragraphs: Vec<String>,
    pub link: Option<(String, String)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "verify_email.html")]
pub struct VerifyEmailPage {
    pub csrf: String,
    pub token: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "forgot_password.html")]
pub struct ForgotPasswordPage {
    pub csrf: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "reset_password.html")]
pub struct ResetPasswordPage {
    pub csrf: String,
    pub token: String,
    pub email: String,
    pub password_error: Option<String>,
    pub min_length: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/password.html")]
pub struct PasswordPage {
    pub nav: &'static str,
    pub notice: Option<String>,
    pub csrf: String,
    pub email: String,
    pub current_error: Option<String>,
    pub new_error: Option<String>,
    pub min_length: usize,
}
