//! The process log as kube-apiserver's flags shape it: `--logging-format json` writes one JSON
//! object per line, `-v 3` adds one line per request, and no line carries a credential.

use crate::common::*;
use std::time::Duration;

#[test]
fn json_log_with_a_line_per_request_and_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("tokens.csv"), "s3cret-token-value,alice,u1,system:masters\n").unwrap();
    let fd = Frontdoor::start_logging(dir, &["--logging-format", "json", "-v", "3"], None);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("Authorization", "Bearer s3cret-token-value".parse().unwrap());
    let alice = client_builder(&fd.certs()).default_headers(headers).build().unwrap();
    let r = alice.get(fd.url("/api/v1/namespaces/default/configmaps?limit=7")).send().unwrap();
    assert_eq!(r.status(), 200);
    let audit_id = r.headers()["Audit-Id"].to_str().unwrap().to_string();
    wait_until("the request's log line", Duration::from_secs(10), || fd.logs().contains(&audit_id));
    let logs = fd.logs();
    let mut request_line = None;
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        if v["audit_id"] == audit_id.as_str() {
            request_line = Some(v);
        }
    }
    let v = request_line.unwrap_or_else(|| panic!("no request line:\n{logs}"));
    assert_eq!(v["message"], "request");
    assert_eq!((v["verb"].as_str(), v["user"].as_str(), v["code"].as_u64()), (Some("LIST"), Some("alice"), Some(200)));
    assert_eq!(v["uri"], "/api/v1/namespaces/default/configmaps?limit=7");
    assert!(!logs.contains("s3cret-token-value"), "a token reached the log:\n{logs}");
    // every line the server wrote is JSON (the banner goes to stdout, which is not the log)
    assert!(logs.lines().filter(|l| l.contains("\"level\"")).count() > 1, "{logs}");
}

#[test]
fn default_verbosity_logs_no_request_lines() {
    let fd = Frontdoor::start_logging(tempfile::tempdir().unwrap(), &[], None);
    let r = fd.admin_client().get(fd.url("/version")).send().unwrap();
    let audit_id = r.headers()["Audit-Id"].to_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!fd.logs().contains(&audit_id), "{}", fd.logs());
}

/// Asked for every debug line (`FRONTDOOR_LOG=debug`), the log still carries no credential and
/// no proxied body: pingora's debug lines quote a failed request's raw head and every body.
#[test]
fn debug_log_keeps_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("tokens.csv"), "d3bug-token-value,alice,u1,system:masters\n").unwrap();
    let fd = Frontdoor::start_logging(dir, &[], Some("debug"));
    let h1 = crate::raw::tls_config(&fd.certs().join("ca.crt"), None, &[b"http/1.1"]);
    // a head pingora refuses (space before the colon), with a token
    let bad = "GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer d3bug-token-value\r\nX-Remote-User : admin\r\n\r\n";
    let x = crate::raw::http1(fd.port, h1.clone(), bad.as_bytes());
    assert_eq!(x.status(), 400);
    let good = "GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer d3bug-token-value\r\nConnection: close\r\n\r\n";
    assert_eq!(crate::raw::http1(fd.port, h1, good.as_bytes()).status(), 200);
    std::thread::sleep(Duration::from_millis(500));
    let logs = fd.logs();
    assert!(logs.contains("DEBUG"), "debug lines are written:\n{logs}");
    assert!(!logs.contains("d3bug-token-value"), "a token reached the log:\n{logs}");
}

/// A client that goes away in the middle of a large list is a debug line (the client's doing),
/// not an error of the server's: pingora logged each as "Fail to filter request: WriteError".
#[test]
fn a_client_gone_mid_response_is_no_error() {
    let fd = Frontdoor::start(&[]);
    let admin = fd.admin_client();
    let big = "v".repeat(1_000_000);
    for i in 0..3 {
        let cm = serde_json::json!({"metadata": {"name": format!("big{i}")}, "data": {"k": big}});
        let r = admin.post(fd.url("/api/v1/namespaces/default/configmaps")).json(&cm).send().unwrap();
        assert_eq!(r.status(), 201);
    }
    let chain = std::fs::read_to_string(fd.certs().join("admin.crt")).unwrap();
    let key = std::fs::read_to_string(fd.certs().join("admin.key")).unwrap();
    let config = crate::raw::tls_config(&fd.certs().join("ca.crt"), Some((&chain, &key)), &[b"http/1.1"]);
    for _ in 0..3 {
        let mut tls = crate::raw::connect(fd.port, config.clone()).unwrap();
        let req = "GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        std::io::Write::write_all(&mut tls, req.as_bytes()).unwrap();
        let mut first = [0u8; 1000];
        let _ = std::io::Read::read(&mut tls, &mut first).unwrap();
        drop(tls); // mid-response
    }
    // the server is fine and has said nothing of it at error level
    assert_eq!(admin.get(fd.url("/readyz")).send().unwrap().status(), 200);
    std::thread::sleep(Duration::from_millis(300));
    let logs = fd.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
