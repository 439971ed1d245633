//! The `keypool` binary: reads the command line, sets up logging and the tokio
//! runtime, binds, and runs the server until SIGINT or SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use keypool::config::{Config, LogFormat};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// See Cargo.toml: measured faster than the system allocator on the request path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(format_args!("keypool: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(config.bind).await {
            Ok(l) => l,
            Err(e) => {
                say(format_args!(
                    "keypool: cannot listen on {}: {e}",
                    config.bind
                ));
                return ExitCode::FAILURE;
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                say(format_args!("keypool: cannot read the bound address: {e}"));
                return ExitCode::FAILURE;
            }
        };
        let ready = move || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "listening on {}",
                keypool::http::server::local_url(addr)
            );
            let _ = out.flush();
            tracing::info!(%addr, "serving");
        };
        match keypool::run(
            config,
            listener,
            ready,
            keypool::http::server::shutdown_signal(),
        )
        .await
        {
            Ok(()) => {
                tracing::info!("stopped cleanly");
                ExitCode::SUCCESS
            }
            Err(e) => {
                say(format_args!("keypool: cannot start: {e}"));
                ExitCode::FAILURE
            }
        }
    })
}

/// Logs go to stderr so that stdout's first line is the address we bound;
/// `RUST_LOG` filters them (default `info`).
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // When stderr cannot be written (a full disk under a redirected log),
        // tracing would report it with eprintln!, which panics: the request
        // or task that logged would die. Drop the line instead.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line: timestamp, level, target and the event's own
        // fields (message, request_id, route, status, duration_ms, …) side by side.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// Writes a line to stderr; a stderr that cannot be written is not a reason to
/// panic (as `eprintln!` would).
fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
