//! One askama template struct per page. No inline script or style: the CSP forbids both.

use askama::Template;
use askama_web::WebTemplate;

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    pub code: &'static str,
}
