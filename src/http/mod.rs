//! The HTTP layer: the only module that knows hyper and JSON.
//!
//! It turns requests into calls on [`App`] and results into responses, and maps
//! every domain error to a status in one place per domain (`routes/*.rs`). It
//! must not hold domain state of its own beyond rate limiters and metrics.

pub mod admit;
pub mod auth;
pub mod conn;
#[cfg(test)]
mod fuzz_tests;
pub mod idem;
pub mod limits;
pub mod metrics;
pub mod request;
pub mod request_id;
pub mod response;
pub mod router;
mod routes;

/// Parses `body` as each main route's JSON body (for the fuzz targets).
#[doc(hidden)]
pub fn fuzz_bodies(headers: &HeaderMap, body: &[u8]) {
    routes::fuzz_bodies(headers, body);
}
pub mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONNECTION};
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
use limits::Limits;
use metrics::Metrics;
use request_id::{RequestIds, X_REQUEST_ID};
use response::{ApiError, Body};
use router::Route;

/// Everything a request handler needs.
pub struct Http {
    /// The state and the log.
    pub app: Arc<App>,
    /// Per-IP and per-key rate limiters.
    pub limits: Limits,
    /// Request counters.
    pub metrics: Metrics,
    /// Makes the `X-Request-Id` of requests that bring none.
    pub request_ids: RequestIds,
    /// The `Access-Control-Allow-Origin` value.
    cors_origin: HeaderValue,
    /// Request body limit.
    pub max_body: usize,
    /// Connection cap.
    pub max_connections: usize,
    /// Connection cap per client IP.
    pub max_connections_per_ip: usize,
    /// Header-read timeout.
    pub header_timeout: Duration,
    /// How long a body may take to arrive after its headers.
    pub body_timeout: Duration,
    /// How long a keep-alive connection may sit with no request.
    pub idle_timeout: Duration,
    /// Requests being handled now (long-poll waits not counted; see [`Admitted`]).
    pub in_flight: AtomicUsize,
    /// The cap on `in_flight` (`--max-in-flight`).
    pub max_in_flight: usize,
}

/// One request's place among the `--max-in-flight` being handled, given
/// back on drop (also when the connection goes and the handler is dropped).
/// The hot path is one `fetch_add` and one `fetch_sub`: no lock.
pub struct Admitted<'a>(&'a AtomicUsize);

