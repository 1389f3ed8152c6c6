//! Backends misbehaving (issue #20): an aggregated backend that resets, hangs, sends garbage,
//! drips its body, answers 5xx, streams a very large body, or drops a watch. For each, the
//! client gets what kube gives (the backend's own answer passed through, or kube's Status
//! where frontdoor makes the error), frontdoor keeps serving everything else meanwhile, its
//! memory stays bounded, and no seat stays taken: the in-flight and APF gauges return to 0.

use crate::aggregation::{apiservice, certs_init};
use crate::backend::faults::{FaultBackend, GROUP, THINGS};
use crate::backend::{self};
use crate::common::{free_port, Frontdoor};
use crate::inflight::metric;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Setup {
    fd: Frontdoor,
    be: FaultBackend,
    /// The plain metrics listener: reading it takes no seat.
    mport: u16,
}

/// A frontdoor routing faults.example.com/v1 to a fault backend, with a plain metrics port.
fn setup(request_timeout: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    certs_init(&dir.path().join("certs"));
    let pki = backend::pki(&["api.faults.svc"]);
    let be = FaultBackend::start(&pki, &dir.path().join("certs/front-proxy-ca.crt"));
    let file = dir.path().join("apiservices.yaml");
    std::fs::write(&file, apiservice(GROUP, "v1", 1000, 15, "faults/api", &pki.ca_pem)).unwrap();
    let mport = free_port();
    let (ep, maddr) = (format!("faults/api:443=127.0.0.1:{}", be.port), format!("127.0.0.1:{mport}"));
    let args = [
        "--apiservices-file",
        file.to_str().unwrap(),
        "--service-endpoint",
        &ep,
        "--apiservice-check-interval",
        "300ms",
        "--request-timeout",
        request_timeout,
        "--metrics-bind-address",
        &maddr,
    ];
    let fd = Frontdoor::start_in(dir, &args);
    let admin = fd.admin_client();
    crate::common::wait_until("the fault backend available", Duration::from_secs(20), || {
        admin.get(fd.url(&format!("{THINGS}/ok"))).send().is_ok_and(|r| r.status() == 200)
    });
    Setup { fd, be, mport }
}

