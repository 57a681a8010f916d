//! A small load generator for the browser-facing parts of Custos, used by `bench/run.sh`.
//!
//! ```text
//! loadgen refresh --url U --client-id ID --client-secret S --redirect-uri R --email E --password P
//! loadgen login   --url U --client-id ID --client-secret S --redirect-uri R --email E --password P
//! loadgen mint    --url U ... --count N          # prints N refresh tokens, one per line
//! loadgen argon2  --memory-kib 19456 --iterations 2 --parallelism 1 --n 50
//! loadgen login   ... --probe-every 5 --probe-cpu 0   # paired with argon2id probes (see `ProbeArgs`)
//! ```
//!
//! Everything goes through Custos's real pages, exactly as a browser would: `GET /authorize` → the
//! login page (its hidden `req` and `csrf` inputs are read out of the HTML) → `POST /login` → (the
//! consent page, approved, unless the client skips it) → `303 redirect_uri?code=…` → `POST /token`
//! (`authorization_code`, PKCE S256, `client_secret_basic`).
//! Each simulated browser keeps its own cookie jar (`custos_flow`, `custos_session`); redirects are
//! followed by hand and never to the client's redirect URI, which is only parsed.
//!
//! * `refresh`: mints one refresh token per worker through that flow (one sign-in per browser; with
//!   fewer browsers than workers the later authorizations of a browser ride its session, SSO), then each
//!   worker chains its own token for the duration: every `POST /token grant_type=refresh_token` uses the
//!   refresh token the previous response returned (rotation: each token works exactly once).
//! * `login`: every worker runs the whole flow again and again, each time with a fresh cookie jar (so a
//!   sign-in, i.e. one argon2id verification on the server, per flow), including the token exchange.
//!   With `--probe-every S` the load pauses every S seconds: the flows in flight finish, then argon2id
//!   is timed on the server's core while the server idles, and each stretch of load is compared with
//!   what argon2id allowed at the speed measured on both sides of it.
//! * `mint`: the minting step of `refresh` alone; the tokens go to stdout.
//! * `argon2`: the cost of one argon2id verification with the given parameters on this machine (single
//!   thread, `custos::identity::password::verify_blocking` against a `hash_blocking` hash), hence the most
//!   sign-ins per second one core can do.
//!
//! HTTP/1.1 with keep-alive, one connection per worker. Latency is measured per request (`refresh`) or
//! per whole flow (`login`); samples are kept exactly and p50/p90/p99/max come from the sorted samples.
//! Only what completes inside the measured window (after `--warmup`) counts; at the end of the window
//! requests still in flight are abandoned. Errors are counted by step and status. The last line of the
//! output is `BENCH key=value ...` for `bench/run.sh`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Parser, Subcommand};
use reqwest::header::{self, HeaderValue};
use tokio::time::Instant as TInstant;

#[derive(Parser)]
#[command(about = "Load generator for Custos's browser and refresh flows")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Mint one refresh token per worker through the real flow, then chain refreshes.
    Refresh(LoadArgs),
    /// Whole login → code → token flows, each with a fresh cookie jar.
    Login(LoadArgs),
    /// Mint refresh tokens through the real flow and print them, one per line.
    Mint {
        #[command(flatten)]
        flow: FlowArgs,
        /// How many refresh tokens.
        #[arg(long, default_value_t = 32)]
        count: usize,
        /// How many browsers sign in (each signs in once; its further authorizations are SSO).
        #[arg(long, default_value_t = 32)]
        browsers: usize,
    },
    /// Time argon2id verifications at the given parameters (single thread).
    Argon2 {
        #[arg(long, default_value_t = 19456)]
        memory_kib: u32,
        #[arg(long, default_value_t = 2)]
        iterations: u32,
        #[arg(long, default_value_t = 1)]
        parallelism: u32,
        /// Verifications timed (after 3 untimed ones).
        #[arg(long, default_value_t = 50)]
        n: u32,
    },
}

#[derive(Args, Clone)]
struct FlowArgs {
    /// Custos's base URL (the issuer), e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    #[arg(long)]
    client_id: String,
    #[arg(long, env = "LOADGEN_CLIENT_SECRET")]
    client_secret: String,
    /// A redirect URI registered for the client (never contacted).
    #[arg(long)]
    redirect_uri: String,
    #[arg(long)]
    email: String,
    #[arg(long, env = "LOADGEN_PASSWORD")]
    password: String,
    #[arg(long, default_value = "openid offline_access")]
    scope: String,
}

