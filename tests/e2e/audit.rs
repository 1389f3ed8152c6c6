//! Audit through the real binary: events at each level and stage in the log file, the
//! Audit-ID header, failed authentication, rotation, and the webhook backend (a TLS
//! receiver started here) in batch mode, including a stuck receiver.
use crate::common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/readyz", "/healthz", "/metrics"]
- level: RequestResponse
  nonResourceURLs: ["/api"]
- level: Request
  nonResourceURLs: ["/apis"]
- level: Metadata
  omitStages: [RequestReceived]
  resources: [{group: "", resources: ["configmaps"]}]
- level: Metadata
"#;

/// A frontdoor auditing every request but /metrics at `level` to a log file; (it, the log).
fn audited_at(level: &str) -> (Frontdoor, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{{level: None, nonResourceURLs: ['/metrics']}}, {{level: {level}}}]\n"
    );
    let policy = write_policy(dir.path(), &text);
    let log = dir.path().join("audit.log");
    let fd = Frontdoor::start_in(
        dir,
        &["--audit-policy-file", policy.to_str().unwrap(), "--audit-log-path", log.to_str().unwrap()],
    );
    (fd, log)
}

fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("audit-policy.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The log's whole lines: the writer may be in the middle of the last one (a read raced a
/// write once in a full run: "EOF while parsing a string").
fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    whole.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}"))).collect()
}

/// Polls the log until `pred` holds for the events of `audit_id`.
fn wait_events(path: &Path, audit_id: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let evs: Vec<Value> = events(path).into_iter().filter(|e| e["auditID"] == audit_id).collect();
        if pred(&evs) {
            return evs;
        }
        assert!(Instant::now() < deadline, "events for {audit_id}: {evs:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_micro_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    // 2026-01-02T15:04:05.123456Z
    s.len() == 27 && s.ends_with('Z') && s.as_bytes()[19] == b'.'
}

fn metric(fd: &Frontdoor, prefix: &str) -> f64 {
    let text = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[test]
fn events_at_each_level_and_stage() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), POLICY);
    let log = dir.path().join("audit.log");
    let fd = Frontdoor::start_in(
        dir,
        &["--audit-policy-file", policy.to_str().unwrap(), "--audit-log-path", log.to_str().unwrap()],
    );
    let admin = fd.admin_client();

    // Metadata, both stages; a client-sent Audit-ID is kept
    let r = admin
        .get(fd.url("/version"))
        .header("Audit-ID", "my-audit-id")
        .header("User-Agent", "audit-test/1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["audit-id"], "my-audit-id");
    let evs = wait_events(&log, "my-audit-id", |e| e.len() == 2);
    let (rr, rc) = (&evs[0], &evs[1]);
    assert_eq!(rr["stage"], "RequestReceived");
    assert_eq!(rc["stage"], "ResponseComplete");
    for e in [rr, rc] {
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(e["level"], "Metadata");
        assert_eq!(e["requestURI"], "/version");
        assert_eq!(e["verb"], "get");
        assert_eq!(e["user"]["username"], "admin");
        assert!(e["user"]["groups"].as_array().unwrap().contains(&"system:masters".into()));
        assert_eq!(e["sourceIPs"][0], "127.0.0.1");
        assert_eq!(e["userAgent"], "audit-test/1");
        assert!(is_micro_time(&e["requestReceivedTimestamp"]) && is_micro_time(&e["stageTimestamp"]), "{e}");
        assert!(e.get("objectRef").is_none() && e.get("requestObject").is_none() && e.get("responseObject").is_none());
        assert_eq!(e["requestReceivedTimestamp"], rr["requestReceivedTimestamp"]);
    }
    assert!(rr.get("annotations").is_none(), "authorization runs after RequestReceived");
    assert_eq!(rc["annotations"]["authorization.k8s.io/decision"], "allow");
    assert_eq!(rc["responseStatus"], serde_json::json!({"metadata": {}, "code": 200}));

    // RequestResponse: the JSON response body is the responseObject
    let r = admin.get(fd.url("/api")).send().unwrap();
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a generated UUID");
    let body: Value = r.json().unwrap();
    let evs = wait_events(&log, &id, |e| e.len() == 2);
    assert_eq!(evs[1]["level"], "RequestResponse");
    assert_eq!(evs[1]["responseObject"], body);

    // Request level: no responseObject
    let r = admin.get(fd.url("/apis")).send().unwrap();
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    let evs = wait_events(&log, &id, |e| e.len() == 2);
    assert_eq!(evs[1]["level"], "Request");
    assert!(evs[1].get("responseObject").is_none());

    // a resource request: objectRef; the rule omits RequestReceived; a Status body is the
    // responseStatus
    let r = admin.get(fd.url("/api/v1/namespaces/default/configmaps/cm1")).send().unwrap();
    let code = r.status().as_u16();
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    let evs = wait_events(&log, &id, |e| !e.is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let evs2: Vec<Value> = events(&log).into_iter().filter(|e| e["auditID"] == id.as_str()).collect();
    assert_eq!(evs2.len(), 1, "RequestReceived omitted: {evs2:#?}");
    let e = &evs[0];
    assert_eq!(e["stage"], "ResponseComplete");
    assert_eq!(
        e["objectRef"],
        serde_json::json!({"resource": "configmaps", "namespace": "default", "name": "cm1", "apiVersion": "v1"})
    );
    assert_eq!(e["responseStatus"]["code"], code);
    if code >= 400 {
        assert_eq!(e["responseStatus"]["status"], "Failure");
        assert!(e["responseStatus"]["reason"].is_string());
    }

    // level None: nothing
    let r = admin.get(fd.url("/readyz")).send().unwrap();
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(200));
    assert!(events(&log).iter().all(|e| e["auditID"] != id.as_str()));

    // anonymous: the user as authenticated
    let r = fd.anonymous_client().get(fd.url("/version")).send().unwrap();
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    let evs = wait_events(&log, &id, |e| e.len() == 2);
    assert_eq!(
        evs[0]["user"],
        serde_json::json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]})
    );

    assert!(metric(&fd, "apiserver_audit_event_total") >= 8.0);
    assert!(metric(&fd, "apiserver_audit_level_total{level=\"None\"}") >= 1.0);
    assert!(metric(&fd, "apiserver_audit_level_total{level=\"RequestResponse\"}") >= 1.0);
}

