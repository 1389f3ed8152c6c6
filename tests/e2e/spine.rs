//! The spine through the real binary: kubectl, TLS (client certs, ALPN, versions), errors,
//! metrics, CORS, audit IDs, graceful shutdown and the command line.

use crate::common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ALLOWED_ORIGIN: &str = "https://allowed.example.com";

/// One gateway with CORS and the plain-HTTP metrics listener, shared by the read-only tests.
fn start_main() -> (Frontdoor, u16) {
    let metrics_port = free_port();
    let fd = Frontdoor::start(&[
        "--cors-allowed-origins",
        r"^https://allowed\.example\.com$",
        "--metrics-bind-address",
        &format!("127.0.0.1:{metrics_port}"),
    ]);
    (fd, metrics_port)
}

fn body(r: reqwest::blocking::Response) -> (u16, reqwest::header::HeaderMap, String) {
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    (code, headers, r.text().unwrap())
}

#[test]
fn kubectl_raw_health_and_version() {
    let fd = Frontdoor::start(&[]);
    for (path, want) in [("/readyz", "ok"), ("/livez", "ok"), ("/healthz", "ok")] {
        let o = fd.kubectl(&["get", "--raw", path]);
        assert!(o.status.success(), "{path}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "{path}");
    }
    let o = fd.kubectl(&["get", "--raw", "/readyz?verbose"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("[+]ping ok\n"), "{out}");
    assert!(out.contains("[+]shutdown ok\n"), "{out}");
    assert!(out.ends_with("readyz check passed\n"), "{out}");

    let o = fd.kubectl(&["get", "--raw", "/version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["major"], "1");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1."), "{v}");
    assert!(v["platform"].as_str().unwrap().contains('/'), "{v}");
    let o = fd.kubectl(&["version", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["serverVersion"]["major"], "1", "{v}");

    let o = fd.kubectl(&["get", "--raw", "/no/such/path"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("NotFound"), "{}", stderr(&o));
}

#[test]
fn errors_are_kube_shaped() {
    let (fd, _) = start_main();
    let c = fd.admin_client();
    for path in ["/no/such/path", "/apis/nosuch.example.com/v1/widgets"] {
        let (code, headers, text) = body(c.get(fd.url(path)).send().unwrap());
        assert_eq!(code, 404, "{path}: {text}");
        assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
        let s: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(s["kind"], "Status", "{text}");
        assert_eq!(s["apiVersion"], "v1", "{text}");
        assert_eq!(s["status"], "Failure", "{text}");
        assert_eq!(s["reason"], "NotFound", "{text}");
        assert_eq!(s["code"], 404, "{text}");
        assert_eq!(s["message"], "the server could not find the requested resource", "{text}");
        assert_eq!(s["details"], serde_json::json!({}), "{text}");
        assert_eq!(s["metadata"], serde_json::json!({}), "{text}");
    }
    // methods as kube's routes take them: its plain handlers any, its GET routes only GET,
    // and no route is NotFound whatever the method
    for (method, path, want) in [
        ("POST", "/healthz", 200),
        ("DELETE", "/readyz", 200),
        ("POST", "/metrics", 200),
        ("POST", "/version", 405),
        ("DELETE", "/apis", 405),
        ("POST", "/no/such/path", 404),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (code, _, text) = body(c.request(m, fd.url(path)).send().unwrap());
        assert_eq!(code, want, "{method} {path}: {text}");
    }
    // a malformed ?timeout= is refused before anything else runs
    let (code, _, text) = body(c.get(fd.url("/api/v1/namespaces/default/widgets?timeout=soon")).send().unwrap());
    assert_eq!(code, 400, "{text}");
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["reason"], "BadRequest", "{text}");
    assert_eq!(s["message"], r#"invalid timeout specified in the request URL - time: invalid duration "soon""#);
    let (code, _, _) = body(c.get(fd.url("/version?timeout=5s")).send().unwrap());
    assert_eq!(code, 200);

    // a legacy special verb with nothing after it cannot be resolved: kube's 500 text, as a Status
    let (code, headers, text) = body(c.get(fd.url("/api/v1/watch")).send().unwrap());
    assert_eq!(code, 500);
    assert_eq!(headers["content-type"], "application/json");
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["kind"], "Status");
    assert_eq!(s["reason"], "InternalError");
    assert_eq!(
        s["message"],
        "Internal Server Error: \"/api/v1/watch\": failed to create RequestInfo: \
         unable to determine kind and namespace from url, /api/v1/watch"
    );
}

#[test]
fn audit_id_header() {
    let (fd, _) = start_main();
    let c = fd.anonymous_client();
    let (_, headers, _) = body(c.get(fd.url("/version")).send().unwrap());
    let id = headers["audit-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let (_, headers2, _) = body(c.get(fd.url("/version")).send().unwrap());
    assert_ne!(headers2["audit-id"], id, "one per request");
    let (_, headers, _) = body(c.get(fd.url("/no/such")).header("Audit-ID", "my-audit-id-1").send().unwrap());
    assert_eq!(headers["audit-id"], "my-audit-id-1", "a client-sent Audit-ID is echoed");
    assert_eq!(headers["cache-control"], "no-cache, private");
}

// ---------- TLS ----------

fn dev_roots(certs: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(certs.join("ca.crt")).unwrap();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn tls_config(
    certs: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client_cert: Option<(String, String)>,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(dev_roots(certs));
    let mut cfg = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
            let key = rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Completes a handshake and returns the negotiated (protocol version, ALPN).
fn handshake(port: u16, cfg: Arc<rustls::ClientConfig>) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

/// A certificate for CN=intruder, O=system:masters from a CA the gateway does not trust.
fn foreign_client_cert() -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "other-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "intruder");
    leaf.distinguished_name.push(DnType::OrganizationName, "system:masters");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn client_cert_from_another_ca_fails_the_handshake() {
    let (fd, _) = start_main();
    let (cert, key) = foreign_client_cert();

    // reqwest: the request fails outright, it is not served as anonymous
    let id = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
    let foreign = client_builder(&fd.certs()).identity(id).build().unwrap();
    let r = foreign.get(fd.url("/readyz")).send();
    assert!(r.is_err(), "a foreign client cert must not be served: {:?}", r.map(|r| r.status()));

    // rustls, per version: the server rejects the certificate with a fatal alert
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let cfg = tls_config(&fd.certs(), &[version], Some((cert.clone(), key.clone())));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let mut tcp = TcpStream::connect(("127.0.0.1", fd.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let err = loop {
            // TLS 1.3 clients finish first; the server's verdict comes with the next read
            if !conn.is_handshaking() {
                let mut s = rustls::Stream::new(&mut conn, &mut tcp);
                let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n");
                let mut buf = [0u8; 512];
                match s.read(&mut buf) {
                    Ok(n) => panic!("{version:?}: served {n} bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
                    Err(e) => break e,
                }
            }
            if let Err(e) = conn.complete_io(&mut tcp) {
                break e;
            }
        };
        let msg = err.to_string();
        assert!(
            msg.contains("received fatal alert") && (msg.contains("BadCertificate") || msg.contains("UnknownCA")),
            "{version:?}: {msg}"
        );
    }

    // without a client certificate the same request is served (anonymous)
    let (code, _, text) = body(fd.anonymous_client().get(fd.url("/readyz")).send().unwrap());
    assert_eq!((code, text.as_str()), (200, "ok"));
    // and the dev CA's admin cert is accepted
    let (code, _, _) = body(fd.admin_client().get(fd.url("/readyz")).send().unwrap());
    assert_eq!(code, 200);
}

#[test]
fn alpn_h2_and_tls_versions() {
    let (fd, _) = start_main();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let s = handshake(fd.port, tls_config(&fd.certs(), &[version], None));
        assert_eq!(s.conn.protocol_version(), Some(version.version));
        assert_eq!(s.conn.alpn_protocol(), Some(&b"h2"[..]), "{version:?}: h2 by ALPN");
    }
    // HTTP/1.1 when the client offers only that
    let mut cfg = (*tls_config(&fd.certs(), &[&rustls::version::TLS13], None)).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut s = handshake(fd.port, Arc::new(cfg));
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // reqwest speaks h2 when the server offers it
    let r = fd.admin_client().get(fd.url("/version")).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);

    // rustls clients cannot speak TLS 1.0/1.1, so offer them by hand: a ClientHello whose only
    // version is 1.0 or 1.1 gets a fatal protocol_version alert, never a ServerHello
    for legacy in [0x0301u16, 0x0302] {
        let reply = raw_client_hello(fd.port, legacy);
        assert!(!reply.is_empty(), "{legacy:#06x}: the server answers");
        assert_eq!(reply[0], 0x15, "{legacy:#06x}: an alert record, not a handshake: {reply:02x?}");
        assert_eq!(reply.get(5..7), Some(&[2u8, 70][..]), "{legacy:#06x}: fatal protocol_version: {reply:02x?}");
    }
}

/// Sends a TLS 1.0/1.1-only ClientHello (no supported_versions extension) and returns
/// what the server writes back before closing.
fn raw_client_hello(port: u16, version: u16) -> Vec<u8> {
    let [vh, vl] = version.to_be_bytes();
    // ECDHE-RSA/ECDSA-AES128-SHA, RSA-AES128-SHA, RSA-AES256-SHA
    let suites: [u8; 10] = [0xc0, 0x13, 0xc0, 0x09, 0x00, 0x2f, 0x00, 0x35, 0x00, 0xff];
    let mut hello = vec![vh, vl];
    hello.extend([7u8; 32]); // random
    hello.push(0); // session id
    hello.extend((suites.len() as u16).to_be_bytes());
    hello.extend(suites);
    hello.extend([1, 0]); // compression: null
                          // extensions: server_name=localhost, ec_point_formats, supported_groups, and
                          // signature_algorithms (without which rustls would refuse for that reason instead)
    let mut ext = Vec::new();
    let host = b"localhost";
    let mut sni = Vec::new();
    sni.extend(((host.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend((host.len() as u16).to_be_bytes());
    sni.extend(host);
    ext.extend([0x00, 0x00]);
    ext.extend((sni.len() as u16).to_be_bytes());
    ext.extend(sni);
    ext.extend([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    ext.extend([0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x17, 0x00, 0x1d]);
    ext.extend([0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x04, 0x01, 0x08, 0x04]);
    hello.extend((ext.len() as u16).to_be_bytes());
    hello.extend(ext);
    let mut hs = vec![1u8];
    hs.extend(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(hs);

    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&record).unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    out
}

// ---------- metrics ----------

/// The value of the first sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn metrics_count_requests_with_kube_labels() {
    let (fd, metrics_port) = start_main();
    let c = fd.admin_client();
    for _ in 0..3 {
        assert_eq!(c.get(fd.url("/no/such/path")).send().unwrap().status(), 404);
    }
    assert_eq!(c.get(fd.url("/version")).send().unwrap().status(), 200);
    assert_eq!(c.get(fd.url("/api/v1/namespaces/default/widgets")).send().unwrap().status(), 404);
    // what a client makes up (a group, a resource, a method, with or without credentials) is
    // never a label: each would be a new series
    let method = reqwest::Method::from_bytes(b"FOO").unwrap();
    for client in [&c, &fd.anonymous_client()] {
        let r = client.request(method.clone(), fd.url("/apis/made-up.example/v1/zz456/y")).send().unwrap();
        assert!([403, 404, 405].contains(&r.status().as_u16()), "{}", r.status());
    }
    let anon = fd.anonymous_client();
    let r = anon.get(fd.url("/api/v1/namespaces/default/configmaps")).bearer_auth("no-such-token").send().unwrap();
    assert_eq!(r.status(), 401);
    let (code, headers, text) = body(c.get(fd.url("/metrics")).send().unwrap());
    assert_eq!(code, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));

    let not_found = sample(&text, "apiserver_request_total", &[r#"code="404""#, r#"verb="GET""#, r#"scope="""#]);
    assert!(not_found.is_some_and(|n| n >= 3.0), "404s counted with code=\"404\":\n{text}");
    let ok = sample(&text, "apiserver_request_total", &[r#"code="200""#, r#"verb="GET""#, r#"component="apiserver""#]);
    assert!(ok.is_some_and(|n| n >= 1.0), "{text}");
    let list = sample(
        &text,
        "apiserver_request_total",
        &[
            r#"code="404""#,
            r#"verb="LIST""#,
            r#"resource="""#,
            r#"version="""#,
            r#"group="""#,
            r#"scope="namespace""#,
            r#"subresource="""#,
            r#"dry_run="""#,
        ],
    );
    assert_eq!(list, Some(1.0), "a namespaced list of no resource, counted without one:\n{text}");
    for made_up in ["widgets", "made-up.example", "zz456", "FOO"] {
        assert!(!text.contains(made_up), "{made_up} is a label:\n{text}");
    }
    for code in ["403", "404"] {
        let other = sample(&text, "apiserver_request_total", &[r#"verb="other""#, &format!("code=\"{code}\"")]);
        assert_eq!(other, Some(1.0), "an unknown method is kube's `other`:\n{text}");
    }
    // a served resource keeps its labels
    let listed = sample(&text, "apiserver_request_total", &[r#"resource="configmaps""#, r#"code="401""#]);
    assert_eq!(listed, Some(1.0), "{text}");
    for le in ["0.005", "0.025", "1", "60", "+Inf"] {
        let b = sample(&text, "apiserver_request_duration_seconds_bucket", &[r#"verb="GET""#, &format!("le=\"{le}\"")]);
        assert!(b.is_some(), "bucket le={le}:\n{text}");
    }
    assert!(sample(&text, "apiserver_request_duration_seconds_count", &[r#"verb="LIST""#]) == Some(1.0), "{text}");
    assert!(sample(&text, "process_cpu_seconds_total", &[]).is_some(), "{text}");
    assert!(sample(&text, "process_resident_memory_bytes", &[]).is_some_and(|b| b > 0.0), "{text}");
    assert!(text.contains("# TYPE apiserver_request_total counter"), "{text}");

    // the plain-HTTP metrics listener serves the same registry, and nothing else
    let plain = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        match plain.get(&url).send() {
            Ok(r) if r.status() == 200 => break r.text().unwrap(),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("metrics listener: {other:?}"),
        }
    };
    assert!(sample(&text, "apiserver_request_total", &[r#"code="404""#]).is_some(), "{text}");
    let r = plain.get(format!("http://127.0.0.1:{metrics_port}/version")).send().unwrap();
    assert_eq!(r.status(), 404);
}

// ---------- CORS ----------

#[test]
fn cors_preflight_for_allowed_origins_only() {
    let (fd, _) = start_main();
    let c = fd.anonymous_client();
    let preflight = |origin: &str| {
        c.request(reqwest::Method::OPTIONS, fd.url("/api/v1/namespaces/default/pods"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .send()
            .unwrap()
    };
    let r = preflight(ALLOWED_ORIGIN);
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], ALLOWED_ORIGIN);
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("GET"));

    let r = preflight("https://evil.example.org");
    assert_ne!(r.status(), 204, "no preflight answer for a disallowed origin");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // the regex is anchored as written: a suffix does not match
    let r = preflight("https://allowed.example.com.evil.org");
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // over HTTP/1.1 the 204 has no body framing or content type, as Go's net/http writes it
    let mut cfg = (*tls_config(&fd.certs(), &[&rustls::version::TLS13], None)).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut s = handshake(fd.port, Arc::new(cfg));
    let req =
        format!("OPTIONS /api HTTP/1.1\r\nHost: localhost\r\nOrigin: {ALLOWED_ORIGIN}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let head = resp.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 204"), "{resp}");
    assert!(head.contains(&format!("access-control-allow-origin: {ALLOWED_ORIGIN}")), "{resp}");
    for h in ["content-length:", "content-type:", "transfer-encoding:"] {
        assert!(!head.contains(h), "no {h} on a 204: {resp}");
    }

    // a simple request from an allowed origin carries the header too
    let r = c.get(fd.url("/version")).header("Origin", ALLOWED_ORIGIN).send().unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED_ORIGIN);
}

// ---------- graceful shutdown ----------

#[test]
fn sigterm_fails_readyz_serves_during_delay_then_exits_zero() {
    let mut fd = Frontdoor::start(&["--shutdown-delay-duration=2s"]);
    let c = fd.admin_client();
    assert_eq!(c.get(fd.url("/readyz")).send().unwrap().status(), 200);
    let t0 = Instant::now();
    fd.terminate();

    // /readyz fails at once
    let code = loop {
        let code = c.get(fd.url("/readyz")).send().unwrap().status().as_u16();
        if code == 500 || t0.elapsed() > Duration::from_secs(1) {
            break code;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, 500, "/readyz must fail within a second of SIGTERM");
    let (code, _, text) = body(c.get(fd.url("/readyz?verbose")).send().unwrap());
    assert_eq!(code, 500);
    assert!(text.contains("[-]shutdown failed: reason withheld"), "{text}");
    assert!(text.ends_with("readyz check failed\n"), "{text}");

    // the rest is still served during the delay, on new connections too
    let fresh = fd.anonymous_client();
    for client in [&c, &fresh] {
        assert_eq!(client.get(fd.url("/healthz")).send().unwrap().status(), 200);
        assert_eq!(client.get(fd.url("/livez")).send().unwrap().status(), 200);
        assert_eq!(client.get(fd.url("/version")).send().unwrap().status(), 200);
    }
    assert!(t0.elapsed() < Duration::from_millis(1800), "checked within the delay");
    assert!(fd.child.try_wait().unwrap().is_none(), "still running during the delay");

    // then the process exits cleanly
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = fd.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit:\n{}", fd.logs());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(t0.elapsed() >= Duration::from_secs(2), "exited before the delay was over");
    assert_eq!(status.code(), Some(0), "{}", fd.logs());
}

/// The drain ends a watch of the store cleanly (its stream's end, not a cut connection), after
/// the shutdown delay and before the process exits, so that the client watches again elsewhere.
#[test]
fn the_drain_ends_a_watch_cleanly() {
    let mut fd = Frontdoor::start(&["--shutdown-delay-duration=1s"]);
    let c = fd.admin_client();
    let mut watch = c.get(fd.url("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=600")).send().unwrap();
    assert_eq!(watch.status(), 200);
    let reader = std::thread::spawn(move || {
        let mut body = Vec::new();
        let read = watch.read_to_end(&mut body);
        (read.map_err(|e| e.to_string()), Instant::now())
    });
    let t0 = Instant::now();
    fd.terminate();
    let (read, ended) = reader.join().unwrap();
    assert!(read.is_ok(), "the watch was cut, not ended: {read:?}\n{}", fd.logs());
    assert!(ended - t0 >= Duration::from_millis(900), "ended before the shutdown delay was over");
    let deadline = Instant::now() + Duration::from_secs(15);
    while fd.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "did not exit:\n{}", fd.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------- command line ----------

fn frontdoor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_frontdoor")).args(args).output().unwrap()
}

#[test]
fn unknown_flags_and_config_keys_are_named() {
    let o = frontdoor(&["serve", "--bogus-flag"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--bogus-flag"), "{}", stderr(&o));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("frontdoor.yaml");
    std::fs::write(&cfg, "secure-port: 7443\nnot-a-real-setting: 1\n").unwrap();
    let o = frontdoor(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not-a-real-setting"), "{}", stderr(&o));

    std::fs::write(&cfg, "request-timeout: soon\n").unwrap();
    let o = frontdoor(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("request-timeout"), "{}", stderr(&o));
}

#[test]
fn config_file_settings_apply_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("frontdoor.yaml");
    let cors = format!("cors-allowed-origins: ['^{}$']\n", regex_escape(ALLOWED_ORIGIN));
    std::fs::write(&cfg, format!("secure-port: 1\n{cors}")).unwrap();
    // the file says port 1; the harness's --secure-port flag overrides it
    let fd = Frontdoor::start(&["--config", cfg.to_str().unwrap()]);
    let r = fd
        .anonymous_client()
        .request(reqwest::Method::OPTIONS, fd.url("/api"))
        .header("Origin", ALLOWED_ORIGIN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "CORS from the file applies");
}

fn regex_escape(s: &str) -> String {
    s.replace('.', r"\.")
}

#[test]
fn certs_init_writes_kubeadm_names_and_keeps_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("pki");
    let o = frontdoor(&["certs", "init", "--dir", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names = frontdoor::certs::FILES;
    let read_all = || names.map(|n| std::fs::read(d.join(n)).unwrap_or_else(|e| panic!("{n}: {e}")));
    let first = read_all();
    for (n, content) in names.iter().zip(&first) {
        assert!(!content.is_empty(), "{n} is empty");
    }
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "apiserver.key", "sa.key", "admin.key"] {
        let mode = std::fs::metadata(d.join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key} is private");
    }
    let admin = String::from_utf8(first[10].clone()).unwrap();
    let (_, admin_der) = x509_parser::pem::parse_x509_pem(admin.as_bytes()).unwrap();
    let admin = admin_der.parse_x509().unwrap();
    let subject = admin.subject().to_string();
    assert!(subject.contains("CN=admin") && subject.contains("O=system:masters"), "{subject}");

    // again without --force: every file is kept as it was
    let o = frontdoor(&["certs", "init", "--dir", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(read_all() == first, "existing files are kept without --force");

    // with --force the CA is regenerated
    let o = frontdoor(&["certs", "init", "--dir", d.to_str().unwrap(), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(read_all()[0], first[0], "--force rewrites ca.crt");
}