#[derive(Args, Clone)]
struct LoadArgs {
    #[command(flatten)]
    flow: FlowArgs,
    /// Concurrent workers (one connection each).
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds of load before the measured window (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// refresh: how many browsers sign in to mint the workers' tokens (default: one per worker).
    #[arg(long)]
    browsers: Option<usize>,
    /// A file created when the measured window starts (for perf and CPU accounting by the caller).
    #[arg(long)]
    mark: Option<std::path::PathBuf>,
    #[command(flatten)]
    probe: ProbeArgs,
}

/// `login` only: pair the load with argon2id timings on the server's core, so that the bound a stretch
/// of load is compared with was measured seconds (not minutes) from it. A virtual machine's speed drifts
/// by several percent within a minute, which is more than the margin being measured.
#[derive(Args, Clone)]
struct ProbeArgs {
    /// Every this many seconds of load, stop starting flows, let those in flight finish, and time
    /// `--probe-n` argon2id verifications on `--probe-cpu` while the server idles. 0 = no probes.
    #[arg(long, default_value_t = 0.0)]
    probe_every: f64,
    /// The core to time argon2id on: the server's.
    #[arg(long, default_value_t = 0)]
    probe_cpu: usize,
    /// Verifications per probe, back to back (the probe's figure is their mean: verifications per
    /// second is what the bound is about; their median is reported beside it).
    #[arg(long, default_value_t = 15)]
    probe_n: u32,
    #[arg(long, default_value_t = 19456)]
    probe_memory_kib: u32,
    #[arg(long, default_value_t = 2)]
    probe_iterations: u32,
    #[arg(long, default_value_t = 1)]
    probe_parallelism: u32,
    /// Judge a stretch only when the probes on both sides of it agree within this many percent (when
    /// they do not, the VM's speed moved during the stretch and its bound is a guess). 0 = judge every
    /// stretch: on the VM measured, dropping stretches did not make runs agree better, as the speed
    /// also dips inside stretches whose probes agree.
    #[arg(long, default_value_t = 0.0)]
    probe_agree: f64,
    /// While the load runs, also GET the JWKS document every this many milliseconds on a connection
    /// of its own, and report those requests' latency: what other clients wait while sign-ins keep the
    /// server's core busy. 0 = none.
    #[arg(long, default_value_t = 0)]
    side_every_ms: u64,
}

// ---- a scripted browser --------------------------------------------------------------------------------

/// Why a request or a flow failed; `key()` is what errors are counted by.
#[derive(Debug)]
enum Fail {
    /// An unexpected HTTP status at a step.
    Status(&'static str, u16),
    /// Connect, read, write or timeout: no HTTP answer.
    Io(&'static str),
    /// An answer that does not fit the flow (no code, a page where none should be, bad JSON...).
    Flow(&'static str, String),
}

impl Fail {
    fn key(&self) -> String {
        match self {
            Fail::Status(step, s) => format!("{step}:{s}"),
            Fail::Io(step) => format!("{step}:io"),
            Fail::Flow(step, _) => format!("{step}:flow"),
        }
    }
    fn describe(&self) -> String {
        match self {
            Fail::Status(step, s) => format!("{step}: HTTP {s}"),
            Fail::Io(step) => format!("{step}: no HTTP answer (connect/read/write/timeout)"),
            Fail::Flow(step, why) => format!("{step}: {why}"),
        }
    }
    fn kind(&self) -> ErrKind {
        match self {
            Fail::Status(..) => ErrKind::Http,
            Fail::Io(_) => ErrKind::Io,
            Fail::Flow(..) => ErrKind::Flow,
        }
    }
}

#[derive(Clone, Copy)]
enum ErrKind {
    Http,
    Io,
    Flow,
}

enum Landing {
    /// A Custos page: status, path, body.
    Page(u16, String, String),
    /// The client's redirect URI, with the response parameters.
    Client(url::Url),
}

/// One HTTP/1.1 keep-alive connection's worth of client plus a cookie jar of our own, so a fresh jar
/// costs nothing (a new `reqwest::Client` per flow would also mean a new TLS config and connection).
#[derive(Clone)]
struct Browser {
    http: reqwest::Client,
    base: String,
    jar: Vec<(String, String)>,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(4)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: http_client(),
            base: base.trim_end_matches('/').to_string(),
            jar: Vec::new(),
        }
    }

    fn cookie_header(&self) -> Option<HeaderValue> {
        if self.jar.is_empty() {
            return None;
        }
        let s = self
            .jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&s).ok()
    }

    fn absorb(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all(header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|kv| kv.trim().split_once('=')) else {
                continue;
            };
            let delete = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.jar.retain(|(k, _)| k != name);
            if !delete {
                self.jar.push((name.to_string(), value.to_string()));
            }
        }
    }

    async fn send(
        &mut self,
        step: &'static str,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Fail> {
        let rb = match self.cookie_header() {
            Some(c) => rb.header(header::COOKIE, c),
            None => rb,
        };
        let resp = rb.send().await.map_err(|_| Fail::Io(step))?;
        self.absorb(&resp);
        Ok(resp)
    }

    /// Follows 302/303 within Custos; stops at a page or at a redirect anywhere else.
    async fn follow(&mut self, mut resp: reqwest::Response) -> Result<Landing, Fail> {
        for _ in 0..10 {
            let status = resp.status().as_u16();
            if status != 303 && status != 302 {
                let path = resp.url().path().to_string();
                let body = resp.text().await.map_err(|_| Fail::Io("page"))?;
                return Ok(Landing::Page(status, path, body));
            }
            let loc = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| Fail::Flow("redirect", "no Location".into()))?
                .to_string();
            let next = if loc.starts_with('/') {
                format!("{}{loc}", self.base)
            } else {
                loc
            };
            if !next.starts_with(&format!("{}/", self.base)) {
                let u = url::Url::parse(&next)
                    .map_err(|_| Fail::Flow("redirect", format!("bad Location {next}")))?;
                return Ok(Landing::Client(u));
            }
            let step = step_of(&next, &self.base);
            let rb = self.http.get(&next);
            resp = self.send(step, rb).await?;
        }
        Err(Fail::Flow("redirect", "more than 10 redirects".into()))
    }

    async fn submit(
        &mut self,
        step: &'static str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Landing, Fail> {
        let rb = self.http.post(format!("{}{path}", self.base)).form(form);
        let r = self.send(step, rb).await?;
        self.follow(r).await
    }
}

/// A short name for the endpoint a URL points at, for error keys.
fn step_of(url: &str, base: &str) -> &'static str {
    let path = url.strip_prefix(base).unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/authorize" => "authorize",
        "/authorize/resume" => "resume",
        "/login" => "login_page",
        "/consent" => "consent_page",
        _ => "other",
    }
}

