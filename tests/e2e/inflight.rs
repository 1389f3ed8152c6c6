//! Max-in-flight through the real binary. A request holds its seat while frontdoor works
//! on it: reading its body or writing its response. Local handlers answer without reading
//! bodies (pingora then closes the connection), so seats are held here by slow readers: clients
//! with a tiny receive window asking for a large response (a list of large ConfigMaps, made
//! first) and not reading it, which keeps the handler blocked in its write.
use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TCP connection to 127.0.0.1:port with a small receive buffer.
pub(crate) fn small_window_connect(port: u16) -> TcpStream {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}

/// A client that asked for `path` and reads only the status line of the answer.
pub(crate) struct SlowReader {
    _stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    pub(crate) status: String,
}

pub(crate) fn slow_reader(fd: &Frontdoor, path: &str) -> SlowReader {
    let mut roots = rustls::RootCertStore::empty();
    for c in frontdoor::tls::load_certs(&fd.certs().join("ca.crt")).unwrap() {
        roots.add(c).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), "127.0.0.1".try_into().unwrap()).unwrap();
    let tcp = small_window_connect(fd.port);
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    stream.flush().unwrap();
    let mut buf = [0u8; 12];
    stream.read_exact(&mut buf).unwrap();
    SlowReader { _stream: stream, status: String::from_utf8_lossy(&buf).into_owned() }
}

pub(crate) fn metrics_text(port: u16) -> String {
    reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).unwrap().text().unwrap()
}

pub(crate) fn metric(port: u16, prefix: &str) -> f64 {
    metrics_text(port)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub(crate) fn wait_metric(port: u16, prefix: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = metric(port, prefix);
        if v == want {
            return;
        }
        assert!(Instant::now() < deadline, "{prefix} is {v}, want {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const READ_ONLY: &str = "apiserver_current_inflight_requests{request_kind=\"readOnly\"}";

/// What slow readers ask for: a list larger than socket buffers absorb (`start` makes it).
pub(crate) const LARGE: &str = "/api/v1/configmaps";

/// Starts frontdoor with a plain metrics listener (so reading metrics takes no seat) and
/// makes the `LARGE` list: eight ConfigMaps of 900 KB.
pub(crate) fn start(limits: &[&str]) -> (Frontdoor, u16) {
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    // the limits are under test, not authorization: anonymous slow readers may list
    let mut args = vec!["--metrics-bind-address", maddr.as_str(), "--authorization-mode", "AlwaysAllow"];
    // plain max-in-flight unless the caller turns priority & fairness back on (a later flag wins)
    args.push("--enable-priority-and-fairness=false");
    args.extend_from_slice(limits);
    let fd = Frontdoor::start(&args);
    let admin = fd.admin_client();
    let value = "x".repeat(900_000);
    for i in 0..8 {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("large-{i}")}, "data": {"v": value}});
        let r = admin.post(fd.url("/api/v1/namespaces/default/configmaps")).json(&cm).send().unwrap();
        assert_eq!(r.status(), 201);
    }
    // more than the kernel's largest send buffer (tcp_wmem max, 4 MiB here) can hold
    let listed = admin.get(fd.url(LARGE)).send().unwrap().bytes().unwrap();
    assert!(listed.len() > 6_000_000, "the list is large");
    (fd, mport)
}

#[test]
fn flood_gets_429_at_the_limit_while_masters_and_watches_go_through() {
    let (fd, mport) = start(&["--max-requests-inflight", "3", "--max-mutating-requests-inflight", "1"]);
    let anon = fd.anonymous_client();

    let held: Vec<SlowReader> = (0..3).map(|_| slow_reader(&fd, LARGE)).collect();
    for h in &held {
        assert_eq!(h.status, "HTTP/1.1 200");
    }
    wait_metric(mport, READ_ONLY, 3.0);

    // the flood: refused at once, kube's text and Retry-After
    let t = Instant::now();
    for _ in 0..10 {
        let r = anon.get(fd.url("/version")).send().unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(r.headers().contains_key("audit-id"));
        let s: serde_json::Value = r.json().unwrap();
        assert_eq!(
            (s["kind"].as_str(), s["reason"].as_str(), s["code"].as_i64()),
            (Some("Status"), Some("TooManyRequests"), Some(429))
        );
        assert_eq!(s["message"], "Too many requests, please try again later.");
    }
    assert!(t.elapsed() < Duration::from_secs(10), "429s are immediate, not queued");
    // system:masters is exempt, through kubectl too
    assert_eq!(fd.admin_client().get(fd.url("/version")).send().unwrap().status(), 200);
    let o = fd.kubectl(&["get", "--raw", "/version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // a watch is long-running: exempt
    let r = anon.get(fd.url("/api/v1/namespaces?watch=true")).send().unwrap();
    assert_ne!(r.status(), 429);
    // mutating requests have their own seats
    let r = anon.post(fd.url("/api/v1/namespaces/default/configmaps")).body("{}").send().unwrap();
    assert_ne!(r.status(), 429);

    let text = metrics_text(mport);
    assert!(metric(mport, "apiserver_request_terminations_total{") >= 10.0, "{text}");
    assert!(metric(mport, "apiserver_dropped_requests_total{request_kind=\"readOnly\"}") >= 10.0);
    let too_many: f64 = text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("code=\"429\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(too_many >= 10.0);

    // the slow readers go away: their seats are free again (the server notices each closed
    // connection on its own time; the gauge is a one-second watermark, so it is checked after)
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while anon.get(fd.url("/version")).send().unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "the slow readers' seats were never released");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_metric(mport, READ_ONLY, 0.0);
}

#[test]
fn zero_means_unlimited() {
    let (fd, mport) = start(&["--max-requests-inflight", "0", "--max-mutating-requests-inflight", "0"]);
    let held: Vec<SlowReader> = (0..4).map(|_| slow_reader(&fd, LARGE)).collect();
    let anon = fd.anonymous_client();
    for _ in 0..5 {
        assert_eq!(anon.get(fd.url("/version")).send().unwrap().status(), 200);
    }
    assert_eq!(metric(mport, "apiserver_dropped_requests_total{"), 0.0);
    drop(held);
}