impl<'a> Admitted<'a> {
    /// A place, or `None` when `max` requests are in flight already.
    pub fn enter(count: &'a AtomicUsize, max: usize) -> Option<Admitted<'a>> {
        if count.fetch_add(1, Ordering::Relaxed) >= max {
            count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Admitted(count))
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A long poll's wait, during which its request gives its place back (so that
/// waiters cannot starve the server; `--max-waiters` bounds them instead). It
/// takes the place again on drop, without checking the cap: the request's
/// remaining work is short, and its [`Admitted`] gives the place back at the end.
pub struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    /// Leaves the count of `http`'s requests in flight until dropped.
    pub fn begin(http: &'a Http) -> Waiting<'a> {
        http.in_flight.fetch_sub(1, Ordering::Relaxed);
        Waiting(&http.in_flight)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// One request as the handlers see it.
pub struct Ctx {
    /// The method (HEAD is answered as GET).
    pub method: Method,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw query string.
    pub query: Option<String>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The path, raw.
    pub path: String,
    /// The scope an API key needs for this route and method
    /// ([`Route::scope`]); checked by `authenticate`.
    pub scope: Option<crate::apikeys::Scope>,
    /// The body, until a handler reads it.
    body: Option<Incoming>,
    /// The body once read.
    read: Option<bytes::Bytes>,
    /// The body limit.
    max_body: usize,
    /// When the body must have arrived (`--body-timeout` after the headers).
    body_deadline: tokio::time::Instant,
    /// Reading the body failed (too large, too slow, broken): the connection
    /// must close, since the rest of the body is still on its way.
    body_failed: bool,
    /// The API key `authenticate` found (also when it then refused the
    /// request: scope, address, rate limit, credits): the request counts in
    /// its analytics.
    pub analytics_key: std::cell::Cell<Option<uuid::Uuid>>,
}

impl Ctx {
    /// Reads and parses the JSON body (see [`request::parse_json`]).
    pub async fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let bytes = self.bytes().await?;
        request::parse_json(&self.headers, &bytes)
    }

    /// The raw body (read once, then kept).
    pub async fn bytes(&mut self) -> Result<bytes::Bytes, ApiError> {
        if let Some(b) = &self.read {
            return Ok(b.clone());
        }
        let bytes = match self.body.take() {
            Some(body) => {
                request::read_body(&self.headers, body, self.max_body, self.body_deadline)
                    .await
                    .inspect_err(|_| self.body_failed = true)?
            }
            None => bytes::Bytes::new(),
        };
        self.read = Some(bytes.clone());
        Ok(bytes)
    }

    /// The value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        request::query_param(self.query.as_deref(), name)
    }
}

impl Http {
    /// The HTTP layer over `app`.
    pub fn new(app: Arc<App>) -> Http {
        let c = &app.config;
        let cors_origin =
            HeaderValue::from_str(&c.cors_origin).unwrap_or(HeaderValue::from_static("*"));
        Http {
            limits: Limits::new(c.ip_rate_limit),
            metrics: Metrics::default(),
            request_ids: RequestIds::new(),
            cors_origin,
            max_body: c.max_body,
            max_connections: c.max_connections,
            max_connections_per_ip: c.max_connections_per_ip,
            header_timeout: c.header_timeout,
            body_timeout: c.body_timeout,
            idle_timeout: c.idle_timeout,
            in_flight: AtomicUsize::new(0),
            max_in_flight: c.max_in_flight.max(1),
            app,
        }
    }

    /// Answers one request. Never fails: every error becomes its response.
    /// The flag says whether the request body was left unread (an answer given
    /// before it, or a body refused as too large or too slow): the server must
    /// then drain it before closing (see `conn::Io`).
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> (Response<Body>, bool) {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let has_body = !body.is_end_stream();
        let mut body = Some(body);
        let mut consumed = false;
        let mut read_failed = false;
        let request_id = self.request_ids.for_request(&parts.headers);
        let method = parts.method.clone();
        let path = parts.uri.path().to_owned();
        let route = router::resolve(&path);
        let label = route.as_ref().map_or("unknown", Route::label);
        let mut analytics_key = None;
        // Past `--max-in-flight` a request is answered at once, without its
        // work; its connection stays open (unless a body is left unread).
        let admitted = Admitted::enter(&self.in_flight, self.max_in_flight);
        let mut resp = match route {
            _ if admitted.is_none() => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, admit::BUSY_MESSAGE)
            }
            .into_response(),
            None => ApiError::not_found(format!("No route for {} {path}.", parts.method))
                .into_response(),
            Some(route) if !route.allows(&parts.method) => ApiError {
                allow: Some(route.allow()),
                ..ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!(
                        "{} is not allowed on {}; use {}.",
                        parts.method,
                        route.label(),
                        route.allow()
                    ),
                )
            }
            .into_response(),
            Some(route) if parts.method == Method::OPTIONS => self.preflight(&route),
            Some(route) => {
                let seed003 = route.is_seed003();
                let method = if parts.method == Method::HEAD {
                    Method::GET
                } else {
                    parts.method
                };
                let scope = route.scope(&method);
                let mut ctx = Ctx {
                    scope,
                    method,
                    headers: parts.headers,
                    query: parts.uri.query().map(str::to_owned),
                    peer,
                    path: path.clone(),
                    body: body.take(),
                    read: None,
                    max_body: self.max_body,
                    body_deadline: tokio::time::Instant::from_std(started) + self.body_timeout,
                    body_failed: false,
                    analytics_key: std::cell::Cell::new(None),
                };
                let resp = match routes::dispatch(self, &route, &mut ctx).await {
                    Ok(r) => r,
                    Err(e) if seed003 => e.seed003().into_response(),
                    Err(e) => e.into_response(),
                };
                read_failed = ctx.body_failed;
                analytics_key = ctx.analytics_key.get().map(|k| (k, ctx.method.clone()));
                consumed = ctx.body.is_none() && !read_failed;
                resp
            }
        };
        let h = resp.headers_mut();
        if read_failed || (has_body && !consumed) {
            // The rest of the body is still coming (or was never read): this
            // connection cannot carry another request, and the client must
            // know it, or it sends its next request into a closing socket.
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        h.insert("access-control-allow-origin", self.cors_origin.clone());
        h.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("Retry-After, X-Request-Id"),
        );
        let took = started.elapsed();
        let status = resp.status().as_u16();
        // The request's one log line: at warn for a server error, else at
        // debug, so that a default (info) run logs no line per request.
        let id = request_id.to_str().unwrap_or("");
        let duration_ms = took.as_micros() as f64 / 1000.0;
        // A request shed past `--max-in-flight` is not a server error worth a
        // line each: under overload that would be thousands a second.
        if resp.status().is_server_error() && admitted.is_some() {
            tracing::warn!(request_id = id, %method, route = label, status, duration_ms, %peer, "server error answered");
        } else {
            tracing::debug!(request_id = id, %method, route = label, status, duration_ms, %peer, "answered");
        }
        resp.headers_mut().insert(X_REQUEST_ID, request_id);
        self.metrics.record(label, status, took);
        if let Some((key_id, method)) = analytics_key {
            let micros = took.as_micros().min(u64::MAX as u128) as u64;
            let now = self.app.now();
            self.app
                .state()
                .analytics
                .record(key_id, method.as_str(), label, status, micros, now);
        }
        drop(admitted);
        (resp, has_body && !consumed)
    }

    /// Answers a CORS preflight for `route`.
    fn preflight(&self, route: &Route<'_>) -> Response<Body> {
        let mut resp =
            response::bytes_response(StatusCode::NO_CONTENT, "text/plain", bytes::Bytes::new());
        let h = resp.headers_mut();
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static(route.allow()),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("Authorization, Content-Type, X-API-Key, X-Request-Id"),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("600"));
        h.insert(
            hyper::header::ALLOW,
            HeaderValue::from_static(route.allow()),
        );
        resp
    }
}
