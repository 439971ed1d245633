//! The load generator: N keep-alive HTTP/1.1 connections (hyper's low-level
//! client, one `SendRequest` per connection), each looping one kind of work
//! back to back, either for a fixed time after a warm-up (recording every
//! request's start and latency) or until a shared count of steps is done.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::harness::BoxError;

/// How a request proves who it is.
#[derive(Debug, Clone, Default)]
pub enum Cred {
    /// Nothing (the open pool).
    #[default]
    None,
    /// `X-API-Key: <key>`.
    ApiKey(String),
}

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    cred: Option<(&'static str, HeaderValue)>,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr, cred: &Cred) -> Result<Conn, BoxError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let cred = match cred {
            Cred::None => None,
            Cred::ApiKey(k) => Some(("x-api-key", HeaderValue::from_str(k)?)),
        };
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
            cred,
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<(StatusCode, Bytes), BoxError> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if let Some((name, value)) = &self.cred {
            req = req.header(*name, value.clone());
        }
        let req = match body {
            Some(b) => req
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::copy_from_slice(b.as_bytes())))?,
            None => req.body(Full::new(Bytes::new()))?,
        };
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    /// A call that must answer `want`; returns the body as JSON.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
        want: StatusCode,
    ) -> Result<serde_json::Value, BoxError> {
        let (status, bytes) = self.call(method.clone(), path, body).await?;
        if status != want {
            return Err(format!(
                "{method} {path} answered {status} (wanted {want}): {}",
                String::from_utf8_lossy(&bytes)
            )
            .into());
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Sends `Authorization: Bearer <token>` from now on.
    pub fn bearer(&mut self, token: &str) -> Result<(), BoxError> {
        self.cred = Some((
            AUTHORIZATION.as_str(),
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        ));
        Ok(())
    }
}

/// What each connection does in a loop.
#[derive(Debug, Clone)]
pub enum Work {
    /// `GET /keys`, then `PUT /keys/{key_id}?lease_id=…` (two requests).
    Cycle,
    /// `POST /keys`.
    Create,
    /// `GET /keys/{id}` of a random id, then a checkout/release cycle.
    LookupAndCycle(Arc<Vec<Uuid>>),
    /// `PUT /keepalive/{id}`, ids taken in turn.
    Keepalive(Arc<Vec<Uuid>>),
    /// `POST /login` with this body.
    Login(Arc<str>),
}

/// When the connections stop.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// Run `warmup` unrecorded, then record for `measure`.
    Timed {
        /// Not recorded.
        warmup: Duration,
        /// Recorded.
        measure: Duration,
    },
    /// Stop once this many steps were done in all (none recorded), or at the
    /// time limit, whichever comes first.
    Count(u64, Duration),
}

/// One recorded request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Microseconds from the start of the measured window to the request's start.
    pub start_us: u64,
    /// Microseconds until the whole answer was read.
    pub latency_us: u64,
}

/// What a run of [`drive`] measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every recorded request (timed runs only).
    pub samples: Vec<Sample>,
    /// The measured window (timed runs), or the whole run (counted runs).
    pub window: Duration,
    /// When the measured window began.
    pub t0: Option<Instant>,
    /// Steps done (counted runs: all of them; timed: those in the window).
    pub steps: u64,
    /// Requests that failed or got an unexpected status.
    pub errors: u64,
    /// The first of those, for the report.
    pub first_error: Option<String>,
    /// Key ids created by [`Work::Create`] (up to the `keep_ids` asked for).
    pub ids: Vec<Uuid>,
}

