//! Hostile and careless clients (issue 13): slow bodies, idle keep-alive
//! connections, one address taking every slot, a full server, and uploads
//! refused while the client is still sending them. Every test talks raw TCP
//! to the real binary, with read timeouts bounding each wait; no test asserts
//! how fast anything is, only that the answer comes (within a generous bound)
//! and what it says.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{call, eventually, Server, RELAXED};

/// The server's address.
fn addr(s: &Server) -> SocketAddr {
    s.base
        .strip_prefix("http://")
        .expect("http base")
        .parse()
        .expect("socket address")
}

/// A connection to `s` from 127.0.0.1, with `wait` as its read bound.
fn connect(s: &Server, wait: Duration) -> TcpStream {
    let c = TcpStream::connect(addr(s)).expect("connect");
    c.set_read_timeout(Some(wait)).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// A connection to `s` whose source address is `src` (any of 127.0.0.0/8 is
/// loopback on Linux), so that the server counts it as another client.
fn connect_from(src: &str, s: &Server, wait: Duration) -> TcpStream {
    let to = addr(s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let c = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(format!("{src}:0").parse().unwrap())?;
            sock.connect(to).await?.into_std()
        })
        .expect("connect from another loopback address");
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(wait)).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// One response read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    /// The head, lower-cased.
    head: String,
    body: String,
}

impl Raw {
    fn has(&self, header_line: &str) -> bool {
        self.head.contains(&format!("\r\n{header_line}\r\n"))
    }
}

/// Reads one response (head, then Content-Length bytes of body).
fn read_response(c: &mut TcpStream) -> std::io::Result<Raw> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if c.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&buf)),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let status = head[9..12].parse().expect("status code");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().expect("content length"));
    let mut body = vec![0u8; len];
    c.read_exact(&mut body)?;
    Ok(Raw {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Whether the server has closed `c` (end of stream or reset) within its read bound.
fn closed(c: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

/// Headers and the first byte of a 100-byte body, then nothing.
const SLOW_BODY: &[u8] = b"POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";

fn assert_busy(r: &Raw) {
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.has("retry-after: 1"), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
    assert_eq!(v["error"], "Server busy. Try again shortly.");
}

#[test]
fn a_slow_body_gets_408_and_the_connection_closes() {
    let s = Server::start(&["--body-timeout", "1s"]);
    let mut c = connect(&s, Duration::from_secs(10));
    c.write_all(SLOW_BODY).unwrap();
    let r = read_response(&mut c).expect("an answer, not a hang");
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.has("connection: close"), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"], "Request body timed out.");
    assert!(closed(&mut c), "the connection closes after the 408");
}

#[test]
fn a_body_arriving_at_a_normal_pace_is_not_cut() {
    let s = Server::start(&["--body-timeout", "5s"]);
    let body = br#"{"username": "paced", "password": "correct horse battery"}"#;
    let mut c = connect(&s, Duration::from_secs(10));
    write!(
        c,
        "POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    for part in body.chunks(20) {
        std::thread::sleep(Duration::from_millis(200));
        c.write_all(part).unwrap();
    }
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 201, "{r:?}");
    // and the connection is still good for another request
    c.write_all(HEALTHZ).unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_idle_timeout_not_header_timeout() {
    let s = Server::start(&["--header-timeout", "1s", "--idle-timeout", "4s"]);
    let mut c = connect(&s, Duration::from_secs(15));
    c.write_all(HEALTHZ).unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 200);
    // Idle for longer than the header timeout: still open (hyper's own header
    // timer would have closed it here).
    std::thread::sleep(Duration::from_millis(2500));
    c.write_all(HEALTHZ).unwrap();
    assert_eq!(
        read_response(&mut c)
            .expect("served after idling past --header-timeout")
            .status,
        200
    );
    assert!(closed(&mut c), "closed after --idle-timeout of silence");
}

#[test]
fn headers_that_never_finish_are_cut_at_header_timeout() {
    let s = Server::start(&["--header-timeout", "1s", "--idle-timeout", "60s"]);
    // first request on a connection
    let mut c = connect(&s, Duration::from_secs(10));
    c.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    assert!(closed(&mut c), "a first request's headers are timed");
    // a later request on a keep-alive connection
    let mut c = connect(&s, Duration::from_secs(10));
    c.write_all(HEALTHZ).unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 200);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    assert!(closed(&mut c), "a later request's headers are timed too");
}

#[test]
fn slow_bodies_filling_every_slot_get_408_and_others_a_prompt_503_meanwhile() {
    let s = Server::start(&["--max-connections", "5", "--body-timeout", "4s"]);
    let mut slow: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut c = connect_from("127.0.0.2", &s, Duration::from_secs(10));
            c.write_all(SLOW_BODY).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Full: another client is answered at once (well before the 4 s body
    // timeout frees a slot), not left waiting in the kernel's queue.
    let mut other = connect(&s, Duration::from_secs(2));
    other.write_all(HEALTHZ).unwrap();
    let r = read_response(&mut other).expect("a prompt answer while full");
    assert_busy(&r);
    assert!(r.has("connection: close"), "{r:?}");
    assert!(closed(&mut other), "and the refused connection is closed");
    for c in &mut slow {
        let r = read_response(c).expect("the slow ones get their 408");
        assert_eq!(r.status, 408, "{r:?}");
    }
    drop(slow);
    assert!(
        eventually(Duration::from_secs(5), || {
            call("GET", &s.url("/healthz"), None, None).status == 200
        }),
        "served once the slow connections are gone"
    );
}

#[test]
fn slow_bodies_from_one_address_under_its_cap_leave_another_client_served_at_once() {
    let s = Server::start(&[
        "--max-connections",
        "5",
        "--max-connections-per-ip",
        "4",
        "--body-timeout",
        "4s",
    ]);
    let mut slow: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut c = connect_from("127.0.0.2", &s, Duration::from_secs(10));
            c.write_all(SLOW_BODY).unwrap();
            c
        })
        .collect();
    // The fifth from 127.0.0.2 is over its address's cap ...
    let mut fifth = slow.pop().unwrap();
    assert_busy(&read_response(&mut fifth).expect("a prompt 503"));
    // ... and the slot left is another client's, served at once.
    let mut other = connect(&s, Duration::from_secs(2));
    other.write_all(HEALTHZ).unwrap();
    assert_eq!(read_response(&mut other).expect("served").status, 200);
    for c in &mut slow {
        assert_eq!(
            read_response(c).expect("408 at the body timeout").status,
            408
        );
    }
}

