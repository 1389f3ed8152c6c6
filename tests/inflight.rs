//! Max-in-flight through the real binary. Requests are held in flight by slow clients:
//! a request keeps its seat until frontdoor is done with it, and it is not done while the
//! client is still uploading the body it announced (the connection drains it).
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client that sent a request header announcing a large body, and a few bytes of it.
struct SlowUpload {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

fn slow_upload(fd: &Frontdoor, method: &str, path: &str) -> SlowUpload {
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
    let tcp = TcpStream::connect(("127.0.0.1", fd.port)).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"kind\":"
    )
    .unwrap();
    stream.flush().unwrap();
    SlowUpload { stream }
}

impl SlowUpload {
    /// Reads the response status line (written before the body is in).
    fn status_line(&mut self) -> String {
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        self.stream.sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        while !buf.ends_with(b"\r\n") {
            self.stream.read_exact(&mut b).unwrap();
            buf.push(b[0]);
        }
        String::from_utf8(buf).unwrap()
    }
}

fn metric(fd: &Frontdoor, prefix: &str) -> f64 {
    let text = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

fn wait_metric(fd: &Frontdoor, prefix: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = metric(fd, prefix);
        if v == want {
            return;
        }
        assert!(Instant::now() < deadline, "{prefix} is {v}, want {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const MUTATING: &str = "apiserver_current_inflight_requests{request_kind=\"mutating\"}";
const READ_ONLY: &str = "apiserver_current_inflight_requests{request_kind=\"readOnly\"}";

#[test]
fn flood_gets_429_at_the_limit_while_masters_go_through() {
    let fd = Frontdoor::start(&["--max-mutating-requests-inflight", "3", "--max-requests-inflight", "2"]);
    let anon = fd.anonymous_client();
    let path = "/api/v1/namespaces/default/configmaps";

    let mut held: Vec<SlowUpload> = (0..3).map(|_| slow_upload(&fd, "POST", path)).collect();
    for h in held.iter_mut() {
        let line = h.status_line();
        assert!(!line.contains(" 429 "), "{line}");
    }
    wait_metric(&fd, MUTATING, 3.0);

    // the flood: every further mutating request is refused at once
    let t = Instant::now();
    for _ in 0..10 {
        let r = anon.post(fd.url(path)).header("Content-Type", "application/json").body("{}").send().unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(r.headers().contains_key("audit-id"));
        assert_eq!(r.text().unwrap(), "Too many requests, please try again later.\n");
    }
    assert!(t.elapsed() < Duration::from_secs(10), "429s are immediate, not queued");
    // read-only requests have their own seats
    let r = anon.get(fd.url("/version")).send().unwrap();
    assert_eq!(r.status(), 200);
    // system:masters is exempt
    let r = fd.admin_client().post(fd.url(path)).header("Content-Type", "application/json").body("{}").send().unwrap();
    assert_ne!(r.status(), 429);
    // kubectl sees kube's error
    let o = kubectl(&fd.kubeconfig(), &["get", "--raw", "/version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(metric(&fd, "apiserver_request_terminations_total{") >= 10.0);
    assert!(metric(&fd, "apiserver_dropped_requests_total{request_kind=\"mutating\"}") >= 10.0);
    assert!(metric(&fd, "apiserver_request_total{") >= 10.0);

    // releasing the slow clients frees the seats
    held.clear();
    wait_metric(&fd, MUTATING, 0.0);
    let r = anon.post(fd.url(path)).header("Content-Type", "application/json").body("{}").send().unwrap();
    assert_ne!(r.status(), 429);

    // the read-only pool: a GET with a body held in flight
    let mut held: Vec<SlowUpload> = (0..2).map(|_| slow_upload(&fd, "GET", "/version")).collect();
    for h in held.iter_mut() {
        h.status_line();
    }
    wait_metric(&fd, READ_ONLY, 2.0);
    assert_eq!(anon.get(fd.url("/version")).send().unwrap().status(), 429);
    assert_eq!(fd.admin_client().get(fd.url("/version")).send().unwrap().status(), 200);
    drop(held);
    wait_metric(&fd, READ_ONLY, 0.0);
}

#[test]
fn zero_means_unlimited() {
    let fd = Frontdoor::start(&["--max-mutating-requests-inflight", "0", "--max-requests-inflight", "0"]);
    let held: Vec<SlowUpload> = (0..5).map(|_| slow_upload(&fd, "POST", "/api/v1/namespaces/default/configmaps")).collect();
    let anon = fd.anonymous_client();
    for _ in 0..5 {
        let r = anon.post(fd.url("/api/v1/namespaces/default/configmaps")).body("{}").send().unwrap();
        assert_ne!(r.status(), 429);
    }
    drop(held);
}