/// The sign-in form of a pending authorization request (shown at `/authorize`, or at `/login`).
fn is_login_form(html: &str) -> bool {
    html.contains("action=\"/login\"") && html.contains("name=\"req\"")
}

/// The value of a hidden input in an HTML form.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_string())
}

/// `client_secret_basic` (RFC 6749 §2.3.1: both parts form-urlencoded before base64).
fn basic_auth(id: &str, secret: &str) -> HeaderValue {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let v = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    );
    HeaderValue::from_str(&v).expect("basic auth header")
}

struct FlowCfg {
    base: String,
    client_id: String,
    auth: HeaderValue,
    redirect_uri: String,
    email: String,
    password: String,
    scope: String,
}

impl FlowCfg {
    fn new(a: &FlowArgs) -> FlowCfg {
        FlowCfg {
            base: a.url.trim_end_matches('/').to_string(),
            client_id: a.client_id.clone(),
            auth: basic_auth(&a.client_id, &a.client_secret),
            redirect_uri: a.redirect_uri.clone(),
            email: a.email.clone(),
            password: a.password.clone(),
            scope: a.scope.clone(),
        }
    }
}

#[derive(Default)]
struct Tokens {
    refresh_token: Option<String>,
    /// Whether the flow showed the login page (false = the session signed the person in: SSO).
    signed_in: bool,
}

/// One authorization-code flow with PKCE in `b`'s cookie jar, up to and including the token exchange.
async fn code_flow(b: &mut Browser, c: &FlowCfg) -> Result<Tokens, Fail> {
    let verifier = custos::clients::random_token(32);
    let challenge = custos::oauth::pkce::s256(&verifier);
    let state = custos::clients::random_token(12);
    let nonce = custos::clients::random_token(12);
    let url = url::Url::parse_with_params(
        &format!("{}/authorize", c.base),
        &[
            ("response_type", "code"),
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", c.redirect_uri.as_str()),
            ("scope", c.scope.as_str()),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| Fail::Flow("authorize", e.to_string()))?;
    let rb = b.http.get(url.as_str());
    let first = b.send("authorize", rb).await?;
    let mut landing = b.follow(first).await?;
    let mut signed_in = false;
    let back = loop {
        landing = match landing {
            Landing::Client(u) => break u,
            Landing::Page(200, _, body) if is_login_form(&body) && !signed_in => {
                signed_in = true;
                let (Some(req), Some(csrf)) = (hidden(&body, "req"), hidden(&body, "csrf")) else {
                    return Err(Fail::Flow("login_page", "no req/csrf inputs".into()));
                };
                b.submit(
                    "login",
                    "/login",
                    &[
                        ("req", &req),
                        ("csrf", &csrf),
                        ("email", &c.email),
                        ("password", &c.password),
                    ],
                )
                .await?
            }
            Landing::Page(200, path, body) if path == "/consent" => {
                let (Some(req), Some(csrf)) = (hidden(&body, "req"), hidden(&body, "csrf")) else {
                    return Err(Fail::Flow("consent_page", "no req/csrf inputs".into()));
                };
                b.submit(
                    "consent",
                    "/consent",
                    &[("req", &req), ("csrf", &csrf), ("decision", "approve")],
                )
                .await?
            }
            Landing::Page(status, path, _) => {
                let step = step_of(&path, "");
                let step = if step == "login_page" && signed_in {
                    "login"
                } else {
                    step
                };
                return Err(Fail::Status(step, status));
            }
        };
    };
    let param = |n: &str| {
        back.query_pairs()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(e) = param("error") {
        return Err(Fail::Flow("callback", format!("error={e}")));
    }
    if param("state").as_deref() != Some(state.as_str()) {
        return Err(Fail::Flow("callback", "state mismatch".into()));
    }
    let code = param("code").ok_or_else(|| Fail::Flow("callback", "no code".into()))?;
    let rb = b
        .http
        .post(format!("{}/token", c.base))
        .header(header::AUTHORIZATION, c.auth.clone())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", c.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ]);
    let resp = b.send("code_token", rb).await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|_| Fail::Io("code_token"))?;
    if status != 200 {
        return Err(Fail::Status("code_token", status));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Fail::Flow("code_token", format!("bad JSON: {e}")))?;
    if v["access_token"].as_str().is_none() {
        return Err(Fail::Flow("code_token", "no access_token".into()));
    }
    Ok(Tokens {
        refresh_token: v["refresh_token"].as_str().map(str::to_string),
        signed_in,
    })
}

/// One refresh: returns the next refresh token.
async fn refresh_once(
    http: &reqwest::Client,
    c: &FlowCfg,
    token_url: &str,
    rt: &str,
) -> Result<String, Fail> {
    let resp = http
        .post(token_url)
        .header(header::AUTHORIZATION, c.auth.clone())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .map_err(|_| Fail::Io("refresh"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|_| Fail::Io("refresh"))?;
    if status != 200 {
        return Err(Fail::Status("refresh", status));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Fail::Flow("refresh", format!("bad JSON: {e}")))?;
    if v["access_token"].as_str().is_none() {
        return Err(Fail::Flow("refresh", "no access_token".into()));
    }
    v["refresh_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Fail::Flow("refresh", "no refresh_token in the response".into()))
}

// ---- minting ------------------------------------------------------------------------------------------

struct Minted {
    /// (token, the browser that obtained it: its session lets it mint again without a sign-in)
    tokens: Vec<(String, Browser)>,
    sign_ins: usize,
    sso: usize,
    elapsed: Duration,
}

/// `count` refresh tokens through the real flow, `browsers` of them signing in concurrently; each
/// browser's further authorizations ride its session.
async fn mint(c: &Arc<FlowCfg>, count: usize, browsers: usize) -> Result<Minted, String> {
    let browsers = browsers.clamp(1, count.max(1));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..browsers {
        let n = count / browsers + usize::from(i < count % browsers);
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut b = Browser::new(&c.base);
            let mut out = Vec::new();
            let (mut sign_ins, mut sso) = (0, 0);
            for _ in 0..n {
                let t = code_flow(&mut b, &c)
                    .await
                    .map_err(|e| format!("minting flow failed: {}", e.describe()))?;
                if t.signed_in {
                    sign_ins += 1;
                } else {
                    sso += 1;
                }
                let rt = t.refresh_token.ok_or(
                    "the token response has no refresh_token (does the client have the \
                     refresh_token grant, and does the scope include offline_access?)",
                )?;
                out.push((rt, b.clone()));
            }
            Ok::<_, String>((out, sign_ins, sso))
        }));
    }
    let mut m = Minted {
        tokens: Vec::new(),
        sign_ins: 0,
        sso: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (out, s, o) = t.await.map_err(|e| e.to_string())??;
        m.tokens.extend(out);
        m.sign_ins += s;
        m.sso += o;
    }
    m.elapsed = t0.elapsed();
    Ok(m)
}

