//! A scripted browser: a cookie-keeping HTTP client that follows Custos's pages the way a person would
//! (reading the CSRF token out of each form), but stops at the client's redirect URI.

use custos::clients::NewClient;
use custos::store::User;

use crate::support::{T0, TestApp};

pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

/// Where a step ended.
#[derive(Debug)]
pub enum Landing {
    /// A Custos page (status, path, body).
    Page(u16, String, String),
    /// The client's redirect URI with its query parameters.
    Client(url::Url),
}

impl Landing {
    pub fn param(&self, name: &str) -> Option<String> {
        match self {
            Landing::Client(u) => u
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned()),
            Landing::Page(..) => None,
        }
    }
    pub fn body(&self) -> &str {
        match self {
            Landing::Page(_, _, b) => b,
            Landing::Client(_) => "",
        }
    }
    /// The sign-in page of a pending authorization request (shown at `/authorize` itself, or at
    /// `/login` after a failed attempt).
    pub fn is_login_page(&self) -> bool {
        matches!(self, Landing::Page(200, _, b)
            if b.contains("action=\"/login\"") && b.contains("name=\"req\""))
    }
    pub fn status(&self) -> u16 {
        match self {
            Landing::Page(s, _, _) => *s,
            Landing::Client(_) => 303,
        }
    }
}

/// The value of a hidden input in an HTML form.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    /// Follows redirects within Custos; stops at a page or at a redirect to anywhere else.
    pub async fn follow(&self, mut resp: reqwest::Response) -> Landing {
        loop {
            let status = resp.status().as_u16();
            if status != 303 && status != 302 {
                let path = resp.url().path().to_string();
                return Landing::Page(status, path, resp.text().await.unwrap());
            }
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            let next = if loc.starts_with('/') {
                format!("{}{loc}", self.base)
            } else {
                loc
            };
            if !next.starts_with(&self.base) {
                return Landing::Client(url::Url::parse(&next).unwrap());
            }
            resp = self.http.get(&next).send().await.unwrap();
        }
    }

    pub async fn get(&self, url: &str) -> Landing {
        self.follow(self.http.get(url).send().await.unwrap()).await
    }

    pub async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Landing {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        self.follow(r).await
    }

    /// On the login page: sign in.
    pub async fn login(&self, page: &Landing, email: &str, password: &str) -> Landing {
        let html = page.body();
        let (req, csrf) = (hidden(html, "req"), hidden(html, "csrf"));
        self.submit(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Posts the login form on `login` as ada@example.com with `PASSWORD` (plus `extra` fields),
    /// without following the answer.
    pub async fn post_login(&self, login: &Landing, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![
            ("req", hidden(login.body(), "req")),
            ("csrf", hidden(login.body(), "csrf")),
            ("email", "ada@example.com".to_string()),
            ("password", PASSWORD.to_string()),
        ];
        form.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        self.http
            .post(format!("{}/login", self.base))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// On the consent page: approve or deny.
    pub async fn consent(&self, page: &Landing, approve: bool) -> Landing {
        let html = page.body();
        let (req, csrf) = (hidden(html, "req"), hidden(html, "csrf"));
        let decision = if approve { "approve" } else { "deny" };
        self.submit(
            "/consent",
            &[("req", &req), ("csrf", &csrf), ("decision", decision)],
        )
        .await
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A person who can sign in with `PASSWORD`.
pub async fn user(app: &TestApp, email: &str) -> User {
    let params = custos::identity::password::HashParams::from_config(&app.state.settings.raw);
    let hash = custos::identity::password::hash_blocking(PASSWORD, params).unwrap();
    let u = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_string(),
        email_verified: true,
        name: "Ada Lovelace".into(),
        password_hash: Some(hash),
        disabled: false,
        created_at: T0,
        updated_at: T0,
    };
    app.state.store.insert_user(&u).await.unwrap();
    u
}

pub const REDIRECT: &str = "https://rp.example.com/callback";

pub fn web_client(public: bool) -> NewClient {
    NewClient {
        name: "Example RP".into(),
        public,
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: vec!["api:read".into()],
        resources: vec!["https://api.example.com".into()],
        ..Default::default()
    }
}
