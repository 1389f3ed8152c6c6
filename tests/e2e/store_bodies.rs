//! Hostile request bodies against the real binary: nested 100,000 levels (JSON, YAML flow
//! and block), billion-laughs YAML, through create, apply and the review APIs, are refused
//! promptly with kube's 400s; large legitimate YAML bodies are decoded off the worker
//! threads; and another client's requests keep succeeding meanwhile.

use crate::common::Frontdoor;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: the test machine is shared and noisy. Before the bound, the first of these
/// bodies took most of a minute.
const PROMPT: Duration = Duration::from_secs(5);

/// Another client, on fresh connections (TLS handshakes included) and a kept one, for as long
/// as the test runs: each request's outcome and time.
struct Bystander {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(u16, Duration)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bystander {
    fn start(fd: &Frontdoor) -> Bystander {
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (url, kept, certs) =
            (fd.url("/api/v1/namespaces/default/configmaps?limit=1"), fd.admin_client(), fd.certs());
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            while !stop2.load(Ordering::Relaxed) {
                let client =
                    if i % 2 == 0 { kept.clone() } else { crate::common::client_builder(&certs).build().unwrap() };
                let started = Instant::now();
                let code = client.get(&url).send().map(|r| r.status().as_u16()).unwrap_or(0);
                seen2.lock().unwrap().push((code, started.elapsed()));
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Bystander { stop, seen, thread: Some(thread) }
    }

    /// Stops, and checks every request succeeded, none slowly; returns them.
    fn finish(mut self) -> Vec<(u16, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let seen = self.seen.lock().unwrap().clone();
        assert!(seen.len() > 5, "the bystander got through: {seen:?}");
        for (code, took) in seen.iter() {
            // the bystander's fresh clients are anonymous: 403 is an answer, 0 is not
            assert!(*code == 200 || *code == 403, "bystander request failed: {code}");
            assert!(*took < PROMPT, "a bystander request took {took:?}");
        }
        seen
    }
}

fn send(fd: &Frontdoor, method: reqwest::Method, path: &str, ct: &str, body: String) -> (u16, Value, Duration) {
    let started = Instant::now();
    let r = fd.admin_client().request(method, fd.url(path)).header("Content-Type", ct).body(body).send().unwrap();
    let code = r.status().as_u16();
    let v: Value = r.json().unwrap_or(Value::Null);
    (code, v, started.elapsed())
}

#[test]
fn hostile_bodies_are_refused_promptly_and_others_keep_going() {
    let fd = Frontdoor::start(&[]);
    let bystander = Bystander::start(&fd);
    let cms = "/api/v1/namespaces/default/configmaps";
    let flow_map = "data: ".to_string() + &"{a: ".repeat(50_000) + "1" + &"}".repeat(50_000);
    let flow_seq = "data: ".to_string() + &"[".repeat(100_000) + &"]".repeat(100_000);
    let block = "data:\n".to_string() + &"- ".repeat(100_000) + "x\n";
    for (ct, body) in [
        ("application/yaml", flow_map.clone()),
        ("application/yaml", flow_seq.clone()),
        ("application/yaml", block),
        ("application/json", format!("{{\"data\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000))),
    ] {
        let (code, st, took) = send(&fd, reqwest::Method::POST, cms, ct, body);
        assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")), "{st}");
        let msg = st["message"].as_str().unwrap();
        assert!(msg.starts_with("the object provided is unrecognized (must be of type ConfigMap): "), "{msg}");
        assert!(msg.contains("exceeded max depth"), "{msg}");
        assert!(took < PROMPT, "{ct} took {took:?}");
    }

    // server-side apply and the review APIs decode within the same bounds
    let (code, st, took) = send(
        &fd,
        reqwest::Method::PATCH,
        &format!("{cms}/deep?fieldManager=test"),
        "application/apply-patch+yaml",
        flow_map.clone(),
    );
    assert_eq!(code, 400, "{st}");
    assert!(st["message"].as_str().unwrap().contains("yaml: exceeded max depth of 100"), "{st}");
    assert!(took < PROMPT);
    let laughs = {
        let mut doc = String::from("spec: {token: x}\na: &a [x,x,x,x,x,x,x,x,x]\n");
        for (i, c) in "bcdefghij".chars().enumerate() {
            let prev = (b'a' + i as u8) as char;
            doc.push_str(&format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
        }
        doc
    };
    let (code, st, took) =
        send(&fd, reqwest::Method::POST, "/apis/authentication.k8s.io/v1/tokenreviews", "application/yaml", laughs);
    assert_eq!(code, 400, "{st}");
    assert!(took < PROMPT);
    let (code, _, took) = send(
        &fd,
        reqwest::Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "application/json",
        "[".repeat(100_000),
    );
    assert_eq!(code, 400);
    assert!(took < PROMPT);

    // large legitimate YAML bodies, several at once, decode on the blocking pool
    let big: String = (0..60_000).map(|i| format!("  k{i}: value-{i}\n")).collect();
    std::thread::scope(|s| {
        for n in 0..3 {
            let (fd, big) = (&fd, &big);
            s.spawn(move || {
                let body = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big{n}\ndata:\n{big}");
                let (code, st, _) = send(fd, reqwest::Method::POST, cms, "application/yaml", body);
                assert_eq!(code, 201, "{st}");
            });
        }
    });
    let got: Value = fd.admin_client().get(fd.url(&format!("{cms}/big2"))).send().unwrap().json().unwrap();
    assert_eq!(got["data"]["k59999"], "value-59999");

    // past the YAML token bound: refused at once in words that say what to do; the same
    // object as JSON is stored
    let keys = 80_000;
    let block: String = (0..keys).map(|i| format!("  k{i}: v\n")).collect();
    let body = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many\ndata:\n{block}");
    let (code, st, took) = send(&fd, reqwest::Method::POST, cms, "application/yaml", body);
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")), "{st}");
    assert!(st["message"].as_str().unwrap().contains("tokens; send a larger object as JSON"), "{st}");
    assert!(took < PROMPT);
    let data: serde_json::Map<String, Value> = (0..keys).map(|i| (format!("k{i}"), Value::from("v"))).collect();
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "many"}, "data": data});
    let (code, st, _) = send(&fd, reqwest::Method::POST, cms, "application/json", body.to_string());
    assert_eq!(code, 201, "{st}");

    // JSON past its value bound (tiny values under an unknown field) and a JSON array where an
    // object belongs: refused before a tree is built
    let spec = vec!["[[[[]]]]"; 150_000].join(",");
    let body =
        format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"n\"}},\"spec\":[{spec}]}}");
    let (code, st, took) = send(&fd, reqwest::Method::POST, cms, "application/json", body);
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")), "{st}");
    assert!(
        st["message"].as_str().unwrap().contains("json parse error: json: document has more than 500000 values"),
        "{st}"
    );
    assert!(took < PROMPT);
    let (code, st, _) =
        send(&fd, reqwest::Method::POST, cms, "application/json", format!("[{}1]", "1,".repeat(400_000)));
    assert_eq!((code, st["message"].as_str()), (400, Some("the body of the request was not a JSON object")), "{st}");
    bystander.finish();
}

/// Writes run off the threads that serve connections: a deletecollection commits once per
/// object (seconds for thousands), and other clients on the same threads are served meanwhile.
#[test]
fn a_long_deletecollection_leaves_other_clients_served() {
    let fd = Frontdoor::start(&[]);
    let admin = fd.admin_client();
    let cms = "/api/v1/namespaces/default/configmaps";
    // many objects, quickly: concurrent creates on a few connections
    std::thread::scope(|s| {
        for t in 0..4 {
            let (admin, fd) = (admin.clone(), &fd);
            s.spawn(move || {
                for i in 0..400 {
                    let body = format!(r#"{{"metadata":{{"name":"dc-{t}-{i}","labels":{{"dc":"{}"}}}}}}"#, t % 2);
                    let r =
                        admin.post(fd.url(cms)).header("Content-Type", "application/json").body(body).send().unwrap();
                    assert_eq!(r.status(), 201);
                }
            });
        }
    });
    let bystander = Bystander::start(&fd);
    std::thread::sleep(Duration::from_millis(200));
    let took: Vec<Duration> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|half| {
                let (admin, fd) = (admin.clone(), &fd);
                s.spawn(move || {
                    let started = Instant::now();
                    let r = admin.delete(fd.url(&format!("{cms}?labelSelector=dc%3D{half}"))).send().unwrap();
                    assert_eq!(r.status(), 200);
                    started.elapsed()
                })
            })
            .collect();
        runs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let seen = bystander.finish();
    let slowest = seen.iter().map(|(_, t)| *t).max().unwrap();
    let shortest = *took.iter().min().unwrap();
    assert!(slowest * 2 < shortest, "a bystander request took {slowest:?} while the deletecollections took {took:?}");
}

/// A reply sent before its request's body was read (the route's 405, an unknown resource's
/// 404) reaches a client still sending its body whole: over HTTP/2 the stream is not reset
/// under it (curl dropped the reply as a stream error), over HTTP/1.1 the connection is kept.
/// The rest of the body (up to Go's 256 KB) is read after the reply.
#[test]
fn an_early_error_reaches_a_client_still_sending_its_body() {
    let fd = Frontdoor::start(&[]);
    let certs = fd.certs();
    let (chain, key) = (
        std::fs::read_to_string(certs.join("admin.crt")).unwrap(),
        std::fs::read_to_string(certs.join("admin.key")).unwrap(),
    );
    let h2 = crate::raw::tls_config(&certs.join("ca.crt"), Some((&chain, &key)), &[b"h2"]);
    let authority = format!("127.0.0.1:{}", fd.port);
    for (path, code) in [("/api/v1/configmaps", 405), ("/api/v1/namespaces/default/nosuch", 404)] {
        let headers = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", authority.as_str()),
            (":path", path),
            ("content-type", "application/json"),
        ];
        let (first, rest) = (br#"{"metadata":{"name":"x"},"data":{"k":""#, br#""}}"#);
        let got = crate::raw::h2_early_reply(fd.port, h2.clone(), &headers, first, rest);
        assert_eq!(got, (Some(code), None), "HTTP/2 POST {path}: (status, RST_STREAM code)");
    }
    let body = serde_json::json!({"metadata": {"name": "x"}, "data": {"k": "v".repeat(200_000)}}).to_string();
    let h1 = fd.client_builder_with_cert("admin").http1_only().build().unwrap();
    for _ in 0..3 {
        let r = h1.post(fd.url("/api/v1/configmaps")).header("Content-Type", "application/json").body(body.clone());
        let r = r.send().unwrap();
        assert_eq!(r.status().as_u16(), 405);
        assert_eq!(r.json::<Value>().unwrap()["reason"], "MethodNotAllowed");
    }
}

/// A client that announces a body and sends none is answered at once, and its connection is
/// closed within the short wait for the rest (not held for as long as it keeps quiet).
#[test]
fn an_error_for_a_body_never_sent_does_not_hold_the_connection() {
    let fd = Frontdoor::start(&[]);
    let chain = std::fs::read_to_string(fd.certs().join("admin.crt")).unwrap();
    let key = std::fs::read_to_string(fd.certs().join("admin.key")).unwrap();
    let config = crate::raw::tls_config(&fd.certs().join("ca.crt"), Some((&chain, &key)), &[b"http/1.1"]);
    let mut tls = crate::raw::connect(fd.port, config).unwrap();
    let head = "POST /api/v1/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    std::io::Write::write_all(&mut tls, head.as_bytes()).unwrap();
    let start = Instant::now();
    let r = crate::raw::read_response(&mut tls, Duration::from_secs(10));
    assert_eq!(r.status, 405, "{}", r.head);
    assert!(start.elapsed() < Duration::from_secs(1), "answered at once: {:?}", start.elapsed());
    tls.sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = [0u8; 16];
    let n = std::io::Read::read(&mut tls, &mut rest).unwrap_or(0);
    assert_eq!(n, 0, "closed");
    assert!(start.elapsed() < Duration::from_secs(5), "closed after the short wait: {:?}", start.elapsed());
}