// ---- measurement --------------------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    /// Latencies of what completed inside the window, microseconds.
    lat_us: Vec<u32>,
    /// Completed outside the window (warm-up), successes.
    outside_ok: u64,
    errors: BTreeMap<String, u64>,
    http_errors: u64,
    io_errors: u64,
    flow_errors: u64,
    first_error: Option<String>,
    /// Successful flows that showed the login page (login mode: must be all of them).
    signed_in: u64,
}

impl Stats {
    fn error(&mut self, e: &Fail, counted: bool) {
        if self.first_error.is_none() {
            self.first_error = Some(e.describe());
        }
        if !counted {
            return;
        }
        *self.errors.entry(e.key()).or_default() += 1;
        match e.kind() {
            ErrKind::Http => self.http_errors += 1,
            ErrKind::Io => self.io_errors += 1,
            ErrKind::Flow => self.flow_errors += 1,
        }
    }
    fn merge(&mut self, o: Stats) {
        self.lat_us.extend(o.lat_us);
        self.outside_ok += o.outside_ok;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.http_errors += o.http_errors;
        self.io_errors += o.io_errors;
        self.flow_errors += o.flow_errors;
        self.signed_in += o.signed_in;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

#[derive(Clone)]
struct Window {
    start: TInstant,
    end: TInstant,
    /// This process's CPU time (ns, all threads) when the window opened.
    cpu_at_start: Arc<std::sync::Mutex<Option<u64>>>,
}

/// CPU time of this process so far, nanoseconds, summed over its threads (Linux `schedstat`).
fn own_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let p = t.ok()?.path().join("schedstat");
        let s = std::fs::read_to_string(p).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

impl Window {
    /// The load generator's own CPU use over the window, in percent of one core (if it is near 100 %,
    /// the load generator, not the server, may be the limit).
    fn own_cpu_pct(&self) -> Option<f64> {
        let start = (*self.cpu_at_start.lock().ok()?)?;
        let wall = TInstant::now()
            .saturating_duration_since(self.start)
            .as_secs_f64();
        let used = own_cpu_ns()?.checked_sub(start)? as f64 / 1e9;
        (wall > 0.0).then(|| used / wall * 100.0)
    }
}

impl Window {
    fn contains(&self, t: TInstant) -> bool {
        t >= self.start && t <= self.end
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// p50, p90, p99 and max of sorted microsecond samples, in milliseconds.
fn spread(sorted: &[u32]) -> (f64, f64, f64, f64) {
    (
        pct(sorted, 50.0),
        pct(sorted, 90.0),
        pct(sorted, 99.0),
        sorted.last().map_or(0.0, |&v| v as f64 / 1000.0),
    )
}

fn report(mode: &str, workers: usize, duration: f64, mut s: Stats, extra: &str) {
    s.lat_us.sort_unstable();
    let n = s.lat_us.len();
    let rate = n as f64 / duration;
    let mean = if n == 0 {
        0.0
    } else {
        s.lat_us.iter().map(|&v| v as f64).sum::<f64>() / n as f64 / 1000.0
    };
    let (p50, p90, p99, max) = spread(&s.lat_us);
    let unit = if mode == "login" { "flows" } else { "requests" };
    println!(
        "{mode}: {n} {unit} in {duration:.1} s with {workers} workers = {rate:.1} {unit}/s \
         (+{} outside the window)",
        s.outside_ok
    );
    println!("latency ms: mean {mean:.2}  p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  max {max:.2}");
    // A coarse histogram: how many samples fall under each bound.
    let bounds_ms = [
        0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
    ];
    let mut line = String::from("histogram (ms, share at or below):");
    for b in bounds_ms {
        let below = s.lat_us.partition_point(|&v| (v as f64) <= b * 1000.0);
        if below > 0 {
            line.push_str(&format!(" <={b}:{:.1}%", below as f64 * 100.0 / n as f64));
        }
        if below == n {
            break;
        }
    }
    if n > 0 {
        println!("{line}");
    }
    let total_err = s.http_errors + s.io_errors + s.flow_errors;
    let kinds = if s.errors.is_empty() {
        "none".to_string()
    } else {
        s.errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!("errors: {total_err} ({kinds})");
    if let Some(e) = &s.first_error {
        println!("first error: {e}");
    }
    println!(
        "BENCH mode={mode} workers={workers} duration_s={duration:.3} completed={n} rps={rate:.1} \
         mean_ms={mean:.3} p50_ms={p50:.3} p90_ms={p90:.3} p99_ms={p99:.3} max_ms={max:.3} \
         errors={total_err} http_errors={} io_errors={} flow_errors={} error_kinds={kinds} \
         outside_ok={}{extra}",
        s.http_errors, s.io_errors, s.flow_errors, s.outside_ok
    );
}

fn start_window(a: &LoadArgs) -> Window {
    let start = TInstant::now() + Duration::from_secs_f64(a.warmup.max(0.0));
    let w = Window {
        start,
        end: start + Duration::from_secs_f64(a.duration),
        cpu_at_start: Arc::new(std::sync::Mutex::new(None)),
    };
    let (mark, at, cpu) = (a.mark.clone(), w.start, w.cpu_at_start.clone());
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        if let Ok(mut c) = cpu.lock() {
            *c = own_cpu_ns();
        }
        if let Some(m) = mark
            && let Err(e) = std::fs::write(&m, b"measuring\n")
        {
            eprintln!("loadgen: cannot write {}: {e}", m.display());
        }
    });
    w
}

async fn refresh_mode(a: LoadArgs) -> Result<(), String> {
    let c = Arc::new(FlowCfg::new(&a.flow));
    let browsers = a.browsers.unwrap_or(a.workers);
    let minted = mint(&c, a.workers, browsers).await?;
    println!(
        "minted {} refresh tokens through the real flow in {:.2} s: {} sign-ins, {} SSO authorizations",
        minted.tokens.len(),
        minted.elapsed.as_secs_f64(),
        minted.sign_ins,
        minted.sso
    );
    let w = start_window(&a);
    let token_url = format!("{}/token", c.base);
    let mut tasks = Vec::new();
    for (rt, browser) in minted.tokens {
        let c = c.clone();
        let w = w.clone();
        let token_url = token_url.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            // Its own connection, like one wrk connection.
            let http = http_client();
            let mut browser = browser;
            let mut rt = rt;
            loop {
                let t0 = TInstant::now();
                if t0 >= w.end {
                    break;
                }
                let r = tokio::select! {
                    r = refresh_once(&http, &c, &token_url, &rt) => r,
                    _ = tokio::time::sleep_until(w.end) => break,
                };
                let t1 = TInstant::now();
                match r {
                    Ok(next) => {
                        rt = next;
                        if w.contains(t1) {
                            s.lat_us.push(micros(t1 - t0));
                        } else {
                            s.outside_ok += 1;
                        }
                    }
                    Err(e) => {
                        s.error(&e, w.contains(t1));
                        // The chain is broken (the token may or may not have been used): a new
                        // family through the browser's session (no sign-in), then carry on.
                        loop {
                            if TInstant::now() >= w.end {
                                break;
                            }
                            let m = tokio::select! {
                                m = code_flow(&mut browser, &c) => m,
                                _ = tokio::time::sleep_until(w.end) => break,
                            };
                            match m {
                                Ok(Tokens {
                                    refresh_token: Some(t),
                                    ..
                                }) => {
                                    rt = t;
                                    break;
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    let now = TInstant::now();
                                    s.error(&e, w.contains(now));
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    }
                }
            }
            s
        }));
    }
    let mut all = Stats::default();
    for t in tasks {
        all.merge(t.await.map_err(|e| e.to_string())?);
    }
    let cpu = w.own_cpu_pct().unwrap_or(-1.0);
    report(
        "refresh",
        a.workers,
        a.duration,
        all,
        &format!(
            " mint_s={:.3} loadgen_cpu_pct={cpu:.0}",
            minted.elapsed.as_secs_f64()
        ),
    );
    Ok(())
}

/// One whole flow as a new browser (no flow cookie, no session), so a sign-in every time: a flow that
/// skips the login page is a failure. After a failed connection `b` starts on a new one.
async fn fresh_sign_in(b: &mut Browser, c: &FlowCfg) -> Result<(), Fail> {
    b.jar.clear();
    match code_flow(b, c).await {
        Ok(t) if t.signed_in => Ok(()),
        Ok(_) => Err(Fail::Flow(
            "authorize",
            "no login page with a fresh jar".into(),
        )),
        Err(e) => {
            if matches!(e, Fail::Io(_)) {
                *b = Browser::new(&c.base);
            }
            Err(e)
        }
    }
}

/// A latency sample in microseconds.
fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

async fn login_mode(a: LoadArgs) -> Result<(), String> {
    let c = Arc::new(FlowCfg::new(&a.flow));
    // One flow first, outside any measurement: fail fast with a clear message if the set-up is wrong.
    let mut probe = Browser::new(&c.base);
    let t = code_flow(&mut probe, &c)
        .await
        .map_err(|e| format!("the first flow failed: {}", e.describe()))?;
    if !t.signed_in {
        return Err("the first flow did not show the login page".into());
    }
    if a.probe.probe_every > 0.0 {
        return login_paired(a, c).await;
    }
    let w = start_window(&a);
    let mut tasks = Vec::new();
    for _ in 0..a.workers {
        let c = c.clone();
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let mut b = Browser::new(&c.base);
            loop {
                let t0 = TInstant::now();
                if t0 >= w.end {
                    break;
                }
                let r = tokio::select! {
                    r = fresh_sign_in(&mut b, &c) => r,
                    _ = tokio::time::sleep_until(w.end) => break,
                };
                let t1 = TInstant::now();
                match r {
                    Ok(()) if w.contains(t1) => {
                        s.signed_in += 1;
                        s.lat_us.push(micros(t1 - t0));
                    }
                    Ok(()) => s.outside_ok += 1,
                    Err(e) => s.error(&e, w.contains(t1)),
                }
            }
            s
        }));
    }
    let mut all = Stats::default();
    for t in tasks {
        all.merge(t.await.map_err(|e| e.to_string())?);
    }
    let signed_in = all.signed_in;
    let cpu = w.own_cpu_pct().unwrap_or(-1.0);
    report(
        "login",
        a.workers,
        a.duration,
        all,
        &format!(" sign_ins={signed_in} loadgen_cpu_pct={cpu:.0}"),
    );
    Ok(())
}

