//! Who gets a connection slot: at most `--max-connections` at once, at most
//! `--max-connections-per-ip` from one TCP peer address, and a prompt 503 for
//! the rest instead of a wait in the kernel's accept queue (HAProxy's `maxconn`
//! with fast refusal, nginx's `limit_conn` per address).
//!
//! A refusal is written by a small task of its own, never by hyper: it reads the
//! request's head (or waits half a second for it), writes the canned answer and
//! FIN, then reads and discards the client's bytes until it closes (all within
//! [`REFUSAL_TIME`]), so that it reads the 503 rather than a reset. At
//! most [`REFUSALS_AT_ONCE`] such tasks run; past that a connection is closed
//! unanswered, so a flood cannot make the refusals themselves unbounded.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use hyper::header::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Refusals being written at once.
pub const REFUSALS_AT_ONCE: usize = 256;

/// How long one refusal may take, lingering included.
pub const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// How long a refusal waits for the request's head before answering anyway.
const HEAD_WAIT: Duration = Duration::from_millis(500);

/// Bytes a refusal reads and discards before it closes anyway.
const REFUSAL_DRAIN: usize = 256 << 10;

/// The message of every refusal, at the accept and past `--max-in-flight`.
pub const BUSY_MESSAGE: &str = "Server busy. Try again shortly.";

/// The body of every refusal.
pub const BUSY: &str = r#"{"error": "Server busy. Try again shortly."}"#;

/// Connections open per client IP.
pub struct PerIp {
    max: usize,
    open: DashMap<IpAddr, usize>,
}

/// One connection's place in [`PerIp`], given back on drop.
pub struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A table allowing `max` connections per address.
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max: max.max(1),
            open: DashMap::new(),
        })
    }

    /// A slot for one more connection from `ip`, or `None` at the cap.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut n = self.open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.get(&ip).map_or(0, |n| *n)
    }

    /// Addresses with a connection open.
    pub fn addresses(&self) -> usize {
        self.open.len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Entry::Occupied(mut e) = self.table.open.entry(self.ip) {
            if *e.get() <= 1 {
                e.remove();
            } else {
                *e.get_mut() -= 1;
            }
        }
    }
}

/// Writes refusals, a bounded number at once.
pub struct Refusals {
    slots: Arc<Semaphore>,
    answer: Bytes,
}

impl Refusals {
    /// Refusals that carry `cors_origin` like every other answer.
    pub fn new(cors_origin: &HeaderValue) -> Refusals {
        let mut answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\n\
             content-type: application/json\r\n\
             retry-after: 1\r\n\
             connection: close\r\n\
             content-length: {}\r\n",
            BUSY.len()
        )
        .into_bytes();
        answer.extend_from_slice(b"access-control-allow-origin: ");
        answer.extend_from_slice(cors_origin.as_bytes());
        answer.extend_from_slice(b"\r\naccess-control-expose-headers: Retry-After\r\n\r\n");
        answer.extend_from_slice(BUSY.as_bytes());
        Refusals {
            slots: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            answer: Bytes::from(answer),
        }
    }

    /// Answers `stream` 503 and closes it; `false` when too many refusals are
    /// under way and it was closed unanswered.
    pub fn refuse(&self, stream: TcpStream) -> bool {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return false;
        };
        let answer = self.answer.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(REFUSAL_TIME, answer_and_close(stream, &answer)).await;
        });
        true
    }
}

/// The answer waits for the request's head (at most [`HEAD_WAIT`]): a client
/// that finds an answer on a connection before it has sent its request (hyper's
/// client, for one) takes it for a broken connection rather than a 503. A
/// client that sends nothing gets the 503 anyway when the wait is over.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) -> std::io::Result<()> {
    let mut head = [0u8; 4096];
    let mut seen = 0;
    let _ = tokio::time::timeout(HEAD_WAIT, async {
        while seen < head.len() {
            let n = stream.read(&mut head[seen..]).await?;
            if n == 0 {
                break;
            }
            // Look for the blank line across the boundary of the last read.
            let from = seen.saturating_sub(3);
            seen += n;
            if head[from..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    stream.write_all(answer).await?;
    stream.shutdown().await?;
    let mut scratch = [0u8; 4096];
    let mut left = REFUSAL_DRAIN;
    loop {
        let n = stream.read(&mut scratch).await?;
        if n == 0 || n >= left {
            return Ok(());
        }
        left -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_caps_one_address_and_gives_slots_back() {
        let t = PerIp::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let s1 = t.enter(a).expect("first");
        let s2 = t.enter(a).expect("second");
        assert!(
            t.enter(a).is_none(),
            "the third from one address is refused"
        );
        let other = t.enter(b).expect("another address is not affected");
        assert_eq!(t.open(a), 2);
        drop(s1);
        assert_eq!(t.open(a), 1);
        let s3 = t.enter(a).expect("a freed slot is usable again");
        drop((s2, s3, other));
        assert_eq!(
            t.addresses(),
            0,
            "no entry is kept for an address with none open"
        );
    }

    #[test]
    fn the_refusal_is_one_complete_http_answer() {
        let r = Refusals::new(&HeaderValue::from_static("*"));
        let text = std::str::from_utf8(&r.answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nretry-after: 1\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "Server busy. Try again shortly.");
    }
}