/// A request frontdoor serves itself (the store's create, the review APIs) has its body as
/// the event's requestObject at Request level, as a proxied request does.
#[test]
fn local_requests_record_request_object() {
    let (fd, log) = audited_at("Request");
    let admin = fd.admin_client();
    // POSTs a JSON body (expecting 201); the request's ResponseComplete event
    let create = |path: &str, body: &Value| {
        let r =
            admin.post(fd.url(path)).header("Content-Type", "application/json").body(body.to_string()).send().unwrap();
        assert_eq!(r.status(), 201);
        let id = r.headers()["audit-id"].to_str().unwrap().to_string();
        let evs = wait_events(&log, &id, |e| e.iter().any(|e| e["stage"] == "ResponseComplete"));
        evs.into_iter().find(|e| e["stage"] == "ResponseComplete").unwrap()
    };
    let cm = serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "audited"}, "data": {"k": "v"}});
    let rc = create("/api/v1/namespaces/default/configmaps", &cm);
    assert_eq!(rc["level"], "Request");
    assert_eq!(rc["verb"], "create");
    assert_eq!(rc["requestObject"], cm);
    assert!(rc.get("responseObject").is_none());

    let review = serde_json::json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1"});
    let rc = create("/apis/authentication.k8s.io/v1/selfsubjectreviews", &review);
    assert_eq!(rc["requestObject"], review);

    // a YAML body is recorded too, as JSON (kube records a request object whatever its format)
    let yaml = "kind: ConfigMap\napiVersion: v1\nmetadata: {name: from-yaml}\ndata: {k: v}\n";
    let r = admin
        .post(fd.url("/api/v1/namespaces/default/configmaps"))
        .header("Content-Type", "application/yaml")
        .body(yaml)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    let evs = wait_events(&log, &id, |e| e.iter().any(|e| e["stage"] == "ResponseComplete"));
    let rc = evs.into_iter().find(|e| e["stage"] == "ResponseComplete").unwrap();
    assert_eq!(
        rc["requestObject"],
        serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "from-yaml"}, "data": {"k": "v"}})
    );
}

