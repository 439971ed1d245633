//! Operations: `/healthz`, `/metrics` (Prometheus text), and `/openapi.json`,
//! the document of every route.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;

use super::super::metrics::gauge;
use super::super::response::{bytes_response, json, Reply};
use super::super::Http;

/// `docs/openapi.json`, compiled in: what `/openapi.json` serves, byte for byte.
pub static OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// `GET /openapi.json`.
pub fn openapi() -> Reply {
    Ok(bytes_response(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(OPENAPI.as_bytes()),
    ))
}

/// `GET /healthz`: the process answers; says whether the log is writable.
pub fn healthz(http: &Http) -> Reply {
    match http.app.log.check_writable() {
        Ok(()) => Ok(json(StatusCode::OK, &json!({"status": "ok"}))),
        Err(e) => Ok(json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "degraded", "error": format!("The write-ahead log cannot write: {e}.")}),
        )),
    }
}

/// `GET /metrics`.
pub fn metrics(http: &Http) -> Reply {
    let mut out = String::with_capacity(4096);
    http.metrics.render(&mut out);
    let t = http.app.state().pools.totals();
    gauge(&mut out, "keypool_pool_keys", "Keys in all pools.", t.total);
    gauge(
        &mut out,
        "keypool_pool_keys_available",
        "Keys free for checkout in all pools.",
        t.available,
    );
    gauge(
        &mut out,
        "keypool_pool_keys_blocked",
        "Keys checked out in all pools.",
        t.blocked,
    );
    gauge(
        &mut out,
        "keypool_pool_keys_cooling",
        "Keys released with a cooldown that has not ended, in all pools.",
        t.cooling,
    );
    gauge(
        &mut out,
        "keypool_pool_waiters",
        "Long-poll checkouts waiting for a key.",
        http.app.waiters.len() as u64,
    );
    let m = http.app.log.metrics();
    gauge(
        &mut out,
        "keypool_wal_fsyncs_total",
        "fdatasync calls on the write-ahead log.",
        m.fsyncs,
    );
    gauge(
        &mut out,
        "keypool_wal_bytes_total",
        "Bytes written to the write-ahead log.",
        m.bytes_written,
    );
    gauge(
        &mut out,
        "keypool_wal_records_total",
        "Records written to the write-ahead log.",
        m.records,
    );
    gauge(
        &mut out,
        "keypool_wal_batches_total",
        "write(2) calls that wrote log records (group writes).",
        m.batches,
    );
    gauge(
        &mut out,
        "keypool_wal_fsync_seconds_total",
        "Time spent in the flusher's fdatasync calls (divide by fsyncs: mean flush).",
        m.fsync_micros as f64 / 1e6,
    );
    gauge(
        &mut out,
        "keypool_wal_synced_records_total",
        "Records made durable by fdatasync (divide by fsyncs: records per flush).",
        m.synced_records,
    );
    gauge(
        &mut out,
        "keypool_wal_waits_total",
        "Changes that waited for their record to become durable.",
        m.waits,
    );
    gauge(
        &mut out,
        "keypool_wal_wait_seconds_total",
        "Time those changes waited, in all (divide by waits: mean wait).",
        m.wait_micros as f64 / 1e6,
    );
    gauge(
        &mut out,
        "keypool_wal_fallbacks_total",
        "Times the log fell back to its durable end after a failed write or flush.",
        m.fallbacks,
    );
    gauge(
        &mut out,
        "keypool_wal_writable",
        "1 while the write-ahead log accepts writes.",
        u8::from(http.app.log.check_writable().is_ok()),
    );
    let age = m
        .last_snapshot_at
        .map(|at| (http.app.now().saturating_sub(at)) as f64 / 1000.0)
        .unwrap_or(-1.0);
    gauge(
        &mut out,
        "keypool_snapshot_age_seconds",
        "Seconds since the last snapshot was written (-1: none yet in this run).",
        age,
    );
    Ok(bytes_response(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        Bytes::from(out),
    ))
}
