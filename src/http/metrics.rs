//! Request counters and a latency histogram for `/metrics` (Prometheus text).
//! Counting is lock-free on the hot path: a dashmap shard lookup and an atomic add.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// What the HTTP layer counts.
#[derive(Default)]
pub struct Metrics {
    /// Requests answered, by route label and status code.
    requests: DashMap<(&'static str, u16), AtomicU64>,
    /// Cumulative counts per bucket of [`BUCKETS`], plus +Inf at the end.
    latency: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of all latencies, in microseconds.
    latency_sum_us: AtomicU64,
    /// Connections refused, by [`Refused`] reason.
    refused: [AtomicU64; 3],
}

/// Why a connection was refused at the accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `--max-connections` reached: answered 503.
    Full = 0,
    /// `--max-connections-per-ip` reached for its address: answered 503.
    PerIp = 1,
    /// Too many refusals under way already: closed unanswered.
    Unanswered = 2,
}

const REFUSED_LABELS: [&str; 3] = ["full", "per_ip", "unanswered"];

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: &'static str, status: u16, took: Duration) {
        if let Some(c) = self.requests.get(&(route, status)) {
            c.fetch_add(1, Ordering::Relaxed);
        } else {
            self.requests
                .entry((route, status))
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        let idx = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.latency[idx].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts one connection refused at the accept.
    pub fn refused(&self, why: Refused) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the HTTP part of the Prometheus text.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP keypool_connections_refused_total Connections refused at the accept, by reason.\n",
        );
        out.push_str("# TYPE keypool_connections_refused_total counter\n");
        for (label, n) in REFUSED_LABELS.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "keypool_connections_refused_total{{reason=\"{label}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP keypool_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE keypool_requests_total counter\n");
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .map(|e| (e.key().0, e.key().1, e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for (route, status, n) in rows {
            let _ = writeln!(
                out,
                "keypool_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP keypool_request_duration_seconds Time from request to response.\n");
        out.push_str("# TYPE keypool_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "keypool_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.latency[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "keypool_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "keypool_request_duration_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "keypool_request_duration_seconds_count {cumulative}");
    }
}

/// Writes one gauge with its help line.
pub fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histogram() {
        let m = Metrics::default();
        m.record("/keys", 201, Duration::from_micros(300));
        m.record("/keys", 201, Duration::from_millis(3));
        m.record("/keys", 404, Duration::from_secs(10));
        m.refused(Refused::PerIp);
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.contains("keypool_requests_total{route=\"/keys\",status=\"201\"} 2"));
        assert!(s.contains("keypool_requests_total{route=\"/keys\",status=\"404\"} 1"));
        assert!(s.contains("keypool_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(s.contains("keypool_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(s.contains("keypool_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(s.contains("keypool_connections_refused_total{reason=\"per_ip\"} 1"));
        assert!(s.contains("keypool_connections_refused_total{reason=\"full\"} 0"));
    }
}