impl Outcome {
    /// Steps per second over the window.
    pub fn rate(&self) -> f64 {
        self.steps as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Recorded requests per second over the window.
    pub fn req_rate(&self) -> f64 {
        self.samples.len() as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Adds another run (or connection) of the same work: samples, steps and
    /// errors add up, and so do the windows of whole runs. Sample start times
    /// stay relative to their own run's `t0`.
    pub fn merge(&mut self, o: Outcome) {
        self.samples.extend(o.samples);
        self.steps += o.steps;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.ids.extend(o.ids);
        self.window += o.window;
        self.t0 = self.t0.or(o.t0);
    }

    /// The first error, if any, as a note for the report.
    pub fn error_note(&self) -> Option<String> {
        self.first_error
            .as_ref()
            .map(|e| format!("{} errors; first: {e}", self.errors))
    }
}

/// Opens `conns` connections to `addr` and runs `work` on each until `until`.
/// `keep_ids` caps how many created key ids are returned (they cost memory,
/// which the snapshot scenario measures).
pub async fn drive(
    addr: SocketAddr,
    cred: &Cred,
    work: &Work,
    conns: usize,
    until: Until,
    keep_ids: usize,
) -> Result<Outcome, BoxError> {
    if let Work::LookupAndCycle(ids) | Work::Keepalive(ids) = work {
        if ids.is_empty() {
            return Err("no key ids to work on".into());
        }
    }
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        opened.push(Conn::open(addr, cred).await?);
    }
    let begin = Instant::now();
    let (t0, end) = match until {
        Until::Timed { warmup, measure } => (begin + warmup, begin + warmup + measure),
        Until::Count(_, limit) => (begin, begin + limit),
    };
    let issued = Arc::new(AtomicU64::new(0));
    let per_conn_ids = keep_ids.div_ceil(conns.max(1));
    let mut tasks = Vec::with_capacity(conns);
    for (i, conn) in opened.into_iter().enumerate() {
        let worker = Worker {
            conn,
            addr,
            cred: cred.clone(),
            work: work.clone(),
            record: matches!(until, Until::Timed { .. }),
            limit: match until {
                Until::Count(n, _) => Some((n, issued.clone())),
                Until::Timed { .. } => None,
            },
            t0,
            end,
            keep_ids: per_conn_ids,
            offset: i,
            out: Outcome::default(),
        };
        tasks.push(tokio::spawn(worker.run()));
    }
    let mut total = Outcome {
        t0: Some(t0),
        ..Outcome::default()
    };
    for t in tasks {
        total.merge(t.await?);
    }
    total.ids.truncate(keep_ids);
    total.window = match until {
        Until::Timed { measure, .. } => measure,
        Until::Count(..) => begin.elapsed(),
    };
    Ok(total)
}

/// The checkout answer's fields the release needs.
#[derive(Deserialize)]
struct Checkout {
    key_id: String,
    lease_id: String,
}

/// One connection's loop.
struct Worker {
    conn: Conn,
    addr: SocketAddr,
    cred: Cred,
    work: Work,
    /// Whether to record samples (timed runs).
    record: bool,
    /// Counted runs: the total and the shared count of steps begun.
    limit: Option<(u64, Arc<AtomicU64>)>,
    t0: Instant,
    end: Instant,
    keep_ids: usize,
    /// Where this connection starts in id lists, so connections spread out.
    offset: usize,
    out: Outcome,
}

impl Worker {
    async fn run(mut self) -> Outcome {
        let mut rng = StdRng::from_entropy();
        let mut turn = self.offset;
        loop {
            let now = Instant::now();
            if now >= self.end {
                break;
            }
            if let Some((n, issued)) = &self.limit {
                if issued.fetch_add(1, Ordering::Relaxed) >= *n {
                    break;
                }
            }
            let counted = now >= self.t0;
            let ok = match self.work.clone() {
                Work::Cycle => self.cycle().await,
                Work::Create => {
                    let created = self
                        .request(Method::POST, "/keys", None, StatusCode::CREATED)
                        .await;
                    if self.out.ids.len() < self.keep_ids {
                        if let Some(id) = created.as_ref().and_then(|b| key_id_of(b)) {
                            self.out.ids.push(id);
                        }
                    }
                    created.is_some()
                }
                Work::LookupAndCycle(ids) => {
                    // `drive` refuses empty id lists.
                    let id = ids[rng.gen_range(0..ids.len())];
                    let path = format!("/keys/{id}");
                    self.request(Method::GET, &path, None, StatusCode::OK)
                        .await
                        .is_some()
                        && self.cycle().await
                }
                Work::Keepalive(ids) => {
                    let id = ids[turn % ids.len()];
                    turn = turn.wrapping_add(7919);
                    let path = format!("/keepalive/{id}");
                    self.request(Method::PUT, &path, None, StatusCode::OK)
                        .await
                        .is_some()
                }
                Work::Login(body) => self
                    .request(Method::POST, "/login", Some(&body), StatusCode::OK)
                    .await
                    .is_some(),
            };
            if ok && (counted || !self.record) {
                self.out.steps += 1;
            }
        }
        self.out
    }

    /// Checkout, then release under the lease; false when either failed.
    async fn cycle(&mut self) -> bool {
        let Some(body) = self
            .request(Method::GET, "/keys", None, StatusCode::OK)
            .await
        else {
            return false;
        };
        let Ok(c) = serde_json::from_slice::<Checkout>(&body) else {
            self.fail("GET /keys answered an unexpected body".into());
            return false;
        };
        let path = format!("/keys/{}?lease_id={}", c.key_id, c.lease_id);
        self.request(Method::PUT, &path, None, StatusCode::OK)
            .await
            .is_some()
    }

    /// One timed request; `None` (counted as an error) unless it got `want`.
    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
        want: StatusCode,
    ) -> Option<Bytes> {
        let started = Instant::now();
        let result = self.conn.call(method.clone(), path, body).await;
        let done = Instant::now();
        if self.record && started >= self.t0 && started < self.end {
            self.out.samples.push(Sample {
                start_us: (started - self.t0).as_micros() as u64,
                latency_us: (done - started).as_micros() as u64,
            });
        }
        match result {
            Ok((status, bytes)) if status == want => Some(bytes),
            Ok((status, bytes)) => {
                self.fail(format!(
                    "{method} {path} answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ));
                None
            }
            Err(e) => {
                self.fail(format!("{method} {path}: {e}"));
                // The connection may be gone; try a new one (once per failure).
                if let Ok(c) = Conn::open(self.addr, &self.cred).await {
                    self.conn = c;
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                None
            }
        }
    }

    fn fail(&mut self, what: String) {
        self.out.errors += 1;
        if self.out.first_error.is_none() {
            self.out.first_error = Some(what);
        }
    }
}

/// The `key_id` of a `POST /keys` answer.
fn key_id_of(body: &[u8]) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct Created {
        key_id: Uuid,
    }
    serde_json::from_slice::<Created>(body)
        .ok()
        .map(|c| c.key_id)
}

/// p50, p99 and max of some latencies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Requests measured.
    pub n: usize,
    /// Median, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Slowest, microseconds.
    pub max_us: u64,
}

impl Latency {
    /// Sorts a copy of the latencies and reads the percentiles off it.
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Latency {
        let mut v: Vec<u64> = samples.into_iter().map(|s| s.latency_us).collect();
        if v.is_empty() {
            return Latency::default();
        }
        v.sort_unstable();
        let at = |p: usize| v[((v.len() * p) / 100).min(v.len() - 1)];
        Latency {
            n: v.len(),
            p50_us: at(50),
            p99_us: at(99),
            max_us: v[v.len() - 1],
        }
    }
}