/// What the workers of a paired run are told before each flow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    Run,
    Pause,
    Stop,
}

/// Waits while the load is paused; false once it stops.
async fn may_start(gate_rx: &mut tokio::sync::watch::Receiver<Gate>) -> bool {
    match gate_rx.wait_for(|g| *g != Gate::Pause).await {
        Ok(g) => *g != Gate::Stop,
        Err(_) => false,
    }
}

/// `login` with argon2id probes: stretches of load, each followed by a drain (no new flows, those in
/// flight finish) and a probe of the server's core while the server idles (see [`ProbeArgs`]). Only
/// flows that complete inside a stretch count, against the time of the stretches; each stretch's bound
/// is one verification per the average of the probes' mean verification times before and after it
/// (the same figure from the probes' medians is printed beside it).
async fn login_paired(a: LoadArgs, c: Arc<FlowCfg>) -> Result<(), String> {
    let p = a.probe.clone();
    let (gate, gate_rx) = tokio::sync::watch::channel(Gate::Run);
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.workers {
        let c = c.clone();
        let mut gate_rx = gate_rx.clone();
        let in_flight = in_flight.clone();
        tasks.push(tokio::spawn(async move {
            let mut done: Vec<(TInstant, u32)> = Vec::new();
            let mut failed: Vec<(TInstant, Fail)> = Vec::new();
            let mut b = Browser::new(&c.base);
            loop {
                if !may_start(&mut gate_rx).await {
                    break;
                }
                // No await between reading the gate and counting the flow in: on this one-thread
                // runtime the controller cannot see zero in flight while a flow is about to start.
                in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let t0 = TInstant::now();
                let r = fresh_sign_in(&mut b, &c).await;
                let t1 = TInstant::now();
                in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                match r {
                    Ok(()) => done.push((t1, micros(t1 - t0))),
                    Err(e) => failed.push((t1, e)),
                }
            }
            (done, failed)
        }));
    }
    // Requests of another kind beside the sign-ins (`--side-every-ms`), sent only while flows may start.
    let side = (p.side_every_ms > 0).then(|| {
        let mut gate_rx = gate_rx.clone();
        let url = format!("{}/.well-known/jwks.json", c.base.trim_end_matches('/'));
        let every = Duration::from_millis(p.side_every_ms);
        tokio::spawn(async move {
            let http = http_client();
            let mut lat: Vec<u32> = Vec::new();
            let mut failed: Vec<Fail> = Vec::new();
            loop {
                if !may_start(&mut gate_rx).await {
                    break;
                }
                let t0 = TInstant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(_) => lat.push(micros(t0.elapsed())),
                        Err(_) => failed.push(Fail::Io("jwks")),
                    },
                    Ok(r) => failed.push(Fail::Status("jwks", r.status().as_u16())),
                    Err(_) => failed.push(Fail::Io("jwks")),
                }
                tokio::time::sleep(every).await;
            }
            (lat, failed)
        })
    });
    let drain = || async {
        let until = TInstant::now() + Duration::from_secs(60);
        while in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            if TInstant::now() >= until {
                return Err("flows still in flight 60 s after the load paused".to_string());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    };
    tokio::time::sleep(Duration::from_secs_f64(a.warmup.max(0.0))).await;
    let _ = gate.send(Gate::Pause);
    drain().await?;
    let mut probes = vec![probe_argon2(&p).await?];
    let cpu_at_start = own_cpu_ns();
    let first = TInstant::now();
    if let Some(m) = &a.mark
        && let Err(e) = std::fs::write(m, b"measuring\n")
    {
        eprintln!("loadgen: cannot write {}: {e}", m.display());
    }
    // A stretch runs from the moment flows may start until the last of them has completed: the
    // server's core is busy all along (the drain finishes the flows already queued for argon2id), and
    // every flow started in it is counted, none cut off at either end.
    let mut windows: Vec<(TInstant, TInstant)> = Vec::new();
    let mut loaded = 0.0;
    while a.duration - loaded > 1e-3 {
        let len = p.probe_every.min(a.duration - loaded);
        let _ = gate.send(Gate::Run);
        let s = TInstant::now();
        tokio::time::sleep(Duration::from_secs_f64(len)).await;
        let _ = gate.send(Gate::Pause);
        loaded += s.elapsed().as_secs_f64();
        drain().await?;
        windows.push((s, TInstant::now()));
        probes.push(probe_argon2(&p).await?);
    }
    let _ = gate.send(Gate::Stop);
    let wall = first.elapsed().as_secs_f64();
    let loadgen_cpu = own_cpu_ns()
        .zip(cpu_at_start)
        .map(|(b, a)| b.saturating_sub(a) as f64 / 1e9 / wall * 100.0)
        .unwrap_or(-1.0);

    let mut s = Stats::default();
    // Flows completed since the first probe (for per-flow figures over the caller's measurement).
    let mut since_first = 0u64;
    let mut per_window = vec![0u64; windows.len()];
    // (stretch, latency) of each flow completed in a stretch; the judged ones go into `s` below.
    let mut samples: Vec<(usize, u32)> = Vec::new();
    // Each stretch ends with its last completion (the drain is polled, so noticed a moment later).
    let mut last = windows.iter().map(|&(a, _)| a).collect::<Vec<_>>();
    let in_window = |t: TInstant| windows.iter().position(|&(a, b)| t >= a && t <= b);
    for task in tasks {
        let (done, failed) = task.await.map_err(|e| e.to_string())?;
        for (t1, lat) in done {
            if t1 >= first {
                since_first += 1;
            }
            match in_window(t1) {
                Some(i) => {
                    per_window[i] += 1;
                    last[i] = last[i].max(t1);
                    samples.push((i, lat));
                }
                None => s.outside_ok += 1,
            }
        }
        // Nothing is abandoned in a paired run (every pause drains), so every failure after the
        // warm-up counts, inside a stretch or not.
        for (t1, e) in failed {
            s.error(&e, t1 >= first);
        }
    }
    // Flows argon2id alone would have allowed in each stretch, from the probes on both sides of it.
    let shown: Vec<String> = probes.iter().map(|m| format!("{:.2}", m.mean)).collect();
    let shown_medians: Vec<String> = probes.iter().map(|m| format!("{:.2}", m.median)).collect();
    println!(
        "argon2id on cpu {} (m={} KiB t={} p={}), {} probes of {} verifications back to back while the \
         server idled, means ms: {} (medians ms: {})",
        p.probe_cpu,
        p.probe_memory_kib,
        p.probe_iterations,
        p.probe_parallelism,
        probes.len(),
        p.probe_n,
        shown.join(" "),
        shown_medians.join(" ")
    );
    // What the judged stretches would give against the probes' medians instead (flows, allowed).
    let mut by_median = (0u64, 0.0f64);
    // (flows, allowed, seconds) over the judged stretches and over all of them.
    let (mut judged, mut every) = ((0u64, 0.0f64, 0.0f64), (0u64, 0.0f64, 0.0f64));
    let (mut n_judged, mut shares) = (0usize, Vec::new());
    let mut is_judged = vec![false; windows.len()];
    for (i, &(a0, _)) in windows.iter().enumerate() {
        let (before, after) = (probes[i].mean, probes[i + 1].mean);
        let len = (last[i] - a0).as_secs_f64();
        if len <= 0.0 {
            println!("stretch {:>2}: no flow completed", i + 1);
            continue;
        }
        let allowed = len * 1000.0 / ((before + after) / 2.0);
        let share = per_window[i] as f64 / allowed * 100.0;
        let apart = (before - after).abs() / before.min(after) * 100.0;
        let ok = p.probe_agree <= 0.0 || apart <= p.probe_agree;
        println!(
            "stretch {:>2}: {:>4} flows in {len:.2} s, probes {before:.2} / {after:.2} ms ({apart:.1}% apart) \
             -> argon2id allowed {allowed:.1} -> {share:.1}%{}",
            i + 1,
            per_window[i],
            if ok {
                ""
            } else {
                "  (not judged: the probes disagree)"
            }
        );
        every = (every.0 + per_window[i], every.1 + allowed, every.2 + len);
        if ok {
            is_judged[i] = true;
            judged = (judged.0 + per_window[i], judged.1 + allowed, judged.2 + len);
            let median_ms = (probes[i].median + probes[i + 1].median) / 2.0;
            by_median = (
                by_median.0 + per_window[i],
                by_median.1 + len * 1000.0 / median_ms,
            );
            n_judged += 1;
            shares.push(share);
        }
    }
    if judged.1 <= 0.0 {
        return Err(format!(
            "no stretch can be judged: the probes on its two sides differ by more than {}% for every \
             stretch (the machine's speed is moving too much; run again, or raise --probe-agree)",
            p.probe_agree
        ));
    }
    if n_judged * 2 < windows.len() {
        println!(
            "WARNING: only {n_judged} of {} stretches could be judged; the machine's speed moved a lot",
            windows.len()
        );
    }
    // The latencies and counts reported are those of the judged stretches.
    for (i, lat) in samples {
        if is_judged[i] {
            s.signed_in += 1;
            s.lat_us.push(lat);
        } else {
            s.outside_ok += 1;
        }
    }
    let (flows, allowed, active) = judged;
    let bound = allowed / active;
    let ratio = flows as f64 / allowed * 100.0;
    let ratio_all = every.0 as f64 / every.1 * 100.0;
    let ratio_median = by_median.0 as f64 / by_median.1 * 100.0;
    shares.sort_by(f64::total_cmp);
    println!(
        "paired: {flows} flows in the {n_judged} judged stretches of {} ({active:.1} s of load, each until \
         its last flow completed) against {allowed:.1} that argon2id alone allowed in them = {ratio:.1}% \
         (stretches: min {:.1}%, median {:.1}%, max {:.1}%); all stretches: {} flows against {:.1} = \
         {ratio_all:.1}%",
        windows.len(),
        shares.first().copied().unwrap_or(0.0),
        shares.get(shares.len() / 2).copied().unwrap_or(0.0),
        shares.last().copied().unwrap_or(0.0),
        every.0,
        every.1,
    );
    println!(
        "paired against the probes' medians instead of their means (the undisturbed verification \
         rather than the rate the core sustained): {} flows against {:.1} = {ratio_median:.1}%",
        by_median.0, by_median.1
    );
    let mut side_fields = String::new();
    if let Some(h) = side {
        let (mut lat, failed) = h.await.map_err(|e| e.to_string())?;
        for e in &failed {
            s.error(e, true);
        }
        lat.sort_unstable();
        let (p50, p90, p99, max) = spread(&lat);
        println!(
            "beside the sign-ins: {} GET /.well-known/jwks.json, one every {} ms on a connection of \
             their own, while flows could start: latency ms p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  \
             max {max:.2}; {} failed",
            lat.len(),
            p.side_every_ms,
            failed.len()
        );
        side_fields = format!(
            " side_n={} side_p50_ms={p50:.3} side_p99_ms={p99:.3} side_max_ms={max:.3}",
            lat.len()
        );
    }
    let signed_in = s.signed_in;
    report(
        "login",
        a.workers,
        active,
        s,
        &format!(
            " sign_ins={signed_in} loadgen_cpu_pct={loadgen_cpu:.0} flows_since_mark={since_first} \
             probes={} probe_means_ms={} probe_medians_ms={} judged={n_judged}/{} bound_per_s={bound:.2} \
             ratio_pct={ratio:.2} ratio_all_pct={ratio_all:.2} ratio_median_pct={ratio_median:.2}{side_fields}",
            probes.len(),
            shown.join(","),
            shown_medians.join(","),
            windows.len()
        ),
    );
    Ok(())
}

