use clap::Parser;
use tracing_subscriber::EnvFilter;

use custos::app;
use custos::cli::{self, Cli, Command};
use custos::config::{LogFormat, Settings};

fn init_logging(s: &Settings) {
    let filter = EnvFilter::new(format!(
        "{},sqlx=warn,sea_orm=warn,sea_orm_migration=warn",
        s.raw.log_level
    ));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match s.raw.log_format {
        LogFormat::Json => b.json().flatten_event(true).init(),
        LogFormat::Text => b.init(),
    }
}

fn exit(f: cli::Failure) -> ! {
    eprintln!("custos: {}", f.message);
    std::process::exit(f.code)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let settings = cli::load_settings(&cli).unwrap_or_else(|f| exit(f));
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            init_logging(&settings);
            let listen = settings.listen;
            let state = app::build_state(settings, app::Options::default())
                .await
                .unwrap_or_else(|e| {
                    exit(cli::Failure {
                        code: 1,
                        message: e.to_string(),
                    })
                });
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .unwrap_or_else(|e| {
                    exit(cli::Failure {
                        code: 1,
                        message: format!("configuration key `listen`: cannot bind {listen}: {e}"),
                    })
                });
            let bound = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(listen = %bound, issuer = %state.settings.issuer_str, "custos listening");
            if let Err(e) = app::run(listener, state).await {
                exit(cli::Failure {
                    code: 1,
                    message: format!("server: {e}"),
                });
            }
        }
        other => {
            if let Err(f) = cli::run_command(settings, other).await {
                exit(f);
            }
        }
    }
}