/// No Secret's data and no token reaches the log at RequestResponse, whatever the body's
/// `kind` says or leaves out, and through patches too: bodies are scrubbed as what their
/// request is for.
#[test]
fn secrets_and_tokens_never_reach_the_log() {
    let (fd, log) = audited_at("RequestResponse");
    let admin = fd.admin_client();
    let secrets = "/api/v1/namespaces/default/secrets";
    let send = |method: reqwest::Method, path: &str, ctype: &str, body: &str| {
        let r =
            admin.request(method, fd.url(path)).header("Content-Type", ctype).body(body.to_string()).send().unwrap();
        let code = r.status().as_u16();
        let id = r.headers()["audit-id"].to_str().unwrap().to_string();
        wait_events(&log, &id, |e| e.iter().any(|e| e["stage"] == "ResponseComplete"));
        code
    };
    let json = "application/json";
    // "U0VDUkVU" is base64 of SECRET
    assert_eq!(
        send(reqwest::Method::POST, secrets, json, r#"{"metadata":{"name":"s1"},"data":{"k":"U0VDUkVUMQ=="}}"#),
        201
    );
    assert_eq!(
        send(
            reqwest::Method::POST,
            secrets,
            json,
            r#"{"kind":"Secret","metadata":{"name":"s2"},"stringData":{"k":"SECRET2"}}"#
        ),
        201
    );
    let s1 = format!("{secrets}/s1");
    assert_eq!(
        send(reqwest::Method::PATCH, &s1, "application/merge-patch+json", r#"{"data":{"k":"U0VDUkVUMw=="}}"#),
        200
    );
    let ops = r#"[{"op":"replace","path":"/data/k","value":"U0VDUkVUNA=="}]"#;
    assert_eq!(send(reqwest::Method::PATCH, &s1, "application/json-patch+json", ops), 200);
    // refused (no resourceVersion), and recorded all the same
    assert_eq!(send(reqwest::Method::PUT, &s1, json, r#"{"metadata":{"name":"s1"},"data":{"k":"U0VDUkVUNQ=="}}"#), 422);
    let yaml = "metadata: {name: s3}\nstringData: {k: SECRET6}\n";
    assert_eq!(send(reqwest::Method::POST, secrets, "application/yaml", yaml), 201);
    let review = r#"{"spec":{"token":"a-token-to-review"}}"#;
    assert_eq!(send(reqwest::Method::POST, "/apis/authentication.k8s.io/v1/tokenreviews", json, review), 201);
    let text = std::fs::read_to_string(&log).unwrap();
    for leak in ["U0VDUkVU", "SECRET2", "SECRET6", "a-token-to-review"] {
        assert!(!text.contains(leak), "{leak} is in the audit log:\n{text}");
    }
    // what was asked for is still there, less the data
    assert!(text.contains(r#""requestObject":{"metadata":{"name":"s1"}}"#), "{text}");
    assert!(text.contains(r#""requestObject":{"metadata":{"name":"s3"}}"#), "a YAML body is recorded, less the data");
}

#[test]
fn failed_authentication_is_audited_and_policy_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), POLICY);
    let log = dir.path().join("audit.log");
    let fd = Frontdoor::start_in(
        dir,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
            "--anonymous-auth=false",
        ],
    );
    let r = fd.anonymous_client().get(fd.url("/version")).bearer_auth("secret-token-123").send().unwrap();
    assert_eq!(r.status(), 401);
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    let evs = wait_events(&log, &id, |e| !e.is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let all: Vec<Value> = events(&log).into_iter().filter(|e| e["auditID"] == id.as_str()).collect();
    assert_eq!(all.len(), 1, "one event: {all:#?}");
    let e = &evs[0];
    assert_eq!(e["stage"], "ResponseStarted");
    assert_eq!(e["user"], serde_json::json!({}));
    assert_eq!(e["responseStatus"]["code"], 401);
    assert_eq!(e["responseStatus"]["message"], "Authentication failed, attempted: bearer");
    assert!(!std::fs::read_to_string(&log).unwrap().contains("secret-token-123"), "credentials never logged");

    // a bad policy keeps the old one; a good one is swapped in
    std::fs::write(&policy, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Bogus}]\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&fd, "frontdoor_policy_reload_total{policy=\"audit-policy\",result=\"failure\"}") < 1.0 {
        assert!(Instant::now() < deadline, "reload failure not reported");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = fd.admin_client().get(fd.url("/version")).send().unwrap();
    let id = r.headers()["audit-id"].to_str().unwrap().to_string();
    wait_events(&log, &id, |e| e.len() == 2);
    std::fs::write(&policy, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['/metrics']}, {level: RequestResponse}]\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = fd.admin_client().get(fd.url("/version")).send().unwrap();
        let id = r.headers()["audit-id"].to_str().unwrap().to_string();
        let evs = wait_events(&log, &id, |e| e.len() == 2);
        if evs[0]["level"] == "RequestResponse" {
            break;
        }
        assert!(Instant::now() < deadline, "new policy not applied");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn log_rotation_creates_backups() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n");
    let logdir = dir.path().join("logs");
    let log = logdir.join("audit.log");
    let fd = Frontdoor::start_in(
        dir,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
            "--audit-log-maxsize",
            "1",
            "--audit-log-maxbackup",
            "2",
        ],
    );
    let admin = fd.admin_client();
    let pad = "x".repeat(8000);
    let backups = || {
        std::fs::read_dir(&logdir)
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("audit-") && n.ends_with(".log")
            })
            .count()
    };
    // ~16 KB of events per request: 1 MiB holds about 64
    for i in 0..400 {
        let r = admin.get(fd.url(&format!("/version?pad={pad}&i={i}"))).send().unwrap();
        assert_eq!(r.status(), 200);
        if backups() >= 2 && i > 200 {
            break;
        }
    }
    assert_eq!(backups(), 2, "rotated, pruned to --audit-log-maxbackup");
    assert!(std::fs::metadata(&log).unwrap().len() <= 1024 * 1024);
    for e in events(&log) {
        assert_eq!(e["kind"], "Event");
    }
}