fn json(r: reqwest::blocking::Response) -> serde_json::Value {
    let text = r.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A Status made by frontdoor: (code, reason, message).
fn status_of(r: reqwest::blocking::Response) -> (u16, String, String) {
    let code = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/json", "a Status from frontdoor");
    let v = json(r);
    assert_eq!((v["kind"].as_str(), v["status"].as_str()), (Some("Status"), Some("Failure")), "{v}");
    assert_eq!(v["code"].as_u64(), Some(code as u64), "{v}");
    (code, v["reason"].as_str().unwrap_or("").into(), v["message"].as_str().unwrap_or("").into())
}

/// Every seat and in-flight count is back to 0 (the in-flight gauge is a one-second watermark,
/// so it is waited for).
fn assert_seats_released(s: &Setup) {
    assert_seats_released_within(s, Duration::from_secs(10))
}

fn assert_seats_released_within(s: &Setup, within: Duration) {
    let gauges = [
        "apiserver_current_inflight_requests{",
        "apiserver_flowcontrol_current_executing_requests{",
        "apiserver_flowcontrol_current_executing_seats{",
        "apiserver_flowcontrol_current_inqueue_requests{",
    ];
    let deadline = Instant::now() + within;
    loop {
        let held: Vec<(&str, f64)> =
            gauges.iter().map(|g| (*g, metric(s.mport, g))).filter(|(_, v)| *v != 0.0).collect();
        if held.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "seats still held: {held:?}\n{}", s.fd.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// frontdoor answers other requests quickly: its own API, and the backend's healthy path.
fn assert_serving(s: &Setup) {
    check_serving(s, &["/version", "/api/v1/namespaces/default/configmaps", &format!("{THINGS}/ok")]);
}

/// frontdoor answers its own API quickly.
fn assert_serving_local(s: &Setup) {
    check_serving(s, &["/version", "/api/v1/namespaces/default/configmaps"]);
}

fn check_serving(s: &Setup, paths: &[&str]) {
    let admin = s.fd.admin_client();
    for path in paths {
        let t = Instant::now();
        let r = admin.get(s.fd.url(path)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(t.elapsed() < Duration::from_secs(2), "{path} took {:?}", t.elapsed());
    }
}

/// The RSS of a process in bytes, from /proc.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Samples a process's RSS every 20 ms until stopped; the largest sample.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let (stop, max) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(rss(pid))));
        let (st, mx) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                mx.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler { stop, max, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.max.load(Ordering::Relaxed)
    }
}

/// Resets, EOF, garbage and 5xx: each answered at once, as kube does, and nothing stays held.
#[test]
fn broken_backends_get_kube_answers_and_release_seats() {
    let s = setup("2s");
    let admin = s.fd.admin_client();
    let get = |fault: &str| admin.get(s.fd.url(&format!("{THINGS}/{fault}"))).send().unwrap();

    // no answer at all: frontdoor's 503, in kube's proxy words and Go's transport's
    let addr = format!("127.0.0.1:{}", s.be.port);
    let malformed = r#"net/http: HTTP/1.x transport connection broken: malformed HTTP response "\x00\x01\x02 this is not HTTP at all \xff\xfe""#;
    for (fault, what) in [
        ("reset-before-headers", format!("read tcp {addr}: connection reset by peer")),
        ("eof-before-headers", "EOF".to_string()),
        ("garbage", malformed.to_string()),
    ] {
        let t = Instant::now();
        let (code, reason, message) = status_of(get(fault));
        assert_eq!((code, reason.as_str()), (503, "ServiceUnavailable"), "{fault}: {message}");
        assert_eq!(message, format!("error trying to reach service: {what}"), "{fault}");
        assert!(t.elapsed() < Duration::from_secs(2), "{fault} answered at once, took {:?}", t.elapsed());
        assert!(s.be.served(fault) >= 1, "{fault} reached the backend");
    }

    // the backend's own 5xx pass through as it sent them: code, body, headers
    for code in [500u16, 502, 503] {
        let r = get(&format!("status/{code}"));
        assert_eq!(r.status().as_u16(), code);
        assert_eq!(r.headers()["x-backend"], "faults", "the backend's headers kept");
        assert_eq!(r.headers()["retry-after"], "7");
        let v = json(r);
        assert_eq!(v["message"], format!("the backend says {code}"), "the backend's own body: {v}");
    }

    // each answer is counted under the code the client got (`things/status/500` under no
    // resource: the backend lists no such subresource, and a client's made-up one is no label)
    let text = crate::inflight::metrics_text(s.mport);
    let counted = |code: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter(|l| l.contains(&format!("code=\"{code}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!((counted("500"), counted("502"), counted("503")), (1.0, 1.0, 4.0), "{text}");

    // reset mid-body: the head went out, so the body is cut short and the client must see it
    // cut (kube aborts the response): no end of a chunked body, no whole Content-Length,
    // over HTTP/1.1 and HTTP/2 alike
    let h1 = impatient_client(&s, Duration::from_secs(30), true);
    for (proto, c) in [("HTTP/1.1", &h1), ("HTTP/2", &admin)] {
        for fault in ["reset-mid-body", "reset-mid-chunked"] {
            let mut r = c.get(s.fd.url(&format!("{THINGS}/{fault}"))).send().unwrap();
            assert_eq!(r.status(), 200);
            let mut body = Vec::new();
            let read = r.read_to_end(&mut body);
            assert!(read.is_err(), "{proto} {fault}: a cut body is passed off as whole ({} bytes)", body.len());
        }

        // a watch the backend drops mid-stream ends for the client too, after its first
        // event, as an error, not as a watch that ended
        let mut w = c.get(s.fd.url(&format!("{THINGS}?watch=true&dropAfterMs=200"))).send().unwrap();
        assert_eq!(w.status(), 200);
        assert!(crate::common::first_line(&mut w).contains("\"t1\""));
        let t = Instant::now();
        let mut rest = Vec::new();
        assert!(w.read_to_end(&mut rest).is_err(), "{proto}: the dropped watch ends in an error");
        assert!(t.elapsed() < Duration::from_secs(5), "the dropped watch ended for the client");
    }

    // a switch of protocols the request did not ask for is no tunnel: kube-aggregator's 503
    let h1 = impatient_client(&s, Duration::from_secs(30), true);
    let r = h1.get(s.fd.url(&format!("{THINGS}/switch"))).send().unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.text().unwrap(), "backend tried to switch protocol \"h2c\" when \"\" was requested\n");
    assert_eq!(s.be.served("switch"), 1);

    assert_serving(&s);
    assert_seats_released(&s);
    assert!(!s.fd.logs().contains("panicked"), "{}", s.fd.logs());
}

/// A backend that never answers holds its requests only until --request-timeout: kube's 504
/// Status, seats released; a slow drip within the deadline arrives whole; meanwhile frontdoor
/// serves everything else.
#[test]
fn hung_and_dripping_backends_are_bounded_by_the_request_timeout() {
    let s = setup("2s");
    let url = s.fd.url(&format!("{THINGS}/hang"));
    let t = Instant::now();
    let hung: Vec<_> = (0..8)
        .map(|_| {
            let (c, url) = (s.fd.admin_client(), url.clone());
            std::thread::spawn(move || c.get(url).send().map(|r| (r.status().as_u16(), r.text().unwrap_or_default())))
        })
        .collect();
    let drip = {
        let (c, url) = (s.fd.admin_client(), s.fd.url(&format!("{THINGS}/drip?n=10&delay=100")));
        std::thread::spawn(move || c.get(url).send().and_then(|r| r.text()))
    };
    crate::common::wait_until("the hung requests at the backend", Duration::from_secs(5), || s.be.served("hang") == 8);
    assert_serving(&s);
    for h in hung {
        let (code, text) = h.join().unwrap().expect("an answer, not a dropped connection");
        assert_eq!(code, 504, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["kind"].as_str(), v["reason"].as_str()), (Some("Status"), Some("Timeout")), "{v}");
        assert_eq!(
            v["message"],
            "Timeout: request did not complete within requested timeout - context deadline exceeded"
        );
    }
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(5), "cut at 2s, took {took:?}");
    assert_eq!(drip.join().unwrap().unwrap(), "abcdefghij", "a drip within the deadline arrives whole");
    // ?timeout= shortens it, as kube's
    let t = Instant::now();
    let r = s.fd.admin_client().get(s.fd.url(&format!("{THINGS}/hang?timeout=500ms"))).send().unwrap();
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_millis(1500), "cut at ?timeout=500ms, took {:?}", t.elapsed());
    // a head trickled a line at a time (each read quick) is cut at the deadline too, over a
    // fresh and over a pooled connection
    for _ in 0..2 {
        let t = Instant::now();
        let url = s.fd.url(&format!("{THINGS}/drip-head?timeout=1s&n=40&delay=100"));
        let r = s.fd.admin_client().get(url).send().unwrap();
        assert_eq!(r.status(), 504);
        assert!(t.elapsed() < Duration::from_millis(2500), "cut at ?timeout=1s, took {:?}", t.elapsed());
        let ok = s.fd.admin_client().get(s.fd.url(&format!("{THINGS}/ok"))).send().unwrap();
        assert_eq!(ok.status(), 200, "the backend still serves");
    }
    assert_seats_released(&s);
}

/// The size of the large response, per protocol: 128 MiB by default (a few seconds on
/// loopback), BACKEND_FAULTS_BIG_MB=1024 for the 1 GB run.
fn big_mb() -> usize {
    std::env::var("BACKEND_FAULTS_BIG_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(128)
}

/// A response far larger than memory should hold streams through at the client's pace, over
/// HTTP/2 and HTTP/1.1: frontdoor's RSS grows by a bounded amount, also while the client stalls.
#[test]
fn a_huge_response_streams_in_bounded_memory() {
    let s = setup("300s");
    let h1 = impatient_client(&s, Duration::from_secs(300), true);
    let h2 = s.fd.admin_client();
    let pid = s.fd.child.id();
    for (proto, c) in [("HTTP/2", &h2), ("HTTP/1.1", &h1)] {
        // warm: the connection pools and buffers a first large response makes
        let mut r = c.get(s.fd.url(&format!("{THINGS}/big?mb=8"))).send().unwrap();
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let before = rss(pid);

        let mb = big_mb();
        let sampler = RssSampler::start(pid);
        let t = Instant::now();
        let mut r = c.get(s.fd.url(&format!("{THINGS}/big?mb={mb}"))).send().unwrap();
        assert_eq!(r.status(), 200);
        // the client stalls for a second first: the backend's bytes must wait in the sockets,
        // not pile up in frontdoor
        std::thread::sleep(Duration::from_secs(1));
        let n = std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let took = t.elapsed();
        let peak = sampler.finish();
        assert_eq!(n, (mb as u64) << 20);
        let grown = peak.saturating_sub(before);
        println!(
            "{proto}: {mb} MiB through frontdoor in {took:.1?} ({:.0} MiB/s); RSS {} MiB before, peak {} MiB (+{} MiB)",
            mb as f64 / took.as_secs_f64(),
            before >> 20,
            peak >> 20,
            grown >> 20
        );
        assert!(grown < 100 << 20, "{proto}: {mb} MiB grew frontdoor's RSS by {} MiB", grown >> 20);
    }
    assert_serving(&s);
    assert_seats_released(&s);
}

/// An admin client that gives up after `t`, on HTTP/1.1 only if `http1`.
fn impatient_client(s: &Setup, t: Duration, http1: bool) -> reqwest::blocking::Client {
    let mut pem = std::fs::read(s.fd.certs().join("admin.crt")).unwrap();
    pem.extend(std::fs::read(s.fd.certs().join("admin.key")).unwrap());
    let id = reqwest::Identity::from_pem(&pem).unwrap();
    let b = crate::common::client_builder(&s.fd.certs()).timeout(t).identity(id);
    if http1 { b.http1_only() } else { b }.build().unwrap()
}

/// A watch handed to a backend that never answers holds no seat meanwhile (kube-aggregator's
/// RequestDelegated releases a proxied watch's priority & fairness seats before it dials), and
/// a client that gives up on a hung backend takes the upstream connection with it (kube cancels
/// the proxied request with the client's context), for watches and ordinary requests alike.
#[test]
fn hung_watches_hold_no_seat_and_leaving_clients_close_the_upstream() {
    let s = setup("60s");
    let c = impatient_client(&s, Duration::from_secs(5), false);
    let url = s.fd.url(&format!("{THINGS}?watch=true&hang=true"));
    let watch = {
        let c = c.clone();
        std::thread::spawn(move || c.get(url).send().map(|r| r.status()))
    };
    crate::common::wait_until("the watch at the backend", Duration::from_secs(5), || s.be.served("") == 1);
    // the one-second in-flight watermark shows 0 within two
    assert_seats_released_within(&s, Duration::from_secs(3));
    assert!(!watch.is_finished(), "the watch still waits on the backend");
    assert!(watch.join().unwrap().is_err(), "the client gave up");
    crate::common::wait_until("the hung watch's upstream connection closed", Duration::from_secs(5), || {
        s.be.served("hang-closed") == 1
    });
    let r = impatient_client(&s, Duration::from_secs(2), false).get(s.fd.url(&format!("{THINGS}/hang"))).send();
    assert!(r.is_err(), "the client gave up before the 60s request timeout");
    crate::common::wait_until("the hung request's upstream connection closed", Duration::from_secs(5), || {
        s.be.served("hang-closed") == 2
    });
    assert_seats_released(&s);
}

/// A backend that accepts connections and never completes a TLS handshake: a request that has
/// to dial it is cut at its deadline with kube's 504, as kube's dial runs under the request's
/// context (not after frontdoor's 5 s connect timeout, as a 503).
#[test]
fn a_backend_that_never_handshakes_is_bounded_by_the_request_timeout() {
    let s = setup("2s");
    s.be.go_silent();
    let admin = s.fd.admin_client();
    let t = Instant::now();
    let (code, reason, message) = status_of(admin.get(s.fd.url(&format!("{THINGS}/ok"))).send().unwrap());
    let took = t.elapsed();
    // the prober may find it out first: then it is kube's 503 at once
    if code == 503 {
        assert_eq!((reason.as_str(), message.as_str()), ("ServiceUnavailable", "service unavailable"));
    } else {
        assert_eq!((code, reason.as_str()), (504, "Timeout"), "{message}");
        assert!(took >= Duration::from_millis(1900) && took < Duration::from_millis(3500), "cut at 2s: {took:?}");
    }
    assert_serving_local(&s);
    assert_seats_released(&s);
}
