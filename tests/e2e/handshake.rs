//! The TLS handshake timeout (--tls-handshake-timeout): a connection that does not finish its
//! handshake in time is closed by the server; clients that do are unaffected, however long they
//! then stay idle.

use crate::common::Frontdoor;
use crate::raw;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Seconds until the server closes `s` (EOF or reset); panics after `limit`.
fn closed_after(mut s: TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue, // e.g. a TLS alert
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("connection still open after {limit:?}")
            }
            Err(_) => return start.elapsed(),
        }
    }
}

#[test]
fn silent_and_stalled_handshakes_are_closed_normal_clients_unaffected() {
    let fd = Frontdoor::start(&["--tls-handshake-timeout", "1s"]);
    let start = Instant::now();

    // sends nothing at all: closed after the timeout, not before
    let silent = TcpStream::connect(("127.0.0.1", fd.port)).unwrap();
    let silent = std::thread::spawn(move || closed_after(silent, Duration::from_secs(8)));
    // starts a ClientHello (record header, 3 bytes of it) and stalls
    let mut stalled = TcpStream::connect(("127.0.0.1", fd.port)).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    // finishes TCP, then trickles one byte of a ClientHello every 300 ms: the deadline is for
    // the whole handshake, not per read
    let mut trickle = TcpStream::connect(("127.0.0.1", fd.port)).unwrap();
    let trickler = std::thread::spawn(move || {
        let hello = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
        for b in hello {
            if trickle.write_all(&[b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        // closed by then? a read says
        trickle.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut x = [0u8; 16];
        !matches!(trickle.read(&mut x), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    });

    // a normal client, meanwhile: handshakes, then idles past the timeout on its connection and
    // is still served on it
    let config = raw::tls_config(&fd.certs().join("ca.crt"), None, &[b"http/1.1"]);
    let mut tls = raw::connect(fd.port, config.clone()).expect("normal handshake");
    std::thread::sleep(Duration::from_millis(1500));
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.windows(2).any(|w| w == b"ok") {
        let n = tls.read(&mut b).expect("response on an idle established connection");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));

    let t = silent.join().unwrap();
    assert!(t >= Duration::from_millis(950), "closed before the timeout: {t:?}");
    assert!(t < Duration::from_secs(6), "closed late: {t:?}");
    closed_after(stalled, Duration::from_secs(3));
    assert!(start.elapsed() < Duration::from_secs(8));
    assert!(trickler.join().unwrap(), "a trickled handshake outlived the deadline");

    // plain HTTP to the HTTPS port: Go's (and so kube-apiserver's) plain-text 400
    let mut plain = TcpStream::connect(("127.0.0.1", fd.port)).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert_eq!(answer, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n");

    // every one of them counted, as kube counts them
    let m = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
    let errors: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("apiserver_tls_handshake_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no apiserver_tls_handshake_errors_total in\n{m}"));
    assert!(errors >= 4, "{errors} handshake errors counted");

    // and new clients are served as usual
    let r = fd.anonymous_client().get(fd.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    let r = fd.admin_client().get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn handshake_timeout_flag_is_validated() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_frontdoor"))
        .args(["serve", "--tls-handshake-timeout", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls-handshake-timeout"));
}
