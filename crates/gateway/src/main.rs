//! `switchyard-gateway --config FILE [--listen ADDR] [--check]`: an OpenAI-compatible gateway in
//! front of a switchyard router. `--check` validates the configuration (and that every key's
//! variable is set) and exits. Logs go to stderr; `RUST_LOG` sets the level (`error`, `warn`,
//! `info` (default), `debug`, `trace`).

use std::net::SocketAddr;
use std::process::ExitCode;

use switchyard_gateway::{Gateway, GatewayConfig};

const USAGE: &str = "usage: switchyard-gateway --config FILE [--listen ADDR] [--check]";

struct Args {
    config: String,
    listen: Option<SocketAddr>,
    check: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut config, mut listen, mut check) = (None, None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = Some(args.next().ok_or("--config needs a file")?),
            "--listen" => {
                let addr = args.next().ok_or("--listen needs an address")?;
                listen = Some(
                    addr.parse().map_err(|_| format!("--listen: `{addr}` is not an address like 127.0.0.1:8080"))?,
                );
            }
            "--check" => check = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(Args { config: config.ok_or_else(|| format!("--config is required\n{USAGE}"))?, listen, check })
}

#[allow(clippy::disallowed_methods, reason = "the binary is where settings come from the environment")]
fn log_level() -> tracing::Level {
    match std::env::var("RUST_LOG").unwrap_or_default().to_ascii_lowercase().as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[tokio::main]
#[allow(clippy::disallowed_methods, reason = "the binary is where keys come from the environment")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_max_level(log_level()).with_writer(std::io::stderr).init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut config = match GatewayConfig::from_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = args.listen {
        config.server.listen = addr;
    }
    let gateway = match Gateway::new(&config, &|name| std::env::var(name).ok()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        eprintln!("{}: valid ({} models)", args.config, gateway.router().catalog().len());
        return ExitCode::SUCCESS;
    }
    let listener = match tokio::net::TcpListener::bind(config.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.server.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map_or_else(|_| config.server.listen.to_string(), |a| a.to_string());
    let tls = config.server.tls.is_some();
    tracing::info!(target: "switchyard_gateway", %addr, tls, models = gateway.router().catalog().len(), "listening");
    match gateway.serve(listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
