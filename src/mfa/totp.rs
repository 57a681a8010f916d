//! TOTP (RFC 6238 over RFC 4226): 160-bit secrets from the OS CSPRNG, SHA-1, 6 digits, 30 s steps,
//! ±1 step of clock skew. Codes are computed by `totp-rs`; which step matched is returned so the caller
//! can refuse that step, or an older one, next time (replay protection lives in SQL, not here).
//!
//! The secret is sealed under the KEK with the user id as associated data, so a sealed secret copied
//! to another account's row does not open.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use totp_rs::{Algorithm, Totp};
use zeroize::Zeroizing;

use crate::keys::seal::{Kek, SealError};

pub const STEP_SECS: i64 = 30;
pub const DIGITS: usize = 6;
pub const SKEW_STEPS: u16 = 1;
pub const SECRET_BYTES: usize = 20;

/// A TOTP shared secret. `Debug` shows nothing of it.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    pub fn generate() -> Result<TotpSecret, SealError> {
        let mut b = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| SealError::Rng)?;
        Ok(TotpSecret(b))
    }

    pub fn from_bytes(b: &[u8]) -> TotpSecret {
        TotpSecret(Zeroizing::new(b.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding: what authenticator apps accept typed in.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(totp_rs::Secret::from(self.0.to_vec()).to_base32())
    }

    fn totp(&self, issuer: Option<&str>, account: &str) -> Totp {
        let mut b = totp_rs::Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_step_duration(STEP_SECS as u64)
            .with_skew(SKEW_STEPS)
            .with_secret(self.0.to_vec());
        if !account.is_empty() {
            b = b.with_account_name(account).with_issuer(issuer);
        }
        b.build_noncompliant()
    }

    /// The code for the step containing `time` (tests and the enrolment page's self-check).
    pub fn code_at(&self, time: i64) -> String {
        self.totp(None, "").generate(time.max(0) as u64).to_string()
    }

    /// The time step `code` belongs to, if it is valid at `now` give or take one step.
    pub fn matching_step(&self, code: &str, now: i64) -> Option<i64> {
        let code = normalize_code(code)?;
        let now = now.max(0) as u64;
        self.totp(None, "")
            .check(&code, now)
            .and_then(|c| i64::try_from(c).ok())
    }

    /// The `otpauth://totp/…` URI an authenticator app reads from the QR code.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        // `:` separates issuer and account in the label: neither may contain one.
        let issuer = issuer.replace(':', " ");
        let account = account.replace(':', " ");
        self.totp(Some(&issuer), &account)
            .to_url()
            .unwrap_or_default()
    }

    pub fn seal(&self, kek: &Kek, user_id: &str) -> Result<String, SealError> {
        kek.seal(&aad(user_id), &self.0)
    }

    pub fn open(kek: &Kek, user_id: &str, sealed: &str) -> Result<TotpSecret, SealError> {
        Ok(TotpSecret(Zeroizing::new(
            kek.open(&aad(user_id), sealed)?.to_vec(),
        )))
    }
}

fn aad(user_id: &str) -> String {
    format!("custos-totp:{user_id}")
}

/// Six digits, spaces allowed between them; anything else is not a TOTP code.
pub fn normalize_code(code: &str) -> Option<String> {
    let c: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (c.len() == DIGITS && c.bytes().all(|b| b.is_ascii_digit())).then_some(c)
}

/// The step containing `time`.
pub fn step_of(time: i64) -> i64 {
    time.div_euclid(STEP_SECS)
}

/// The QR code of `data` as inline SVG markup: drawn here, never by an outside service, with `fill`
/// attributes only (the CSP forbids inline styles).
pub fn qr_svg(data: &str) -> String {
    use qrcode::render::svg;
    let Ok(code) = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M) else {
        return String::new();
    };
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // The XML declaration is for standalone files; inside HTML it is noise.
    match svg.find("<svg") {
        Some(i) => svg[i..].replacen("<svg ", "<svg role=\"img\" aria-label=\"QR code\" ", 1),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 Appendix B, SHA-1, truncated to 6 digits.
        let s = TotpSecret::from_bytes(b"12345678901234567890");
        for (t, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(s.code_at(t), code, "t={t}");
            assert_eq!(s.matching_step(code, t), Some(step_of(t)));
        }
    }

    #[test]
    fn skew_is_one_step() {
        let s = TotpSecret::generate().unwrap();
        let now = 1_795_564_815;
        let at = |d: i64| s.code_at(now + d * STEP_SECS);
        assert_eq!(s.matching_step(&at(-1), now), Some(step_of(now) - 1));
        assert_eq!(s.matching_step(&at(1), now), Some(step_of(now) + 1));
        assert_eq!(s.matching_step(&at(-2), now), None);
        assert_eq!(s.matching_step(&at(2), now), None);
        assert_eq!(s.matching_step("12345", now), None);
        assert_eq!(s.matching_step("abcdef", now), None);
    }

    #[test]
    fn sealed_secret_is_bound_to_its_user() {
        let kek = Kek::generate().unwrap();
        let s = TotpSecret::generate().unwrap();
        let sealed = s.seal(&kek, "u1").unwrap();
        assert_eq!(
            TotpSecret::open(&kek, "u1", &sealed).unwrap().as_bytes(),
            s.as_bytes()
        );
        assert!(TotpSecret::open(&kek, "u2", &sealed).is_err());
    }

    #[test]
    fn qr_is_inline_svg_without_style() {
        let s = TotpSecret::generate().unwrap();
        let uri = s.otpauth_uri("id.example.com", "ada@example.com");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains(&format!("secret={}", s.base32().as_str())),
            "{uri}"
        );
        let svg = qr_svg(&uri);
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(!svg.contains("style"), "{svg}");
        assert!(!svg.contains("<?xml"));
    }
}
