//! HTTP/1.1 connections on the secure port, which frontdoor's own connection loop serves
//! (src/connection.rs): a connection waits for its next request holding only its stream, gets
//! the request's first bytes handed to pingora, and comes back after a watch that ran outside
//! pingora's request (filters::detach). Every request here shares one keep-alive connection
//! unless said otherwise.

use crate::common::Frontdoor;
use crate::raw::{self, Tls};
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// An HTTP/1.1 connection presenting the admin client cert.
fn admin_connection(fd: &Frontdoor) -> Tls {
    let chain = std::fs::read_to_string(fd.certs().join("admin.crt")).unwrap();
    let key = std::fs::read_to_string(fd.certs().join("admin.key")).unwrap();
    let config = raw::tls_config(&fd.certs().join("ca.crt"), Some((&chain, &key)), &[b"http/1.1"]);
    raw::connect(fd.port, config).unwrap()
}

fn request(tls: &mut Tls, method: &str, target: &str, extra: &str, body: &str) -> raw::Response {
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(body.as_bytes()).unwrap();
    tls.flush().unwrap();
    raw::read_response(tls, Duration::from_secs(15))
}

fn metric(fd: &Frontdoor, line_has: &[&str]) -> f64 {
    let text = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && line_has.iter().all(|s| l.contains(s)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn a_watch_delivers_and_its_connection_serves_the_next_request() {
    let fd = Frontdoor::start(&[]);
    let mut tls = admin_connection(&fd);
    // a request first: the watch runs on a reused connection
    assert_eq!(request(&mut tls, "GET", "/readyz", "", "").status, 200);

    let watch = format!("GET {CMS}?watch=1&timeoutSeconds=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    tls.write_all(watch.as_bytes()).unwrap();
    tls.flush().unwrap();
    let creator = {
        let (c, url) = (fd.admin_client(), fd.url(CMS));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            let r = c.post(url).json(&json!({"metadata": {"name": "seen"}})).send().unwrap();
            assert_eq!(r.status(), 201);
        })
    };
    // the whole watch: its events, then its end (timeoutSeconds) as a last chunk
    let w = raw::read_response(&mut tls, Duration::from_secs(10));
    creator.join().unwrap();
    assert_eq!(w.status, 200, "{}", w.head);
    // the current state first (the namespace's root CA), then the change
    let events: Vec<Value> = w.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = events.last().unwrap();
    assert_eq!(last["type"], "ADDED", "{events:?}");
    assert_eq!(last["object"]["metadata"]["name"], "seen", "{events:?}");

    // the same connection serves on
    let got = request(&mut tls, "GET", &format!("{CMS}/seen"), "", "");
    assert_eq!(got.status, 200, "{}", got.body);
    // and the watch was logged once it ended, as every request
    let watches =
        metric(&fd, &["apiserver_request_total{", "verb=\"WATCH\"", "resource=\"configmaps\"", "code=\"200\""]);
    assert_eq!(watches, 1.0);

    // a client that leaves during a watch: the server ends it (its seat and gauge freed)
    let mut gone = admin_connection(&fd);
    let watch = format!("GET {CMS}?watch=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    gone.write_all(watch.as_bytes()).unwrap();
    gone.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(gone);
    // the watch notices at its next write: a change to what it watches
    let c = fd.admin_client();
    assert_eq!(c.post(fd.url(CMS)).json(&json!({"metadata": {"name": "after"}})).send().unwrap().status(), 201);
    crate::common::wait_until("the abandoned watch to be logged", Duration::from_secs(10), || {
        metric(&fd, &["apiserver_request_total{", "verb=\"WATCH\"", "resource=\"configmaps\""]) == 2.0
    });
}

#[test]
fn requests_across_the_first_read_idle_waits_and_large_bodies() {
    let fd = Frontdoor::start(&[]);
    let mut tls = admin_connection(&fd);

    // a header far past the first read's 4 KiB
    let pad = format!("X-Pad: {}\r\n", "a".repeat(12_000));
    assert_eq!(request(&mut tls, "GET", "/readyz", &pad, "").status, 200);

    // a body of hundreds of KB after its header
    let data = "x".repeat(300_000);
    let cm = json!({"metadata": {"name": "big"}, "data": {"k": data}}).to_string();
    let created = request(&mut tls, "POST", CMS, "", &cm);
    assert_eq!(created.status, 201, "{}", created.body);

    // idle between requests (the connection waits holding only its stream), then a response
    // of hundreds of KB
    std::thread::sleep(Duration::from_millis(1500));
    let got = request(&mut tls, "GET", &format!("{CMS}/big"), "", "");
    assert_eq!(got.status, 200);
    let v: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(v["data"]["k"].as_str().unwrap().len(), 300_000);

    // a header that arrives in pieces: its first byte, later the rest
    let head = format!("GET {CMS}/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    tls.write_all(&head.as_bytes()[..1]).unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    tls.write_all(&head.as_bytes()[1..20]).unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    tls.write_all(&head.as_bytes()[20..]).unwrap();
    tls.flush().unwrap();
    assert_eq!(raw::read_response(&mut tls, Duration::from_secs(10)).status, 200);

    // a malformed request line after the first byte is Go's 400 (the connection loop's)
    tls.write_all(b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    tls.flush().unwrap();
    assert_eq!(raw::read_response(&mut tls, Duration::from_secs(10)).status, 400);
}

/// A connection is kept as the request asks (pingora's reading of Connection and the version,
/// as Go's): an HTTP/1.0 request without keep-alive has its connection closed after a local
/// reply, where frontdoor's replies had held every connection open; HTTP/1.1 keeps it.
#[test]
fn an_http10_request_has_its_connection_closed() {
    let fd = Frontdoor::start(&[]);
    for (version, extra, closed) in
        [("HTTP/1.0", "", true), ("HTTP/1.0", "Connection: keep-alive\r\n", false), ("HTTP/1.1", "", false)]
    {
        for target in ["/readyz", CMS, "/api/v1/namespaces/default/nosuch"] {
            let mut tls = admin_connection(&fd);
            let head = format!("GET {target} {version}\r\nHost: 127.0.0.1\r\n{extra}\r\n");
            tls.write_all(head.as_bytes()).unwrap();
            tls.flush().unwrap();
            let r = raw::read_response(&mut tls, Duration::from_secs(15));
            assert!(r.status == 200 || r.status == 404, "{version} {target}: {}", r.head);
            tls.sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let mut rest = [0u8; 64];
            let ended = matches!(std::io::Read::read(&mut tls, &mut rest), Ok(0));
            assert_eq!(ended, closed, "{version} {extra:?} {target}: connection closed");
        }
    }
}

/// A request line Go's server cannot read (net/http readRequest: parseRequestLine, validMethod,
/// ParseHTTPVersion, url.ParseRequestURI) is answered with Go's bytes exactly and the connection
/// closed, before any handler: pingora percent-encoded a space in the target (`de v` was served
/// as the namespace `de%20v`) and served a malformed escape as it stood. What Go takes (bytes past
/// 0x7f, the escapes themselves, a bad escape in the query) is served as before.
#[test]
fn a_request_line_go_cannot_read_is_refused_as_go_refuses_it() {
    let fd = Frontdoor::start(&[]);
    const GO_400: &str =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";
    let send = |line: &[u8]| {
        let mut tls = admin_connection(&fd);
        tls.write_all(&[line, &b"\r\nHost: 127.0.0.1\r\n\r\n"[..]].concat()).unwrap();
        tls.flush().unwrap();
        tls
    };
    for line in [
        &b"GET /api/v1/namespaces/de v/configmaps HTTP/1.1"[..],
        b"GET /api/v1/namespaces/default/configmaps/x HTTP/1.1 ",
        b"GET  /api/v1/namespaces/default/configmaps HTTP/1.1",
        b"GET /api/v1/namespaces/a%zz/configmaps HTTP/1.1",
        b"GET /api/v1/namespaces/default/configmaps/x% HTTP/1.1",
        b"G(T /api/v1/namespaces/default/configmaps HTTP/1.1",
        b"GET /api/v1/namespaces/default/configmaps http/1.1",
        b"GET :/api/v1/namespaces/default/configmaps HTTP/1.1",
        b"GET /api/v1/namespaces/default/configmaps\x7f HTTP/1.1",
    ] {
        let mut tls = send(line);
        // everything until the server closes: Go's answer and nothing else
        let mut answer = Vec::new();
        let read = std::io::Read::read_to_end(&mut tls, &mut answer);
        assert!(read.is_ok(), "{}: {read:?} after {}", line.escape_ascii(), answer.escape_ascii());
        assert_eq!(String::from_utf8_lossy(&answer), GO_400, "{}", line.escape_ascii());
    }
    // what Go takes is served: the escapes, bytes past 0x7f, a bad escape in the query
    for line in [
        &b"GET /api/v1/namespaces/de%20v/configmaps HTTP/1.1"[..],
        b"GET /api/v1/namespaces/caf\xc3\xa9/configmaps HTTP/1.1",
        b"GET /api/v1/namespaces/default/configmaps?x=%zz HTTP/1.1",
    ] {
        let mut tls = send(line);
        let r = raw::read_response(&mut tls, Duration::from_secs(15));
        assert_eq!(r.status, 200, "{}: {}", line.escape_ascii(), r.head);
        assert!(r.body.contains("\"kind\":\"ConfigMapList\""), "{}", r.body);
    }
}
