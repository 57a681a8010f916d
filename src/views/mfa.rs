//! The pages of the second sign-in step and of the account's Security section.

use askama::Template;
use askama_web::WebTemplate;
use zeroize::Zeroizing;

#[derive(Template, WebTemplate)]
#[template(path = "mfa/challenge.html")]
pub struct MfaPage {
    pub csrf: String,
    /// TOTP (or a recovery code) is the way; else `email` names where a code was sent.
    pub totp: bool,
    /// The person has a passkey: offer it (`mfa/passkey_option.html`).
    pub passkey: bool,
    pub email: Option<String>,
    pub error: Option<&'static str>,
    pub notice: Option<&'static str>,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/security.html")]
pub struct SecurityPage {
    /// The account navigation's tab (`account/base.html`).
    pub nav: &'static str,
    pub email: String,
    pub csrf: String,
    pub totp_enabled: bool,
    /// When TOTP was turned on (UTC, `YYYY-MM-DD`).
    pub totp_since: String,
    pub recovery_left: u64,
    pub email_otp: bool,
    /// The person's passkeys (`account/passkeys.html`); `None` when the issuer cannot have them.
    pub passkeys: Option<Vec<PasskeyRow>>,
    /// `passkey_passwordless`: passkeys also sign in alone.
    pub passwordless: bool,
    pub error: Option<&'static str>,
    pub notice: Option<&'static str>,
}

/// One passkey on the Security page.
pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    /// UTC `YYYY-MM-DD`.
    pub added: String,
    /// UTC `YYYY-MM-DD`, or "never".
    pub last_used: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/totp_setup.html")]
pub struct TotpSetupPage {
    pub nav: &'static str,
    pub csrf: String,
    /// Inline SVG made by `mfa::totp::qr_svg` (our own markup, no user input).
    pub qr_svg: String,
    /// The secret in groups of four base32 characters.
    pub secret: Zeroizing<String>,
    pub uri: Zeroizing<String>,
    pub error: Option<&'static str>,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub nav: &'static str,
    pub codes: Vec<Zeroizing<String>>,
    pub first_time: bool,
}
