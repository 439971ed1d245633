//! kill -9 while group commits are pipelined (`--fsync always`: tasks write
//! batch N+1 while the flusher fdatasyncs batch N): every acknowledged change
//! of every kind is there after the restart, and nothing else changed.
//!
//! Each worker thread has an account of its own, so its pool changes only by
//! its own requests and a plain model (key → free, leased under a `lease_id`,
//! or deleted) says what the pool must hold. A request in flight at the kill
//! may or may not have happened; the model keeps both outcomes for that key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{api_key, register_and_login, try_call, Resp, Server, RELAXED};

/// What the acknowledged answers say about one key.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    Free,
    Leased(String),
    Deleted,
}

/// One thread's pool: each key's last acknowledged state, and the states the
/// request in flight at the kill may have left (if any).
#[derive(Default)]
struct Model {
    keys: HashMap<String, Held>,
    in_flight: Option<(String, Held)>,
    acked: usize,
}

/// Worker `n`'s loop until `stop` or the kill: creates, checkouts, releases
/// with `lease_id`, keepalives and deletes, in an order fixed by `n`.
fn work(url: String, key: String, n: u64, stop: Arc<AtomicBool>) -> Model {
    let mut m = Model::default();
    let mut seed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let call = |method: &str, path: &str| -> Option<Resp> {
        try_call(method, &format!("{url}{path}"), Some(&key), None)
    };
    for _ in 0..5000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let live: Vec<_> = m
            .keys
            .iter()
            .filter(|(_, h)| **h != Held::Deleted)
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        let pick = (next() % 100) as usize;
        if live.len() < 4 || pick < 25 {
            let Some(r) = call("POST", "/keys") else {
                break;
            };
            assert_eq!(r.status, 201, "create: {}", r.text);
            m.keys.insert(r.str("key_id"), Held::Free);
        } else if pick < 50 {
            // Checkout picks any free key: if its answer is lost, any one
            // free key may be leased after the restart.
            m.in_flight = Some(("*".into(), Held::Leased(String::new())));
            let Some(r) = call("GET", "/keys") else { break };
            if r.status == 200 {
                m.keys
                    .insert(r.str("key_id"), Held::Leased(r.str("lease_id")));
            } else {
                assert_eq!(r.status, 404, "checkout: {}", r.text);
            }
        } else {
            let (id, held) = &live[next() as usize % live.len()];
            let (method, path, after) = match (held, pick) {
                (Held::Leased(lease), 50..=79) => {
                    ("PUT", format!("/keys/{id}?lease_id={lease}"), Held::Free)
                }
                (held, 80..=89) => ("PUT", format!("/keepalive/{id}"), held.clone()),
                (_, _) => ("DELETE", format!("/keys/{id}"), Held::Deleted),
            };
            m.in_flight = Some((id.clone(), after.clone()));
            let Some(r) = call(method, &path) else { break };
            assert_eq!(r.status, 200, "{method} {path}: {}", r.text);
            m.keys.insert(id.clone(), after);
        }
        m.in_flight = None;
        m.acked += 1;
    }
    m
}

/// The state the restarted server shows for `id`.
fn shown(s: &Server, key: &str, id: &str) -> Held {
    let r = try_call("GET", &s.url(&format!("/keys/{id}")), Some(key), None).unwrap();
    match r.status {
        404 => Held::Deleted,
        200 if r.body["isBlocked"] == true => Held::Leased(String::new()),
        200 => Held::Free,
        _ => panic!("GET /keys/{id}: {} {}", r.status, r.text),
    }
}

/// A number from the Prometheus text of `/metrics`.
fn metric(s: &Server, name: &str) -> f64 {
    let text = try_call("GET", &s.url("/metrics"), None, None)
        .unwrap()
        .text;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[test]
fn every_acknowledged_change_survives_kill_9_during_pipelined_flushes() {
    let mut s = Server::start(&[RELAXED, &["--fsync", "always"]].concat());
    let keys: Vec<String> = (0..8)
        .map(|i| {
            register_and_login(&s, &format!("pipe{i}"));
            api_key(&s, &format!("pipe{i}"))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| {
            let (url, key, stop) = (s.url(""), key.clone(), stop.clone());
            std::thread::spawn(move || work(url, key, n as u64 + 1, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let (fsyncs, synced) = (
        metric(&s, "keypool_wal_fsyncs_total"),
        metric(&s, "keypool_wal_synced_records_total"),
    );
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    let models: Vec<Model> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        synced > fsyncs && fsyncs > 0.0,
        "no flush covered two records ({synced} records in {fsyncs} fsyncs): nothing was pipelined"
    );
    s.restart();
    let mut checked = 0;
    for (m, key) in models.iter().zip(&keys) {
        assert!(m.acked > 0, "a worker got no answer before the kill");
        for (id, want) in &m.keys {
            let got = shown(&s, key, id);
            let maybe = m
                .in_flight
                .as_ref()
                .filter(|(k, _)| k == id || (k == "*" && *want == Held::Free))
                .map(|(_, h)| h);
            let same = |a: &Held, b: &Held| std::mem::discriminant(a) == std::mem::discriminant(b);
            assert!(
                same(&got, want) || maybe.is_some_and(|h| same(&got, h)),
                "key {id}: acknowledged {want:?}, after the restart {got:?}"
            );
            if let (Held::Leased(lease), Held::Leased(_)) = (want, &got) {
                // The lease's fence survived too: its lease_id still releases it.
                let path = format!("/keys/{id}?lease_id={lease}");
                let r = try_call("PUT", &s.url(&path), Some(key), None).unwrap();
                assert_eq!(r.status, 200, "release of {id} under its lease: {}", r.text);
            }
            checked += 1;
        }
    }
    assert!(checked > 0);
}