/// One probe: `--probe-n` argon2id verifications back to back on the server's core, in milliseconds.
#[derive(Clone, Copy)]
struct Probe {
    /// Their total time over their number: one per this is the rate the core sustained.
    mean: f64,
    /// The undisturbed verification; below the mean when something else took the core for a moment.
    median: f64,
}

/// Times a [`Probe`] with this very program's `argon2` mode under `taskset`, the same measurement
/// `bench/run.sh` makes on its own.
async fn probe_argon2(p: &ProbeArgs) -> Result<Probe, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cmd = std::process::Command::new("taskset");
    cmd.arg("-c")
        .arg(p.probe_cpu.to_string())
        .arg(exe)
        .arg("argon2")
        .args(["--memory-kib", &p.probe_memory_kib.to_string()])
        .args(["--iterations", &p.probe_iterations.to_string()])
        .args(["--parallelism", &p.probe_parallelism.to_string()])
        .args(["--n", &p.probe_n.to_string()]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run the argon2id probe (taskset): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "the argon2id probe failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let field = |key: &str| {
        text.lines()
            .filter(|l| l.starts_with("BENCH "))
            .flat_map(|l| l.split_whitespace())
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .ok_or_else(|| format!("the argon2id probe printed no {key}: {text}"))
    };
    Ok(Probe {
        mean: field("verify_ms")?,
        median: field("verify_median_ms")?,
    })
}