#[test]
fn the_per_ip_cap_refuses_one_address_while_another_is_served() {
    let s = Server::start(&["--max-connections-per-ip", "3", "--max-connections", "100"]);
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = connect_from("127.0.0.2", &s, Duration::from_secs(5));
            c.write_all(HEALTHZ).unwrap();
            assert_eq!(read_response(&mut c).unwrap().status, 200);
            c
        })
        .collect();
    let mut fourth = connect_from("127.0.0.2", &s, Duration::from_secs(5));
    fourth.write_all(HEALTHZ).unwrap();
    assert_busy(&read_response(&mut fourth).expect("a 503, not a hang"));
    assert!(closed(&mut fourth));
    // Another address is not affected.
    let mut other = connect(&s, Duration::from_secs(5));
    other.write_all(HEALTHZ).unwrap();
    assert_eq!(read_response(&mut other).unwrap().status, 200);
    let metrics = call("GET", &s.url("/metrics"), None, None).text;
    assert!(
        metrics.contains("keypool_connections_refused_total{reason=\"per_ip\"} 1"),
        "{metrics}"
    );
    // A slot given back is usable again.
    held.pop();
    assert!(eventually(Duration::from_secs(5), || {
        let mut c = connect_from("127.0.0.2", &s, Duration::from_secs(5));
        c.write_all(HEALTHZ).is_ok() && read_response(&mut c).is_ok_and(|r| r.status == 200)
    }));
}

