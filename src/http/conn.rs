//! One connection's clock and its socket: what the per-connection watchdog in
//! `server.rs` needs to close a connection that holds a slot for nothing, and
//! the lingering close that lets a client still sending a body read the answer
//! it was given.
//!
//! hyper's own `header_read_timeout` is not used: between keep-alive requests it
//! starts the moment the previous response is written, so it would close every
//! idle connection after the header timeout and `--idle-timeout` could never be
//! longer. Instead a [`Tracker`] records, with relaxed stores only (HTTP/1
//! serves one request at a time per connection, and the watchdog runs in the
//! connection's own task), when the last handler returned and when the first
//! byte of the next request arrived, and [`verdict`] turns that into the next
//! deadline:
//!
//! - first request: its headers must be complete `--header-timeout` after the accept;
//! - between requests: `--idle-timeout` of silence, then the connection is closed;
//! - once a byte of the next request has arrived: `--header-timeout` from that byte;
//! - a handler running (a body being read, a long poll waiting): never cut here
//!   (the body has its own deadline, `--body-timeout`, enforced by the handler).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// How long a lingering close drains a body the server did not read.
/// nginx's `lingering_time` is 30 s; a refused upload on a slow link needs a few.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// How many unread bytes a lingering close discards before giving up.
pub const LINGER_BYTES: usize = 16 << 20;

/// `reading_since` when no byte has arrived since the connection went idle.
const NOT_READING: u64 = u64::MAX;

/// The connection-level timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `--header-timeout`.
    pub header: Duration,
    /// `--idle-timeout`.
    pub idle: Duration,
}

/// What one connection has been doing, as the watchdog reads it.
pub struct Tracker {
    /// When the connection was accepted; every other time is milliseconds after it.
    opened: Instant,
    /// A handler is running.
    busy: AtomicBool,
    /// When the last handler returned (0 before the first request).
    idle_since: AtomicU64,
    /// When the first byte after `idle_since` was read, or [`NOT_READING`].
    /// Starts at 0, so that the first request's headers are timed from the accept.
    reading_since: AtomicU64,
    /// Bytes were written since the watchdog last looked: a response is still
    /// going out to a slow reader.
    wrote: AtomicBool,
    /// The last request's body was not read to its end: if the connection closes
    /// now, drain before closing (see [`Io`]).
    linger: AtomicBool,
    /// The socket is in its (self-bounded) lingering close.
    shutting: AtomicBool,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            opened: Instant::now(),
            busy: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            reading_since: AtomicU64::new(0),
            wrote: AtomicBool::new(false),
            linger: AtomicBool::new(false),
            shutting: AtomicBool::new(false),
        }
    }
}

impl Tracker {
    /// Milliseconds since the accept.
    pub fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// The instant `ms` after the accept.
    pub fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// A handler starts.
    pub fn begin(&self) {
        self.linger.store(false, Relaxed);
        self.busy.store(true, Relaxed);
    }

    /// A handler returned; `body_unread`: it left some of the body unread.
    pub fn end(&self, body_unread: bool) {
        if body_unread {
            self.linger.store(true, Relaxed);
        }
        self.idle_since.store(self.now_ms(), Relaxed);
        self.reading_since.store(NOT_READING, Relaxed);
        self.busy.store(false, Relaxed);
    }

    /// Bytes were read from the socket.
    fn read(&self) {
        if self.reading_since.load(Relaxed) == NOT_READING {
            self.reading_since.store(self.now_ms(), Relaxed);
        }
    }

    /// What the watchdog sees now (and forgets the write it saw).
    pub fn seen(&self) -> Seen {
        Seen {
            busy: self.busy.load(Relaxed),
            idle_since: self.idle_since.load(Relaxed),
            reading_since: self.reading_since.load(Relaxed),
            wrote: self.wrote.swap(false, Relaxed),
            shutting: self.shutting.load(Relaxed),
        }
    }
}

/// A reading of a [`Tracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// A handler is running.
    pub busy: bool,
    /// When the last handler returned (ms after the accept).
    pub idle_since: u64,
    /// When the next request's first byte came, or `u64::MAX`.
    pub reading_since: u64,
    /// Bytes went out since the last reading.
    pub wrote: bool,
    /// The lingering close has begun.
    pub shutting: bool,
}

/// What the watchdog does when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Look again at this time (ms after the accept).
    Wait(u64),
    /// Idle too long: ask hyper to close (it finishes a response under way).
    Close,
    /// Close the socket now: headers too slow, or a close that makes no progress.
    Drop,
}

/// The watchdog's decision at `now`; `closing`: a graceful close was already asked for.
pub fn verdict(s: Seen, closing: bool, now: u64, t: Timeouts) -> Verdict {
    let idle = t.idle.as_millis() as u64;
    if s.busy {
        // A request in flight is never cut: look again later.
        return Verdict::Wait(now + idle.max(1));
    }
    if closing {
        return if s.shutting {
            // The lingering close bounds itself.
            Verdict::Wait(now + LINGER_TIME.as_millis() as u64 + 1000)
        } else if s.wrote {
            // A response is still going out to a slow reader.
            Verdict::Wait(now + idle.max(1000))
        } else {
            Verdict::Drop
        };
    }
    if s.reading_since != NOT_READING {
        let due = s.reading_since + t.header.as_millis() as u64;
        return if now >= due {
            Verdict::Drop
        } else {
            Verdict::Wait(due)
        };
    }
    let due = s.idle_since + idle;
    if now >= due {
        Verdict::Close
    } else {
        Verdict::Wait(due)
    }
}