#[test]
fn batch_events_still_queued_at_shutdown_are_delivered() {
    let recv = start_receiver(false);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n");
    let kc = webhook_kubeconfig(dir.path(), &recv);
    let log = dir.path().join("logs/audit.log");
    let args = [
        ["--audit-policy-file", policy.to_str().unwrap()],
        ["--audit-log-path", log.to_str().unwrap()],
        ["--audit-log-mode", "batch"],
        ["--audit-log-batch-max-wait", "60s"],
        ["--audit-webhook-config-file", kc.to_str().unwrap()],
        ["--audit-webhook-batch-max-wait", "60s"],
    ];
    let mut fd = Frontdoor::start_in(dir, &args.concat());
    let admin = fd.admin_client();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let r = admin.get(fd.url("/version")).send().unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["audit-id"].to_str().unwrap().to_string()
        })
        .collect();
    let posted = || items(&recv.lists.lock().unwrap());
    assert!(events(&log).is_empty(), "a batch waits for --audit-log-batch-max-wait");
    assert!(posted().is_empty(), "and for --audit-webhook-batch-max-wait");
    fd.terminate();
    wait_until("frontdoor exits", Duration::from_secs(15), || fd.child.try_wait().unwrap().is_some());
    for (backend, delivered) in [("log", events(&log)), ("webhook", posted())] {
        for id in &ids {
            let stages: Vec<&Value> =
                delivered.iter().filter(|e| e["auditID"] == id.as_str()).map(|e| &e["stage"]).collect();
            assert_eq!(stages, ["RequestReceived", "ResponseComplete"], "{backend}: {id} in {delivered:?}");
        }
    }
}

