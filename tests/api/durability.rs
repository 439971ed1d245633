//! Durability with the real binary and a real disk: kill -9 under load, torn
//! and damaged logs, snapshots racing segment deletion, time across restarts.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::support::{
    api_key, copy_dir, login, raw, register_and_login, segments, snapshots, try_call, Server,
    RELAXED,
};

/// Starts a server on `dir` that must come up.
fn start_in(dir: &std::path::Path, args: &[&str]) -> Server {
    Server::start_in(dir, args).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_acknowledged_key_survives_kill_9_during_concurrent_writes_three_times() {
    let mut s = Server::start(&["--open-pool"]);
    let acked = Arc::new(Mutex::new(Vec::new()));
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (url, acked, stop) = (s.url("/keys"), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match try_call("POST", &url, None, None) {
                            Some(r) if r.status == 201 => {
                                acked.lock().unwrap().push(r.str("key_id"))
                            }
                            Some(r) => panic!("unexpected {}: {}", r.status, r.text),
                            None => break,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        s.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        s.restart();
        let acked = acked.lock().unwrap().clone();
        assert!(
            !acked.is_empty(),
            "round {round}: no write was acknowledged"
        );
        let total = try_call("GET", &s.url("/stats"), None, None).unwrap().body["total"]
            .as_u64()
            .unwrap();
        assert!(
            total >= acked.len() as u64,
            "round {round}: {total} keys < {} acknowledged",
            acked.len()
        );
        for id in acked.iter().step_by(7) {
            let r = try_call("GET", &s.url(&format!("/keys/{id}")), None, None).unwrap();
            assert_eq!(r.status, 200, "round {round}: acknowledged key {id} lost");
        }
    }
}

#[test]
fn a_torn_last_record_is_dropped_at_every_byte_offset() {
    let mut s = Server::start(&["--open-pool"]);
    let mut ids = vec![];
    for _ in 0..3 {
        ids.push(s.call("POST", "/keys", None, None).str("key_id"));
    }
    let seg = segments(&s.dir).pop().expect("a log segment");
    // Where the records end (the file goes on in zeros written ahead).
    let records_end = || {
        let bytes = std::fs::read(&seg).unwrap();
        keypool::persist::format::scan_records(&bytes).valid_len as u64
    };
    let before = records_end();
    let last = s.call("POST", "/keys", None, None).str("key_id");
    let after = records_end();
    s.kill9();
    assert!(after > before);
    let scratch = s.dir.with_extension("torn");
    for cut in before..after {
        copy_dir(&s.dir, &scratch);
        let torn = scratch.join(seg.file_name().unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&torn)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let t = start_in(&scratch, &["--open-pool"]);
        for id in &ids {
            assert_eq!(
                t.call("GET", &format!("/keys/{id}"), None, None).status,
                200,
                "cut at {cut}"
            );
        }
        assert_eq!(
            t.call("GET", &format!("/keys/{last}"), None, None).status,
            404,
            "cut at {cut}"
        );
        // And it keeps logging after the repaired tail.
        assert_eq!(t.call("POST", "/keys", None, None).status, 201);
    }
    // A longer zero-filled tail (the file grew but the data never landed) is
    // the same as the zeros written ahead: the end of the log.
    copy_dir(&s.dir, &scratch);
    let f = scratch.join(seg.file_name().unwrap());
    let mut bytes = std::fs::read(&f).unwrap();
    bytes.extend(std::iter::repeat_n(0, 4096));
    std::fs::write(&f, bytes).unwrap();
    let t = start_in(&scratch, &["--open-pool"]);
    assert_eq!(t.call("GET", "/stats", None, None).body["total"], 4);
    drop(t);
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn a_damaged_record_refuses_start_until_repair() {
    let mut s = Server::start(&["--open-pool"]);
    for _ in 0..20 {
        s.call("POST", "/keys", None, None);
    }
    s.kill9();
    let seg = segments(&s.dir).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = keypool::persist::format::scan_records(&bytes).valid_len / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();

    let err = Server::start_in(&s.dir, &["--open-pool"])
        .err()
        .expect("refuses to start");
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "names the file: {err}");
    assert!(err.contains("offset"), "names the offset: {err}");
    assert!(err.contains("--repair"), "says how to recover: {err}");

    let r = start_in(&s.dir, &["--open-pool", "--repair"]);
    let total = r.call("GET", "/stats", None, None).body["total"]
        .as_u64()
        .unwrap();
    assert!(
        (1..20).contains(&total),
        "kept the records before the damage: {total}"
    );
    assert!(r.stderr().contains("repair"), "says what it did");
    let kept: Vec<_> = std::fs::read_dir(&s.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
        .collect();
    assert_eq!(kept.len(), 1, "keeps a copy of the damaged file");
}

#[test]
fn a_crash_between_snapshot_and_segment_deletion_loses_nothing_and_applies_nothing_twice() {
    let mut s = Server::start(&["--open-pool"]);
    let ids: Vec<String> = (0..6)
        .map(|_| s.call("POST", "/keys", None, None).str("key_id"))
        .collect();
    for id in &ids[..2] {
        assert_eq!(
            s.call("DELETE", &format!("/keys/{id}"), None, None).status,
            200
        );
    }
    s.kill9();
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = segments(&s.dir)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    // A clean stop writes a snapshot and drops the segments it covers ...
    s.restart();
    assert_eq!(s.sigterm().code(), Some(0));
    assert!(!snapshots(&s.dir).is_empty());
    // ... and here the deletion "never happened".
    for (p, b) in &saved {
        std::fs::write(p, b).unwrap();
    }
    let s2 = start_in(&s.dir, &["--open-pool"]);
    assert_eq!(s2.call("GET", "/stats", None, None).body["total"], 4);
    for id in &ids[..2] {
        assert_eq!(
            s2.call("GET", &format!("/keys/{id}"), None, None).status,
            404
        );
    }
}

#[test]
fn deadlines_hold_across_a_restart() {
    let mut s = Server::start(&["--open-pool", "--key-ttl", "2s", "--block-ttl", "1s"]);
    let doomed = s.call("POST", "/keys", None, None).str("key_id");
    s.kill9();
    std::thread::sleep(Duration::from_millis(2200));
    s.restart();
    assert_eq!(
        s.call("GET", &format!("/keys/{doomed}"), None, None).status,
        404
    );
    assert_eq!(s.call("GET", "/stats", None, None).body["total"], 0);

    let held = s.call("POST", "/keys", None, None).str("key_id");
    assert_eq!(s.call("GET", "/keys", None, None).str("key_id"), held);
    s.kill9();
    std::thread::sleep(Duration::from_millis(1200));
    s.restart();
    let st = s.call("GET", "/stats", None, None).body;
    assert_eq!(
        (st["blocked"].as_u64(), st["available"].as_u64()),
        (Some(0), Some(1)),
        "{st}"
    );
}

#[test]
fn sigterm_writes_a_snapshot_and_the_restart_replays_nothing() {
    let mut s = Server::start(&["--open-pool"]);
    for _ in 0..10 {
        s.call("POST", "/keys", None, None);
    }
    assert_eq!(s.sigterm().code(), Some(0), "clean exit");
    assert_eq!(snapshots(&s.dir).len(), 1);
    let s2 = start_in(&s.dir, &["--open-pool"]);
    assert_eq!(s2.call("GET", "/stats", None, None).body["total"], 10);
    let log = s2.stderr();
    let line = log
        .lines()
        .rfind(|l| l.contains("state recovered"))
        .unwrap_or("");
    assert!(line.contains("replayed=0"), "{line}");
}

#[test]
fn accounts_keys_and_revocations_survive_kill_9_and_no_secret_is_on_disk() {
    let mut s = Server::start(RELAXED);
    let password = "correct horse battery";
    register_and_login(&s, "durable");
    let keep = api_key(&s, "durable");
    let gone = api_key(&s, "durable");
    let t = login(&s, "durable");
    let r = s.call("POST", "/revoke-key", Some(&t), Some(json!({"key": gone})));
    assert_eq!(r.status, 200);
    let pool_key = raw(
        "POST",
        &s.url("/keys"),
        &[("X-API-Key".into(), keep.clone())],
        None,
    )
    .str("key_id");
    std::thread::sleep(Duration::from_millis(1200)); // let usage counts reach the log
    s.kill9();

    let mut on_disk = Vec::new();
    for e in std::fs::read_dir(&s.dir).unwrap() {
        on_disk.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    let contains = |needle: &str| {
        on_disk
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    assert!(!contains(password), "a plaintext password is on disk");
    assert!(
        !contains(&keep) && !contains(&gone),
        "a plaintext API key is on disk"
    );
    assert!(
        !contains(&keep[8..40]),
        "the secret part of a key is on disk"
    );

    s.restart();
    login(&s, "durable");
    let with = |k: &str, p: &str| raw("GET", &s.url(p), &[("X-API-Key".into(), k.into())], None);
    assert_eq!(with(&keep, &format!("/keys/{pool_key}")).status, 200);
    assert_eq!(with(&gone, "/stats").status, 401);
    let t = login(&s, "durable");
    let items = s.call("GET", "/list-keys", Some(&t), None).body["items"].clone();
    let revoked: HashSet<bool> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["revoked"].as_bool().unwrap())
        .collect();
    assert_eq!(revoked, HashSet::from([true, false]));
    let used = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["usage_count"].as_u64().unwrap())
        .max();
    assert!(used >= Some(1), "usage counts survive: {items}");
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let s = Server::start(&["--open-pool"]);
    let err = Server::start_in(&s.dir, &["--open-pool"])
        .err()
        .expect("second server refused");
    assert!(err.contains("another keypool process"), "{err}");
    assert_eq!(
        s.call("POST", "/keys", None, None).status,
        201,
        "the first keeps serving"
    );
}