/// Sends a 4 MB body after headers declaring it (or chunked), then reads the answer.
fn upload(s: &Server, path: &str, chunked: bool) -> Raw {
    const SIZE: usize = 4 << 20;
    let mut c = connect(s, Duration::from_secs(10));
    let head = if chunked {
        format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    } else {
        format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {SIZE}\r\n\r\n")
    };
    c.write_all(head.as_bytes()).unwrap();
    let piece = vec![b' '; 64 << 10];
    for _ in 0..SIZE / piece.len() {
        let sent = if chunked {
            write!(c, "{:x}\r\n", piece.len())
                .and_then(|()| c.write_all(&piece))
                .and_then(|()| c.write_all(b"\r\n"))
        } else {
            c.write_all(&piece)
        };
        // A plain blocking client, like Python's http.client, sends all of it
        // before it reads: a broken pipe here is the bug this test pins.
        sent.unwrap_or_else(|e| panic!("sending the body failed: {e}"));
    }
    if chunked {
        c.write_all(b"0\r\n\r\n").unwrap();
    }
    let r = read_response(&mut c).expect("the answer is readable after sending everything");
    assert!(closed(&mut c), "closed after the refusal");
    r
}

#[test]
fn an_oversized_upload_from_a_blocking_client_reads_413_every_time() {
    let s = Server::start(&["--max-body", "65536"]);
    for i in 0..4 {
        let r = upload(&s, "/register", i % 2 == 1);
        assert_eq!(r.status, 413, "{r:?}");
        assert!(r.has("connection: close"), "{r:?}");
        assert!(r.body.contains("larger than the limit"), "{r:?}");
    }
    // Any answer given before the body (here: no such route) is readable too.
    let r = upload(&s, "/no-such-route", false);
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn expect_100_continue_over_the_limit_gets_413_without_sending_the_body() {
    let s = Server::start(&["--max-body", "65536"]);
    let mut c = connect(&s, Duration::from_secs(5));
    c.write_all(
        b"POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 4194304\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut c).expect("a final answer without the body");
    assert_eq!(r.status, 413, "the final status, not 100 Continue: {r:?}");
    // Within the limit, the body is asked for as usual.
    let body = br#"{"username": "expecting", "password": "correct horse battery"}"#;
    let mut c = connect(&s, Duration::from_secs(5));
    write!(
        c,
        "POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut line = [0u8; 25];
    c.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(body).unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 201);
}

/// Python's standard `http.client`, the client of the issue's report.
#[test]
fn an_oversized_upload_from_python_http_client_reads_413() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 not found; skipping");
        return;
    }
    let s = Server::start(&["--max-body", "65536"]);
    let script = format!(
        r#"
import http.client
port = {port}
for i in range(4):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/register", body=b" " * (4 << 20), headers={{"Content-Type": "application/json"}})
    print(c.getresponse().status)
    c.close()
"#,
        port = addr(&s).port()
    );
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.split_whitespace().collect::<Vec<_>>(),
        ["413"; 4],
        "stdout {stdout}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_still_finishes_a_request_whose_body_is_arriving() {
    let args: Vec<&str> = RELAXED
        .iter()
        .chain(&["--body-timeout", "20s"])
        .copied()
        .collect();
    let mut s = Server::start(&args);
    let body = br#"{"username": "late", "password": "correct horse battery"}"#;
    let mut c = connect(&s, Duration::from_secs(15));
    write!(
        c,
        "POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    c.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        c.write_all(&body[10..]).unwrap();
        read_response(&mut c)
    });
    std::thread::sleep(Duration::from_millis(200));
    let status = s.sigterm();
    assert!(status.success(), "{status:?}");
    let r = t
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(r.status, 201, "{r:?}");
}

#[test]
fn a_refusal_waits_for_the_request_so_that_keep_alive_clients_can_read_it() {
    let s = Server::start(&["--max-connections", "1"]);
    let mut held = connect(&s, Duration::from_secs(5));
    held.write_all(HEALTHZ).unwrap();
    assert_eq!(read_response(&mut held).unwrap().status, 200);
    // A 503 that came before the request would look to hyper's client (and
    // others) like a connection broken before its request: none comes early.
    let mut c = connect(&s, Duration::from_millis(200));
    let mut byte = [0u8; 1];
    let early = c.read(&mut byte);
    assert!(
        early
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "nothing before the request: {early:?}"
    );
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(HEALTHZ).unwrap();
    assert_busy(&read_response(&mut c).expect("the 503 once the request is in"));
    // A client that sends nothing still gets its answer.
    let mut silent = connect(&s, Duration::from_secs(5));
    assert_busy(&read_response(&mut silent).expect("a 503 within a second"));
}

