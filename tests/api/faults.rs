//! Disk faults, over real HTTP: the server runs in-process on a fault-injecting
//! disk (`persist::testing::FaultFs`), so a test can make writes or flushes fail
//! with EIO or ENOSPC and check that no change is acknowledged that is not in
//! the log (503), that reads keep working, and that writes resume when the disk
//! recovers. `undone.rs` checks that a change answered 503 did not happen.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use keypool::app::App;
use keypool::clock::SystemClock;
use keypool::config::Config;
use keypool::persist::testing::{FaultFs, Faults, EIO, ENOSPC};

use crate::support::{call, eventually};

/// A server on `fs`, in its own runtime thread; returns its base URL and a stopper.
fn serve(
    fs: Arc<FaultFs>,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    serve_with(fs, &["--open-pool"])
}

/// [`serve`] with other flags.
pub fn serve_with(
    fs: Arc<FaultFs>,
    flags: &[&str],
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let mut args = vec!["keypool", "--data-dir", "/faulty"];
    args.extend_from_slice(flags);
    let config = Config::parse_from(args);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = App::open(config, Arc::new(SystemClock), fs).expect("opens on the fault fs");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            keypool::serve_app(app, listener, move || addr_tx.send(addr).unwrap(), async {
                let _ = stop_rx.await;
            })
            .await;
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server starts");
    (format!("http://{addr}"), stop_tx, thread)
}

#[test]
fn a_failing_disk_refuses_changes_keeps_reads_and_recovers() {
    for (what, faults) in [
        (
            "EIO on write",
            Faults {
                write: Some(EIO),
                ..Faults::default()
            },
        ),
        (
            "ENOSPC on flush",
            Faults {
                sync: Some(ENOSPC),
                ..Faults::default()
            },
        ),
    ] {
        let fs = FaultFs::new();
        let (base, stop, thread) = serve(fs.clone());
        let url = |p: &str| format!("{base}{p}");
        let kept = call("POST", &url("/keys"), None, None).str("key_id");

        fs.set_faults(faults);
        let r = call("POST", &url("/keys"), None, None);
        assert_eq!(r.status, 503, "{what}: {}", r.text);
        assert!(r.error().contains("disk"), "{what}: {}", r.text);
        assert_eq!(
            call("GET", &url("/healthz"), None, None).status,
            503,
            "{what}"
        );
        // Nothing new is accepted while the log cannot write ...
        assert_eq!(
            call("PUT", &url(&format!("/keepalive/{kept}")), None, None).status,
            503,
            "{what}"
        );
        // ... and reads keep working.
        let r = call("GET", &url(&format!("/keys/{kept}")), None, None);
        assert_eq!(r.status, 200, "{what}: {}", r.text);
        assert_eq!(call("GET", &url("/metrics"), None, None).status, 200);

        fs.clear_faults();
        assert!(
            eventually(Duration::from_secs(5), || call(
                "POST",
                &url("/keys"),
                None,
                None
            )
            .status
                == 201),
            "{what}: writes resume once the disk recovers"
        );
        assert_eq!(call("GET", &url("/healthz"), None, None).status, 200);

        // What was acknowledged is on the durable image: reopen from it.
        stop.send(()).unwrap();
        thread.join().unwrap();
        let crashed = fs.crash();
        let (base2, stop2, thread2) = serve(crashed);
        let r = call("GET", &format!("{base2}/keys/{kept}"), None, None);
        assert_eq!(r.status, 200, "{what}: acknowledged key lost: {}", r.text);
        stop2.send(()).unwrap();
        thread2.join().unwrap();
    }
}
