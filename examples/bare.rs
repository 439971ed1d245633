//! A bare hyper 1.x server: the ceiling the side-by-side benchmark
//! (`examples/peers.rs`) holds keypool against. It does nothing but answer,
//! with the same runtime (tokio's default multi-thread runtime, one worker per
//! core it may run on, so one under `taskset -c 0`) and the same connection
//! settings (keep-alive, `TCP_NODELAY`) as the `keypool` binary.
//!
//! `GET` gets a fixed body shaped (and about sized) like keypool's checkout
//! answer; every other method gets keypool's release answer, so the wrk script
//! that alternates checkouts and releases sends the same requests here as to
//! keypool.
//!
//! ```text
//! cargo run --release --example bare -- [--bind 127.0.0.1:0]
//! ```
//!
//! Like keypool, it prints `listening on http://ADDR` as its first stdout line
//! and stops on SIGINT or SIGTERM.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The answer to `GET`: a checkout answer's fields and about its size.
const CHECKOUT_BODY: &str = concat!(
    r#"{"blocked_until":"2026-11-22T14:31:00.123Z","expires_at":"2026-11-22T14:35:00.123Z","#,
    r#""key_id":"6f1c2b8e-3d4a-4f5b-9c6d-7e8f9a0b1c2d","#,
    r#""lease_id":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}"#
);

/// The answer to every other method: keypool's release answer.
const RELEASE_BODY: &str = r#"{"message":"Key unblocked."}"#;

fn main() -> ExitCode {
    let mut bind: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().map(|v| v.parse())) {
            ("--bind", Some(Ok(addr))) => bind = addr,
            _ => {
                eprintln!("usage: bare [--bind ADDR]");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bare: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(bind).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bare: cannot listen on {bind}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "listening on http://{addr}");
                let _ = out.flush();
            }
            Err(e) => {
                eprintln!("bare: cannot read the bound address: {e}");
                return ExitCode::FAILURE;
            }
        }
        tokio::select! {
            () = serve(listener) => {}
            () = stop_signal() => {}
        }
        ExitCode::SUCCESS
    })
}

/// hyper's plain accept loop; backs off instead of dying on accept errors.
async fn serve(listener: TcpListener) {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service_fn(|req: Request<Incoming>| async move {
            let body = if req.method() == Method::GET {
                CHECKOUT_BODY
            } else {
                RELEASE_BODY
            };
            let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok::<_, Infallible>(resp)
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// SIGINT or SIGTERM (or a failure to listen for them: then only Ctrl-C's default).
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
