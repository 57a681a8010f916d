//! A relying party for the README tour, built only on the `openidconnect` crate: it discovers Custos,
//! prints an authorization URL (PKCE + nonce + state), waits for the browser to come back to
//! http://127.0.0.1:PORT/callback, exchanges the code, verifies the ID token against the JWKS, calls
//! userinfo and refreshes once.
//!
//!   cargo run --example rp -- CLIENT_ID CLIENT_SECRET [ISSUER] [PORT]

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http(req: HttpRequest) -> Result<HttpResponse, std::io::Error> {
    let (parts, body) = req.into_parts();
    let r = reqwest::Client::new()
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(std::io::Error::other)?;
    let mut b = http::Response::builder().status(r.status());
    for (k, v) in r.headers() {
        b = b.header(k, v);
    }
    b.body(r.bytes().await.map_err(std::io::Error::other)?.to_vec())
        .map_err(std::io::Error::other)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: cargo run --example rp -- CLIENT_ID CLIENT_SECRET [ISSUER] [PORT]");
        std::process::exit(2);
    }
    let issuer = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let port: u16 = args.get(3).map(|p| p.parse()).transpose()?.unwrap_or(8765);
    let redirect = format!("http://127.0.0.1:{port}/callback");

    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer)?, &http).await?;
    let userinfo = meta.userinfo_endpoint().map(|u| u.url().clone());
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(args[0].clone()),
        Some(ClientSecret::new(args[1].clone())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.clone())?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("Open this in your browser and sign in:\n\n  {url}\n\nWaiting for {redirect} ...");
    let (mut sock, _) = listener.accept().await?;
    let mut buf = vec![0u8; 8192];
    let n = sock.read(&mut buf).await?;
    let line = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let target = line.split(' ').nth(1).unwrap_or_default();
    let back = url::Url::parse(&format!("http://127.0.0.1{target}"))?;
    let param = |k: &str| {
        back.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nSigned in. You can close this tab.\n")
        .await?;
    if let Some(e) = param("error") {
        return Err(format!(
            "authorization failed: {e}: {}",
            param("error_description").unwrap_or_default()
        )
        .into());
    }
    if param("state").as_deref() != Some(state.secret().as_str()) {
        return Err("state mismatch".into());
    }
    let code = param("code").ok_or("no code in the callback")?;

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))?
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await?;
    let id_token = tokens.id_token().ok_or("no ID token")?;
    let claims = id_token.claims(&client.id_token_verifier(), &nonce)?;
    println!(
        "\nID token verified against the JWKS (RS256): sub={} auth_time={:?}",
        claims.subject().as_str(),
        claims.auth_time()
    );
    println!(
        "access token ({}s): {}",
        tokens.expires_in().map(|d| d.as_secs()).unwrap_or(0),
        tokens.access_token().secret()
    );

    if let Some(ui) = userinfo {
        let r = reqwest::Client::new()
            .get(ui)
            .bearer_auth(tokens.access_token().secret())
            .send()
            .await?;
        println!("userinfo ({}): {}", r.status(), r.text().await?);
    }
    if let Some(rt) = tokens.refresh_token() {
        let next = client
            .exchange_refresh_token(rt)?
            .request_async(&http)
            .await?;
        let changed = next
            .refresh_token()
            .map(|n| n.secret() != rt.secret())
            .unwrap_or(false);
        println!("refreshed: new access token issued; refresh token rotated: {changed}");
    }
    Ok(())
}
