//! The command line: `custos [--config FILE] <command>`. Every command works on the configured database.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use zeroize::Zeroizing;

use crate::app;
use crate::clients::{self, NewClient};
use crate::clock::{Clock, SystemClock};
use crate::config::{Alg, Config, PasswordHashing, Settings};
use crate::identity::{self, password};
use crate::keys::rotation::KeyAdmin;
use crate::keys::seal::Kek;
use crate::store::{Store, User};

#[derive(Parser, Debug)]
#[command(
    name = "custos",
    version,
    about = "An OAuth 2.0 / OpenID Connect identity provider"
)]
pub struct Cli {
    /// Config file (TOML). Default: ./custos.toml when present.
    #[arg(long, global = true, env = "CUSTOS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// OAuth clients.
    #[command(subcommand)]
    Client(ClientCmd),
    /// User accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Browser sessions: list a person's, end them.
    #[command(subcommand)]
    Session(SessionCmd),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Validate the configuration and print it with secrets redacted.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// List signing keys: kid, algorithm, state and when each state began.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Publish a new `next` key (every algorithm, or --alg); it starts signing once it has been in the
    /// JWKS for jwks_max_age_secs + keys_refresh_secs + 60 s, and the old key is retired.
    Rotate {
        /// RS256, ES256 or EdDSA (default: all three).
        #[arg(long)]
        alg: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a key at once (key compromise): it leaves the JWKS and its tokens stop verifying; when it
    /// was signing, a replacement signs from now on.
    Revoke {
        kid: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every stored private key under a new KEK (read from --new-kek-file or CUSTOS_NEW_KEK).
    RekeyKek {
        /// A file holding the new KEK (base64 of 32 bytes).
        #[arg(long, env = "CUSTOS_NEW_KEK_FILE")]
        new_kek_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Register a client; prints its id and (confidential clients) its secret, once.
    Create(Box<CreateClient>),
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    Delete {
        id: String,
    },
    /// Replace a confidential client's secret; prints the new one, once.
    RotateSecret {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateClient {
    #[arg(long)]
    pub name: String,
    /// Choose the client id (default: random).
    #[arg(long)]
    pub id: Option<String>,
    /// A public client (no secret; PKCE required).
    #[arg(long)]
    pub public: bool,
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// authorization_code, refresh_token, client_credentials (default: client_credentials without
    /// redirect URIs, else authorization_code + refresh_token).
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// Scopes the client may request.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Scopes granted when a request names none (default: all of --scope).
    #[arg(long = "default-scope")]
    pub default_scopes: Vec<String>,
    /// RFC 8707 resource indicators the client may ask for.
    #[arg(long = "resource")]
    pub resources: Vec<String>,
    /// Audience when no resource is asked for (default: the first --resource, else the client id).
    #[arg(long)]
    pub audience: Option<String>,
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// First-party client: never shows the consent page.
    #[arg(long)]
    pub skip_consent: bool,
    /// Access-token lifetime override, seconds.
    #[arg(long)]
    pub access_token_ttl: Option<u64>,
    /// Seconds after a refresh-token rotation during which the old token yields the same successor
    /// (0 = strict: any reuse revokes the family).
    #[arg(long, default_value_t = 0)]
    pub refresh_reuse_grace_secs: u64,
    /// ID-token signing algorithm: RS256 (default), ES256 or EdDSA.
    #[arg(long)]
    pub id_token_alg: Option<String>,
    /// OpenID Connect Back-Channel Logout: where Custos POSTs a logout token when a session in which
    /// this client got tokens ends (https, or http on a loopback host).
    #[arg(long)]
    pub backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in logout tokens (Custos always includes it).
    #[arg(long)]
    pub backchannel_logout_session_required: bool,
    /// Every sign-in for this client needs a second factor (acr urn:custos:acr:mfa).
    #[arg(long)]
    pub require_mfa: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum SessionCmd {
    /// A person's live sessions (with --all, also those ended or expired in the last days).
    List {
        #[arg(long)]
        user: String,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// End one session (by a prefix of its id, at least 6 characters) or, with --user and --all,
    /// every session of a person. Refresh tokens granted in them are revoked and relying parties with
    /// back-channel logout are notified (by the server, from the outbox).
    End {
        /// The session id, or a unique prefix of it.
        sid: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user; the password comes from a prompt or --password-stdin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    SetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: sign-in is refused and every session of it ends (its refresh tokens are
    /// revoked, relying parties are told through back-channel logout).
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Replace a user's roles (the MFA policy `mfa_required_roles` reads them); no --role clears them.
    SetRoles {
        #[arg(long)]
        email: String,
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Remove a user's second factors (authenticator app, recovery codes and passkeys), e.g. after losing them.
    ResetMfa {
        #[arg(long)]
        email: String,
    },
    /// Import accounts with their existing password hashes (argon2, bcrypt, PBKDF2-SHA256) from a
    /// JSON-lines file; bad lines are reported by number, the rest import; existing addresses are
    /// skipped, so a re-run changes nothing.
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Lift a sign-in lock (brute-force protection) of an account or a client IP.
    Unlock {
        #[arg(long, required_unless_present = "ip")]
        email: Option<String>,
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
    },
    /// Create an invitation link (for registration = "invite"); with --email it only registers that
    /// address and is also mailed there.
    Invite {
        #[arg(long)]
        email: Option<String>,
        /// How long the link works (default 7).
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
}

/// A failure the CLI reports and exits non-zero for.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

pub fn load_settings(cli: &Cli) -> Result<Settings, Failure> {
    let cfg = Config::load(cli.config.as_deref()).map_err(|e| fail(2, e.to_string()))?;
    cfg.validate().map_err(|e| fail(2, e.to_string()))
}

async fn store(settings: &Settings) -> Result<Store, Failure> {
    Ok(app::open_store(settings).await?)
}

fn read_password(from_stdin: bool) -> Result<Zeroizing<String>, Failure> {
    let pw = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        let a = Zeroizing::new(rpassword::prompt_password("Password: ")?);
        let b = Zeroizing::new(rpassword::prompt_password("Repeat password: ")?);
        if a != b {
            return Err(fail(1, "the passwords differ"));
        }
        a
    };
    password::check_policy(&pw).map_err(|e| fail(1, format!("password: {e}")))?;
    Ok(pw)
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339())
        .unwrap_or_else(|| t.to_string())
}

pub async fn run_command(settings: Settings, cmd: Command) -> Result<(), Failure> {
    let clock = SystemClock;
    match cmd {
        Command::Serve => unreachable!("serve is handled by main"),
        Command::Migrate => {
            store(&settings).await?;
            eprintln!("migrations applied");
        }
        Command::Config(ConfigCmd::Check) => {
            print!("{}", settings.raw.redacted_toml());
            eprintln!("configuration is valid");
        }
        Command::Keys(k) => keys(settings, k, clock.now()).await?,
        Command::Client(c) => client(settings, c, clock.now()).await?,
        Command::User(u) => user(settings, u, clock.now()).await?,
        Command::Session(c) => session(settings, c, clock.now()).await?,
    }
    Ok(())
}

fn opt_time(t: Option<i64>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

async fn keys(settings: Settings, cmd: KeysCmd, now: i64) -> Result<(), Failure> {
    let store = store(&settings).await?;
    if let KeysCmd::List { json } = cmd {
        let rows = store.keys().await?;
        if json {
            print_json(&json!(rows.iter().map(|r| json!({
                "kid": r.kid, "alg": r.alg, "state": r.state, "created_at": time(r.created_at),
                "activated_at": r.activated_at.map(time), "retired_at": r.retired_at.map(time),
                "removed_at": r.removed_at.map(time),
            })).collect::<Vec<_>>()));
        } else {
            println!(
                "{:<45} {:<6} {:<8} {:<26} {:<26} {:<26} REMOVED",
                "KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"
            );
            for r in rows {
                println!(
                    "{:<45} {:<6} {:<8} {:<26} {:<26} {:<26} {}",
                    r.kid,
                    r.alg,
                    r.state,
                    time(r.created_at),
                    opt_time(r.activated_at),
                    opt_time(r.retired_at),
                    opt_time(r.removed_at)
                );
            }
        }
        return Ok(());
    }
    let kek = std::sync::Arc::new(app::load_kek(&settings)?);
    let generate: std::sync::Arc<crate::keys::KeyGenerator> =
        std::sync::Arc::new(crate::keys::jwk::generate);
    let settings = std::sync::Arc::new(settings);
    let admin = KeyAdmin::new(store, kek, settings.clone(), generate, "cli");
    match cmd {
        KeysCmd::List { .. } => {}
        KeysCmd::Rotate { alg, json } => {
            let algs = match alg {
                None => Alg::ALL.to_vec(),
                Some(a) => vec![Alg::parse(&a).ok_or_else(|| {
                    fail(2, format!("--alg: `{a}` is not one of RS256, ES256, EdDSA"))
                })?],
            };
            let out = admin.rotate(&algs, now).await?;
            if json {
                print_json(&json!(
                    out.iter()
                        .map(|r| json!({
                            "alg": r.alg.as_str(), "kid": r.kid, "created": r.created,
                            "activates_at": time(r.activates_at),
                        }))
                        .collect::<Vec<_>>()
                ));
            } else {
                for r in out {
                    let what = if r.created {
                        "published"
                    } else {
                        "already waiting:"
                    };
                    println!(
                        "{} {what} next key {}, signs from {} (replicas pick it up within {} s)",
                        r.alg,
                        r.kid,
                        time(r.activates_at),
                        settings.raw.keys_refresh_secs
                    );
                }
            }
        }
        KeysCmd::Revoke { kid, json } => {
            let r = admin.revoke(&kid, now).await?;
            if json {
                print_json(&json!({
                    "kid": r.kid, "alg": r.alg.as_str(), "was": r.was.as_str(),
                    "replacement": r.replacement,
                }));
            } else {
                println!("removed {} key {} (was {})", r.alg, r.kid, r.was.as_str());
                if let Some(k) = &r.replacement {
                    println!("{} now signs with {k}", r.alg);
                }
                println!(
                    "every replica drops it within {} s; caches of the JWKS within {} s more",
                    settings.raw.keys_refresh_secs, settings.raw.jwks_max_age_secs
                );
            }
        }
        KeysCmd::RekeyKek { new_kek_file } => {
            let text = match new_kek_file {
                Some(p) => Zeroizing::new(
                    std::fs::read_to_string(&p)
                        .map_err(|e| fail(2, format!("--new-kek-file {}: {e}", p.display())))?,
                ),
                None => Zeroizing::new(std::env::var("CUSTOS_NEW_KEK").map_err(|_| {
                    fail(
                        2,
                        "give the new KEK with --new-kek-file FILE or CUSTOS_NEW_KEK",
                    )
                })?),
            };
            let new = Kek::from_base64(&text).map_err(|e| fail(2, format!("the new KEK: {e}")))?;
            let n = admin.rekey(&new, now).await?;
            eprintln!("re-sealed {n} signing keys under the new KEK");
            if settings.raw.kek.is_none() {
                replace_kek_file(&settings.raw.keys_dir, &new)?;
                eprintln!(
                    "wrote the new KEK to {}; restart custos",
                    settings.raw.keys_dir.join("kek").display()
                );
            } else {
                eprintln!(
                    "now give every replica the new KEK (CUSTOS_KEK) and restart them; until then they keep signing with the keys they hold"
                );
            }
        }
    }
    Ok(())
}

/// Swaps `<dir>/kek` for `new` in one rename, mode 0600.
fn replace_kek_file(dir: &std::path::Path, new: &Kek) -> Result<(), Failure> {
    let tmp = dir.join("kek.new");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(new.to_base64().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join("kek"))?;
    Ok(())
}

async fn client(settings: Settings, cmd: ClientCmd, now: i64) -> Result<(), Failure> {
    let store = store(&settings).await?;
    match cmd {
        ClientCmd::Create(c) => {
            let c = *c;
            let json_out = c.json;
            let n = NewClient {
                id: c.id,
                name: c.name,
                public: c.public,
                redirect_uris: c.redirect_uris,
                grant_types: c.grants,
                scopes: c.scopes,
                default_scopes: (!c.default_scopes.is_empty()).then_some(c.default_scopes),
                resources: c.resources,
                audience: c.audience,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
                skip_consent: c.skip_consent,
                access_token_ttl_secs: c.access_token_ttl,
                refresh_token_ttl_secs: None,
                id_token_ttl_secs: None,
                refresh_reuse_grace_secs: c.refresh_reuse_grace_secs,
                id_token_signed_response_alg: c.id_token_alg,
                backchannel_logout_uri: c.backchannel_logout_uri,
                backchannel_logout_session_required: c.backchannel_logout_session_required,
                require_mfa: c.require_mfa,
            };
            let (client, secret) = clients::create(&store, n, now).await?;
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("client_created")
                    .actor("cli")
                    .client(&client.id),
            )
            .await;
            if json_out {
                let mut v = serde_json::to_value(&client)?;
                v["client_secret"] = secret
                    .as_ref()
                    .map(|s| json!(s.as_str()))
                    .unwrap_or(serde_json::Value::Null);
                print_json(&v);
            } else {
                println!("client_id:     {}", client.id);
                match &secret {
                    Some(s) => {
                        println!("client_secret: {}\n(shown once: store it now)", s.as_str())
                    }
                    None => println!("public client: no secret"),
                }
            }
        }
        ClientCmd::List { json } => {
            let list = store.clients().await?;
            if json {
                print_json(&serde_json::to_value(&list)?);
            } else {
                println!("{:<24} {:<12} {:<40} NAME", "CLIENT_ID", "TYPE", "GRANTS");
                for c in list {
                    let kind = if c.public { "public" } else { "confidential" };
                    println!(
                        "{:<24} {:<12} {:<40} {}",
                        c.id,
                        kind,
                        c.grant_types.join(","),
                        c.name
                    );
                }
            }
        }
        ClientCmd::Show { id, json } => {
            let c = store
                .client(&id)
                .await?
                .ok_or_else(|| fail(1, format!("no client `{id}`")))?;
            if json {
                print_json(&serde_json::to_value(&c)?);
            } else {
                let v = serde_json::to_value(&c)?;
                if let Some(m) = v.as_object() {
                    for (k, v) in m {
                        println!("{k:<26} {v}");
                    }
                }
            }
        }
        ClientCmd::Delete { id } => {
            if !store.delete_client(&id).await? {
                return Err(fail(1, format!("no client `{id}`")));
            }
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("client_deleted")
                    .actor("cli")
                    .client(&id),
            )
            .await;
            eprintln!("deleted client {id}");
        }
        ClientCmd::RotateSecret { id, json } => {
            let secret = clients::rotate_secret(&store, &id, now)
                .await?
                .ok_or_else(|| fail(1, format!("no confidential client `{id}`")))?;
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("client_secret_rotated")
                    .actor("cli")
                    .client(&id),
            )
            .await;
            if json {
                print_json(&json!({"client_id": id, "client_secret": secret.as_str()}));
            } else {
                println!(
                    "client_secret: {}\n(shown once: store it now)",
                    secret.as_str()
                );
            }
        }
    }
    Ok(())
}

async fn user_by_email(store: &Store, email: &str) -> Result<User, Failure> {
    let email = identity::normalize_email(email).map_err(|e| fail(1, format!("email: {e}")))?;
    store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| fail(1, format!("no user <{email}>")))
}

fn session_json(
    s: &crate::store::SessionRecord,
    clients: &[String],
    now: i64,
) -> serde_json::Value {
    json!({
        "sid": s.id, "user_id": s.user_id, "live": s.is_live(now), "device": s.device, "ip": s.ip,
        "created_at": time(s.created_at), "last_seen_at": time(s.last_seen_at),
        "idle_expires_at": time(s.idle_expires_at), "absolute_expires_at": time(s.absolute_expires_at),
        "auth_time": time(s.auth_time), "amr": s.amr, "acr": s.acr, "remember_me": s.remember_me,
        "ended_at": s.ended_at.map(time), "end_reason": s.end_reason, "clients": clients,
    })
}

fn ended_json(e: &crate::store::EndedSession) -> serde_json::Value {
    json!({
        "sid": e.id, "user_id": e.user_id, "reason": e.reason,
        "refresh_families_revoked": e.families_revoked, "backchannel_notified": e.notified,
    })
}

async fn session(settings: Settings, cmd: SessionCmd, now: i64) -> Result<(), Failure> {
    use crate::sessions::{self, reason};
    let store = store(&settings).await?;
    match cmd {
        SessionCmd::List { user, all, json } => {
            let u = user_by_email(&store, &user).await?;
            let list = store.sessions_for_user(&u.id, now, all).await?;
            let mut rows = Vec::with_capacity(list.len());
            for s in &list {
                rows.push((s, store.session_clients(&s.id).await?));
            }
            if json {
                print_json(&json!(
                    rows.iter()
                        .map(|(s, c)| session_json(s, c, now))
                        .collect::<Vec<_>>()
                ));
            } else {
                println!(
                    "{:<24} {:<8} {:<26} {:<26} {:<16} DEVICE",
                    "SID", "STATE", "SIGNED IN", "LAST SEEN", "IP"
                );
                for (s, _) in rows {
                    let state = match (&s.end_reason, s.is_live(now)) {
                        (Some(_), _) => "ended",
                        (None, true) => "live",
                        (None, false) => "expired",
                    };
                    println!(
                        "{:<24} {:<8} {:<26} {:<26} {:<16} {}",
                        s.id,
                        state,
                        time(s.created_at),
                        time(s.last_seen_at),
                        s.ip.as_deref().unwrap_or("-"),
                        s.device
                    );
                }
            }
        }
        SessionCmd::End {
            sid,
            user,
            all,
            json,
        } => {
            let ended = match (sid, user, all) {
                (Some(prefix), None, false) => {
                    if prefix.len() < 6 {
                        return Err(fail(2, "the session id prefix needs at least 6 characters"));
                    }
                    let found = store.sessions_by_prefix(&prefix).await?;
                    let target = match found.as_slice() {
                        [one] => one,
                        [] => return Err(fail(1, format!("no session `{prefix}…`"))),
                        _ => {
                            return Err(fail(
                                1,
                                format!(
                                    "`{prefix}` names {} sessions; give more of the id",
                                    found.len()
                                ),
                            ));
                        }
                    };
                    sessions::end_session_in(
                        &store,
                        &settings,
                        now,
                        &target.id,
                        reason::ADMIN,
                        Some("cli"),
                    )
                    .await?
                    .into_iter()
                    .collect::<Vec<_>>()
                }
                (None, Some(email), true) => {
                    let u = user_by_email(&store, &email).await?;
                    sessions::end_user_sessions_in(
                        &store,
                        &settings,
                        now,
                        &u.id,
                        None,
                        reason::ADMIN,
                        Some("cli"),
                    )
                    .await?
                }
                _ => {
                    return Err(fail(
                        2,
                        "give a session id (prefix), or --user EMAIL --all to end all of a person's sessions",
                    ));
                }
            };
            if json {
                print_json(&json!(ended.iter().map(ended_json).collect::<Vec<_>>()));
            } else if ended.is_empty() {
                eprintln!("no live session was ended");
            } else {
                for e in &ended {
                    println!(
                        "ended {} ({} refresh families revoked, {} relying parties to notify)",
                        e.id,
                        e.families_revoked,
                        e.notified.len()
                    );
                }
            }
        }
    }
    std::io::stdout().flush()?;
    Ok(())
}

async fn user(settings: Settings, cmd: UserCmd, now: i64) -> Result<(), Failure> {
    let params = password::HashParams::from_config(&settings.raw);
    let store = store(&settings).await?;
    match cmd {
        UserCmd::Create {
            email,
            name,
            password_stdin,
            json,
        } => {
            let email =
                identity::normalize_email(&email).map_err(|e| fail(1, format!("email: {e}")))?;
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(fail(1, "name: must be 1-200 characters"));
            }
            let pw = read_password(password_stdin)?;
            let hash = password::Hasher::new(PasswordHashing::Pool)
                .hash(pw, params)
                .await?;
            let u = User {
                id: uuid::Uuid::new_v4().to_string(),
                email,
                email_verified: false,
                name,
                password_hash: Some(hash),
                disabled: false,
                created_at: now,
                updated_at: now,
            };
            store.insert_user(&u).await?;
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("user_created")
                    .actor("cli")
                    .subject(&u.id),
            )
            .await;
            if json {
                print_json(&serde_json::to_value(&u)?);
            } else {
                println!("user {} <{}> created", u.id, u.email);
            }
        }
        UserCmd::List { json } => {
            let users = store.users(10_000).await?;
            if json {
                print_json(&serde_json::to_value(&users)?);
            } else {
                println!("{:<38} {:<8} EMAIL", "ID", "STATUS");
                for u in users {
                    println!(
                        "{:<38} {:<8} {}",
                        u.id,
                        if u.disabled { "disabled" } else { "active" },
                        u.email
                    );
                }
            }
        }
        UserCmd::SetPassword {
            email,
            password_stdin,
        } => {
            let email =
                identity::normalize_email(&email).map_err(|e| fail(1, format!("email: {e}")))?;
            let u = store
                .user_by_email(&email)
                .await?
                .ok_or_else(|| fail(1, format!("no user <{email}>")))?;
            let pw = read_password(password_stdin)?;
            let hash = password::Hasher::new(PasswordHashing::Pool)
                .hash(pw, params)
                .await?;
            store.set_password_hash(&u.id, &hash, now).await?;
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("password_set")
                    .actor("cli")
                    .subject(&u.id),
            )
            .await;
            eprintln!("password updated for <{email}>");
        }
        UserCmd::Disable { email } => {
            let u = user_by_email(&store, &email).await?;
            store.set_user_disabled(&u.id, true, now).await?;
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("user_disabled")
                    .actor("cli")
                    .subject(&u.id),
            )
            .await;
            let ended = crate::sessions::end_user_sessions_in(
                &store,
                &settings,
                now,
                &u.id,
                None,
                crate::sessions::reason::ACCOUNT_DISABLED,
                Some("cli"),
            )
            .await?;
            eprintln!("<{}> disabled; {} sessions ended", u.email, ended.len());
        }
        UserCmd::Enable { email } => {
            let u = user_by_email(&store, &email).await?;
            store.set_user_disabled(&u.id, false, now).await?;
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("user_enabled")
                    .actor("cli")
                    .subject(&u.id),
            )
            .await;
            eprintln!("<{}> enabled", u.email);
        }
        UserCmd::SetRoles { email, roles } => {
            let u = user_by_email(&store, &email).await?;
            let roles = crate::mfa::policy::normalize_roles(&roles)
                .map_err(|e| fail(1, format!("role: {e}")))?;
            store.set_user_roles(&u.id, &roles).await?;
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("user_roles_set")
                    .actor("cli")
                    .subject(&u.id)
                    .details(json!({"roles": roles})),
            )
            .await;
            eprintln!("roles of <{}>: {}", u.email, roles.join(", "));
        }
        UserCmd::ResetMfa { email } => {
            let u = user_by_email(&store, &email).await?;
            store.remove_mfa(&u.id).await?;
            store.remove_passkeys(&u.id).await?;
            crate::audit::record(
                &store,
                now,
                crate::audit::Event::new("mfa_reset")
                    .actor("cli")
                    .subject(&u.id),
            )
            .await;
            eprintln!("second factors removed for <{}>", u.email);
        }
        UserCmd::Import { file, json } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(2, format!("{}: {e}", file.display())))?;
            let r = identity::import::import(&store, &text, now).await?;
            if json {
                print_json(&json!({
                    "imported": r.imported, "skipped": r.skipped,
                    "errors": r.errors.iter().map(|(n, e)| json!({"line": n, "error": e})).collect::<Vec<_>>(),
                }));
            }
            for (n, e) in &r.errors {
                eprintln!("{}:{n}: {e}", file.display());
            }
            eprintln!(
                "imported {}, skipped {} (address already has an account), {} bad lines",
                r.imported,
                r.skipped,
                r.errors.len()
            );
            if !r.errors.is_empty() {
                std::io::stdout().flush()?;
                return Err(fail(
                    1,
                    format!("{} lines were not imported", r.errors.len()),
                ));
            }
        }
        UserCmd::Unlock { email, ip } => {
            let Some(url) = &settings.raw.redis_url else {
                return Err(fail(
                    1,
                    "without redis_url the sign-in counters live inside the running server: restart it to clear them",
                ));
            };
            let eph =
                crate::ephemeral::redis::RedisStore::connect(&url.0, &settings.raw.redis_prefix)
                    .await?;
            if let Some(email) = &email {
                let email =
                    identity::normalize_email(email).map_err(|e| fail(1, format!("email: {e}")))?;
                identity::bruteforce::unlock_account(&eph, &email).await?;
                let subject = store.user_by_email(&email).await?.map(|u| u.id);
                let mut ev = crate::audit::Event::new("account_unlocked").actor("cli");
                if let Some(id) = subject {
                    ev = ev.subject(id);
                }
                crate::audit::record(&store, now, ev).await;
                eprintln!("sign-in unlocked for <{email}>");
            }
            if let Some(ip) = ip {
                identity::bruteforce::unlock_ip(&eph, &ip).await?;
                crate::audit::record(
                    &store,
                    now,
                    crate::audit::Event::new("ip_unlocked")
                        .actor("cli")
                        .ip(ip.to_string()),
                )
                .await;
                eprintln!("sign-in unlocked for {ip}");
            }
        }
        UserCmd::Invite { email, days, json } => {
            let email = email
                .map(|e| identity::normalize_email(&e).map_err(|e| fail(1, format!("email: {e}"))))
                .transpose()?;
            if !(1..=90).contains(&days) {
                return Err(fail(2, "--days: allowed 1..=90"));
            }
            if settings.raw.registration != crate::config::Registration::Invite {
                eprintln!(
                    "note: registration is `{:?}`; invitations are only asked for when it is `invite`",
                    settings.raw.registration
                );
            }
            let state = app::build_state(settings, app::Options::default()).await?;
            let url = identity::accounts::invite(
                &state,
                email.as_deref(),
                Some(i64::from(days) * 86_400),
            )
            .await?;
            if json {
                print_json(&json!({"url": url, "email": email, "expires_in_days": days}));
            } else {
                println!("{url}");
                if let Some(e) = &email {
                    eprintln!("invitation for <{e}> queued for mail (sent by the running server)");
                }
            }
        }
    }
    std::io::stdout().flush()?;
    Ok(())
}