/// The socket as hyper sees it: counts activity for the [`Tracker`], and closes
/// by lingering.
///
/// A lingering close (nginx's `lingering_close`): when hyper closes a
/// connection whose last request body was not read to its end (a 413, any
/// answer given before the body), closing at once would make the kernel answer
/// the client's next bytes with a reset, and a client still sending its body
/// fails with a broken pipe before it reads the answer. So `poll_shutdown`
/// sends FIN and then reads and discards until the client closes, for at most
/// [`LINGER_TIME`] and [`LINGER_BYTES`]. A connection closed with nothing owed
/// (idle, or the client asked) drains only what is already there.
pub struct Io<T> {
    stream: TcpStream,
    /// The connection's tracker (behind whatever handle the server shares).
    track: T,
    /// Set once the lingering close has begun.
    linger: Option<Linger>,
}

struct Linger {
    until: Pin<Box<Sleep>>,
    left: usize,
}

impl<T: AsRef<Tracker>> Io<T> {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream, track: T) -> Self {
        Io {
            stream,
            track,
            linger: None,
        }
    }
}

/// Reads and discards what the socket holds: `Ready(true)` at EOF or error,
/// `Ready(false)` once `left` bytes are gone, `Pending` when nothing more is there.
fn discard(stream: &mut TcpStream, cx: &mut Context<'_>, left: &mut usize) -> Poll<bool> {
    let mut scratch = [0u8; 8192];
    loop {
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(true),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(true),
            Poll::Ready(Ok(())) => {
                *left = left.saturating_sub(buf.filled().len());
                if *left == 0 {
                    return Poll::Ready(false);
                }
            }
        }
    }
}

impl<T: AsRef<Tracker> + Unpin> AsyncRead for Io<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.track.as_ref().read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsRef<Tracker> + Unpin> AsyncWrite for Io<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
        this.track.as_ref().wrote.store(true, Relaxed);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs))?;
        this.track.as_ref().wrote.store(true, Relaxed);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            // FIN first: the client reads the answer, then end of stream.
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            let track = this.track.as_ref();
            let mut left = LINGER_BYTES;
            if !track.linger.load(Relaxed) {
                // Nothing owed: close at once unless bytes are already there
                // (pipelined requests after a graceful close, say): linger
                // only if something was there.
                match discard(&mut this.stream, cx, &mut left) {
                    Poll::Ready(_) => return Poll::Ready(Ok(())),
                    Poll::Pending if left == LINGER_BYTES => return Poll::Ready(Ok(())),
                    Poll::Pending => {}
                }
            }
            track.shutting.store(true, Relaxed);
            this.linger = Some(Linger {
                until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                left,
            });
        }
        let Some(l) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match discard(&mut this.stream, cx, &mut l.left) {
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => match l.until.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn seen(busy: bool, idle_since: u64, reading_since: u64) -> Seen {
        Seen {
            busy,
            idle_since,
            reading_since,
            wrote: false,
            shutting: false,
        }
    }

    #[test]
    fn verdicts() {
        use Verdict::*;
        let cases = [
            // (what, seen, closing, now, verdict)
            (
                "first request, headers still coming",
                seen(false, 0, 0),
                false,
                9_000,
                Wait(10_000),
            ),
            (
                "first request, headers too slow",
                seen(false, 0, 0),
                false,
                10_000,
                Drop,
            ),
            (
                "a handler running is never cut",
                seen(true, 0, 0),
                false,
                500_000,
                Wait(560_000),
            ),
            (
                "idle, not yet long enough",
                seen(false, 5_000, NOT_READING),
                false,
                30_000,
                Wait(65_000),
            ),
            (
                "idle long enough",
                seen(false, 5_000, NOT_READING),
                false,
                65_000,
                Close,
            ),
            (
                "next request's headers timed from their first byte",
                seen(false, 5_000, 60_000),
                false,
                65_000,
                Wait(70_000),
            ),
            (
                "next request's headers too slow",
                seen(false, 5_000, 60_000),
                false,
                70_000,
                Drop,
            ),
            (
                "a close that makes no progress",
                seen(false, 5_000, NOT_READING),
                true,
                66_000,
                Drop,
            ),
            (
                "a close waits for a running handler",
                seen(true, 5_000, NOT_READING),
                true,
                66_000,
                Wait(126_000),
            ),
        ];
        for (what, s, closing, now, want) in cases {
            assert_eq!(verdict(s, closing, now, T), want, "{what}");
        }
        let slow_reader = Seen {
            wrote: true,
            ..seen(false, 5_000, NOT_READING)
        };
        assert_eq!(verdict(slow_reader, true, 66_000, T), Wait(126_000));
        let lingering = Seen {
            shutting: true,
            ..seen(false, 5_000, NOT_READING)
        };
        assert_eq!(verdict(lingering, true, 66_000, T), Wait(72_000));
    }

    #[test]
    fn tracker_times_the_next_request_from_its_first_byte() {
        let t = Tracker::default();
        assert_eq!(
            t.seen().reading_since,
            0,
            "first request timed from the accept"
        );
        t.begin();
        assert!(t.seen().busy);
        t.end(true);
        let s = t.seen();
        assert!(!s.busy);
        assert_eq!(s.reading_since, NOT_READING);
        assert!(t.linger.load(Relaxed));
        t.read();
        let first = t.seen().reading_since;
        assert_ne!(first, NOT_READING);
        t.read();
        assert_eq!(t.seen().reading_since, first, "later bytes do not move it");
        t.begin();
        assert!(!t.linger.load(Relaxed), "a new request owes nothing yet");
    }
}