fn argon2_mode(memory_kib: u32, iterations: u32, parallelism: u32, n: u32) -> Result<(), String> {
    use custos::identity::password::{HashParams, hash_blocking, verify_blocking};
    let params = HashParams {
        memory_kib,
        iterations,
        parallelism,
    };
    let pw = "correct horse battery staple";
    let t = Instant::now();
    let phc = hash_blocking(pw, params).map_err(|e| e.to_string())?;
    let hash_ms = t.elapsed().as_secs_f64() * 1000.0;
    for _ in 0..3 {
        if !verify_blocking(pw, &phc) {
            return Err("verification failed".into());
        }
    }
    let mut ms = Vec::with_capacity(n as usize);
    let all = Instant::now();
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let ok = verify_blocking(pw, &phc);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if !ok {
            return Err("verification failed".into());
        }
    }
    let total = all.elapsed().as_secs_f64();
    let mean = total * 1000.0 / ms.len() as f64;
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    let (min, max) = (ms[0], ms[ms.len() - 1]);
    let max_per_s = 1000.0 / mean;
    println!(
        "argon2id m={memory_kib} KiB t={iterations} p={parallelism}: one hash {hash_ms:.2} ms; \
         {} verifications, mean {mean:.2} ms (median {median:.2}, min {min:.2}, max {max:.2}) \
         => at most {max_per_s:.1} sign-ins/s per core",
        ms.len()
    );
    println!(
        "BENCH mode=argon2 memory_kib={memory_kib} iterations={iterations} parallelism={parallelism} \
         n={} verify_ms={mean:.3} verify_median_ms={median:.3} verify_min_ms={min:.3} \
         verify_max_ms={max:.3} max_logins_per_s={max_per_s:.2}",
        ms.len()
    );
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let rt = || {
        // One thread: the load generator is pinned to one core anyway.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    let r = match cli.mode {
        Mode::Refresh(a) => rt().block_on(refresh_mode(a)),
        Mode::Login(a) => rt().block_on(login_mode(a)),
        Mode::Mint {
            flow,
            count,
            browsers,
        } => rt().block_on(async move {
            let c = Arc::new(FlowCfg::new(&flow));
            let m = mint(&c, count, browsers).await?;
            for (t, _) in &m.tokens {
                println!("{t}");
            }
            eprintln!(
                "minted {} refresh tokens in {:.2} s: {} sign-ins, {} SSO authorizations",
                m.tokens.len(),
                m.elapsed.as_secs_f64(),
                m.sign_ins,
                m.sso
            );
            Ok(())
        }),
        Mode::Argon2 {
            memory_kib,
            iterations,
            parallelism,
            n,
        } => argon2_mode(memory_kib, iterations, parallelism, n),
    };
    if let Err(e) = r {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