#[test]
fn blocking_strict_fails_a_request_whose_event_cannot_be_written() {
    let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n\
                  - {level: None, nonResourceURLs: [/readyz, /healthz, /livez, /metrics]}\n- {level: Metadata}\n";
    let start = |mode: &str| {
        let dir = tempfile::tempdir().unwrap();
        let policy = write_policy(dir.path(), policy);
        let args = ["--audit-policy-file", policy.to_str().unwrap(), "--audit-log-path", "/dev/full"];
        Frontdoor::start_in(dir, &[&args[..], &["--audit-log-mode", mode]].concat())
    };
    // /dev/full takes the open and fails every write (ENOSPC), as a full disk does
    let strict = start("blocking-strict");
    let errors = metric(&strict, "apiserver_audit_error_total{plugin=\"log\"}");
    let r = strict.admin_client().get(strict.url("/version")).send().unwrap();
    assert_eq!(r.status(), 500);
    // kube's responsewriters.InternalError text, in a Status as every error here
    let s: serde_json::Value = r.json().unwrap();
    assert_eq!((&s["kind"], &s["reason"]), (&serde_json::json!("Status"), &serde_json::json!("InternalError")), "{s}");
    assert_eq!(s["message"], r#"Internal Server Error: "/version": failed to store audit event"#);
    assert!(metric(&strict, "apiserver_audit_error_total{plugin=\"log\"}") > errors, "counted");

    let blocking = start("blocking");
    let r = blocking.admin_client().get(blocking.url("/version")).send().unwrap();
    assert_eq!(r.status(), 200, "plain blocking mode reports the failure but serves the request");
}

/// A TLS receiver for webhook batches: records every EventList; `stuck` never answers.
struct Receiver {
    port: u16,
    ca_pem: String,
    lists: Arc<Mutex<Vec<Value>>>,
}

/// The events of all EventLists received so far, in order.
fn items(lists: &[Value]) -> Vec<Value> {
    lists.iter().flat_map(|l| l["items"].as_array().cloned().unwrap_or_default()).collect()
}

fn start_receiver(stuck: bool) -> Receiver {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let ca_pem = ck.cert.pem();
    let cert = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.key_pair.serialize_der()).unwrap();
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lists = Arc::new(Mutex::new(Vec::new()));
    let l2 = lists.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let cfg = cfg.clone();
            let lists = l2.clone();
            std::thread::spawn(move || {
                let tls = rustls::ServerConnection::new(cfg).unwrap();
                let mut s = rustls::StreamOwned::new(tls, conn);
                if stuck {
                    let mut buf = [0u8; 4096];
                    while s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
                    return;
                }
                let mut r = BufReader::new(s);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    let mut first = true;
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if first {
                            assert!(line.starts_with("POST "), "{line}");
                            first = false;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    lists.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                    let s = r.get_mut();
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
                    s.flush().unwrap();
                }
            });
        }
    });
    Receiver { port, ca_pem, lists }
}

fn webhook_kubeconfig(dir: &Path, r: &Receiver) -> PathBuf {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(&r.ca_pem);
    let p = dir.join("audit-webhook.kubeconfig");
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sink\n  cluster:\n    server: https://127.0.0.1:{}/audit\n    certificate-authority-data: {ca}\nusers:\n- name: fd\n  user: {{}}\ncontexts:\n- name: default\n  context: {{cluster: sink, user: fd}}\ncurrent-context: default\n",
            r.port
        ),
    )
    .unwrap();
    p
}