/// Regression: an answer given without reading the request's body (a 401,
/// 403 or 404 before the JSON is parsed) closes the connection, so it must say
/// `Connection: close`; without it a keep-alive client sent its next request
/// into the closing socket and got a transport error (seen as a flaky test).
#[test]
fn an_answer_that_leaves_the_body_unread_says_connection_close() {
    let s = Server::start(RELAXED);
    for (path, status) in [("/nope", 404), ("/generate-key", 401)] {
        let r = crate::support::raw(
            "POST",
            &s.url(path),
            &[],
            Some(r#"{"name": "x"}"#.to_owned()),
        );
        assert_eq!(r.status, status, "{path}: {}", r.text);
        assert_eq!(r.header("connection"), Some("close"), "{path}");
    }
    // A request whose body was read keeps the connection.
    let r = call(
        "POST",
        &s.url("/register"),
        None,
        Some(serde_json::json!({"username": "conn-user", "password": "correct horse battery"})),
    );
    assert_eq!(r.status, 201);
    assert_ne!(r.header("connection"), Some("close"));
}

#[test]
fn past_max_in_flight_a_request_gets_a_prompt_503_and_its_keep_alive_connection_is_served_after() {
    let s = Server::start(&["--max-in-flight", "2", "--body-timeout", "30s"]);
    let mut c = connect(&s, Duration::from_secs(5));
    c.write_all(HEALTHZ).unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 200);
    // Two requests whose handlers are reading a body that does not come: two
    // requests in flight (connections are not the limit here).
    let mut slow: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = connect(&s, Duration::from_secs(10));
            c.write_all(SLOW_BODY).unwrap();
            c
        })
        .collect();
    // The next request, on the open keep-alive connection, is answered at
    // once (long before the 30 s body timeout) without its work.
    assert!(
        eventually(Duration::from_secs(5), || {
            c.write_all(HEALTHZ).unwrap();
            let r = read_response(&mut c).expect("a prompt answer while busy");
            if r.status == 200 {
                return false; // the slow requests were not in flight yet
            }
            assert_busy(&r);
            assert!(!r.has("connection: close"), "{r:?}");
            true
        }),
        "503 while two requests are in flight"
    );
    // The load drops: one body arrives in full, the other client goes away.
    let mut rest = vec![b' '; 98];
    rest.push(b'}');
    slow[0].write_all(&rest).unwrap();
    let done = read_response(&mut slow[0]).expect("the slow request is answered");
    assert_ne!(done.status, 503, "{done:?}");
    drop(slow);
    // The same connection is served again.
    assert!(
        eventually(Duration::from_secs(5), || {
            c.write_all(HEALTHZ).unwrap();
            read_response(&mut c).expect("an answer").status == 200
        }),
        "served once the load drops"
    );
}

#[test]
fn long_poll_waits_do_not_count_toward_max_in_flight() {
    let s = Server::start(&["--open-pool", "--max-in-flight", "2"]);
    // One at a time: a request holds its place until it starts to wait, so
    // three arriving together could find the cap of two taken by the others.
    let mut waiting = Vec::new();
    for n in 1..=3 {
        let url = s.url("/pools/lp/keys?wait=4");
        waiting.push(std::thread::spawn(move || call("GET", &url, None, None)));
        let line = format!("\nkeypool_pool_waiters {n}\n");
        assert!(
            eventually(Duration::from_secs(5), || {
                let r = s.call("GET", "/metrics", None, None);
                r.status == 200 && r.text.contains(&line)
            }),
            "waiter {n} is waiting"
        );
    }
    // Three waiters and a cap of two: others are still served.
    let r = s.call("GET", "/healthz", None, None);
    assert_eq!(r.status, 200, "{}", r.text);
    for w in waiting {
        assert_eq!(w.join().unwrap().status, 404);
    }
}