#[test]
fn webhook_receives_event_list_batches() {
    let recv = start_receiver(false);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['/metrics']}, {level: Metadata}]\n");
    let kc = webhook_kubeconfig(dir.path(), &recv);
    let fd = Frontdoor::start_in(
        dir,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-webhook-config-file",
            kc.to_str().unwrap(),
            "--audit-webhook-batch-max-size",
            "10",
            "--audit-webhook-batch-max-wait",
            "200ms",
        ],
    );
    let admin = fd.admin_client();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let r = admin.get(fd.url("/version")).send().unwrap();
        ids.push(r.headers()["audit-id"].to_str().unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lists = recv.lists.lock().unwrap().clone();
        let items = items(&lists);
        if items.len() >= 20 {
            for l in &lists {
                assert_eq!(l["kind"], "EventList");
                assert_eq!(l["apiVersion"], "audit.k8s.io/v1");
                assert!(l["items"].as_array().unwrap().len() <= 10);
            }
            assert!(lists.len() < 20, "events are batched: {} lists", lists.len());
            for id in &ids {
                assert_eq!(items.iter().filter(|e| e["auditID"] == id.as_str()).count(), 2);
            }
            break;
        }
        assert!(Instant::now() < deadline, "got {} events in {} lists", items.len(), lists.len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stuck_webhook_does_not_stall_requests_in_batch_mode() {
    let recv = start_receiver(true);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['/metrics']}, {level: Metadata}]\n");
    let kc = webhook_kubeconfig(dir.path(), &recv);
    let fd = Frontdoor::start_in(
        dir,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-webhook-config-file",
            kc.to_str().unwrap(),
            "--audit-webhook-batch-buffer-size",
            "5",
            "--audit-webhook-batch-max-size",
            "1",
        ],
    );
    let admin = fd.admin_client();
    let before = metric(&fd, "apiserver_audit_error_total{plugin=\"buffered\"}");
    let t = Instant::now();
    for _ in 0..50 {
        let r = admin.get(fd.url("/version")).send().unwrap();
        assert_eq!(r.status(), 200);
    }
    // the receiver holds its first batch for the webhook's 30 s timeout; requests must not wait for it
    assert!(t.elapsed() < Duration::from_secs(20), "requests stalled: {:?}", t.elapsed());
    let dropped = metric(&fd, "apiserver_audit_error_total{plugin=\"buffered\"}") - before;
    assert!(dropped >= 50.0, "100 events, at most 1 in flight and 5 buffered: dropped {dropped}");
}

#[test]
fn a_watch_shows_response_started_and_impersonation_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n");
    let log = dir.path().join("audit.log");
    let fd = Frontdoor::start_in(
        dir,
        &["--audit-policy-file", policy.to_str().unwrap(), "--audit-log-path", log.to_str().unwrap()],
    );
    let admin = fd.admin_client();

    // a watch on the native store streams: ResponseStarted while it is open, then
    // ResponseComplete when it ends (timeoutSeconds)
    let r = admin
        .get(fd.url("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=2"))
        .header("Audit-ID", "watch-1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let evs = wait_events(&log, "watch-1", |e| e.iter().any(|e| e["stage"] == "ResponseStarted"));
    assert_eq!(evs[0]["stage"], "RequestReceived");
    assert_eq!(evs[0]["verb"], "watch");
    let started = evs.iter().find(|e| e["stage"] == "ResponseStarted").unwrap();
    assert_eq!(started["responseStatus"]["code"], 200);
    assert!(evs.iter().all(|e| e["stage"] != "ResponseComplete"), "still open: {evs:#?}");
    let _ = r.text(); // the watch ends after timeoutSeconds
    let evs = wait_events(&log, "watch-1", |e| e.iter().any(|e| e["stage"] == "ResponseComplete"));
    let stages: Vec<&str> = evs.iter().filter_map(|e| e["stage"].as_str()).collect();
    assert_eq!(stages, ["RequestReceived", "ResponseStarted", "ResponseComplete"]);

    // impersonation: `user` is who authenticated, `impersonatedUser` who the request acts as
    let r = admin
        .get(fd.url("/api/v1/namespaces"))
        .header("Audit-ID", "as-bob")
        .header("Impersonate-User", "bob")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "bob may not list namespaces");
    let evs = wait_events(&log, "as-bob", |e| e.iter().any(|e| e["stage"] == "ResponseComplete"));
    let done = evs.iter().find(|e| e["stage"] == "ResponseComplete").unwrap();
    assert_eq!(done["user"]["username"], "admin");
    assert_eq!(done["impersonatedUser"]["username"], "bob");
    assert_eq!(done["annotations"]["authorization.k8s.io/decision"], "forbid");
    assert_eq!(done["responseStatus"]["code"], 403);
}
