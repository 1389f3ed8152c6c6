//! The chain's one reading of a request, checked differentially on random requests: what the
//! authorizer saw (a recording authorization webhook's SubjectAccessReviews), what audit
//! recorded (the ResponseComplete event), what the store did (the objects and Status it
//! answered with) or the aggregated backend received (the proxied request line), and what
//! kube's rules say the request is (computed here, apart from frontdoor's RequestInfo) must
//! all agree on verb, API group, resource, subresource, namespace and name.
//!
//! The requests are drawn from a seeded generator (DIFF_SEED, default fixed; DIFF_CASES,
//! default 120): percent-encoded names and namespaces, the legacy /watch/ prefix, repeated
//! and conflicting watch and fieldSelector parameters, dry runs, every verb.

use crate::aggregation::setup;
use crate::authz::issue_user;
use crate::backend::GROUP;
use crate::common::audited;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// An authorization webhook over plain HTTP that allows everything and keeps every
/// SubjectAccessReview it was sent.
struct SarRecorder {
    port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl SarRecorder {
    fn start() -> SarRecorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().map_while(Result::ok) {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    len = v.trim().parse().unwrap_or(0);
                                }
                            }
                        }
                        let mut body = vec![0; len];
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                        let sar: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        s.lock().unwrap().push(sar);
                        let answer = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "status": {"allowed": true}}).to_string();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            answer.len()
                        );
                        if w.write_all(head.as_bytes()).and_then(|_| w.write_all(answer.as_bytes())).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SarRecorder { port, seen }
    }

    fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// xorshift64*: deterministic, so a failing case is replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What a request is, by kube's rules, in decoded form: (verb, group, resource, subresource,
/// namespace, name).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    namespace: String,
    name: String,
}

struct Case {
    method: &'static str,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    want: Expected,
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A random request and what it is.
fn draw(rng: &mut Rng) -> Case {
    // raw (as sent) forms; percent-encoded ones decode to ordinary names
    let namespaces = ["default", "kube-public", "defa%75lt", "%64efault"];
    let names = ["a", "b-1", "c.d", "%61bc", "x%2Dy", "e%2e1", "zz"];
    let (group, version, resource, subresources): (&str, &str, &str, &[&str]) = *rng.pick(&[
        ("", "v1", "configmaps", &[][..]),
        ("", "v1", "secrets", &[][..]),
        (GROUP, "v1alpha1", "flunders", &["status"][..]),
    ]);
    let ns = *rng.pick(&namespaces);
    let named = rng.chance(55);
    let name = if named { *rng.pick(&names) } else { "" };
    let sub = if named && !subresources.is_empty() && rng.chance(30) { *rng.pick(subresources) } else { "" };
    let watch_prefix = !named && rng.chance(15) || named && sub.is_empty() && rng.chance(10);
    let method = if watch_prefix {
        "GET"
    } else if named {
        *rng.pick(&["GET", "GET", "PUT", "PATCH", "DELETE"])
    } else {
        *rng.pick(&["GET", "GET", "GET", "POST", "DELETE"])
    };
    let prefix = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let mut path = prefix;
    if watch_prefix {
        path.push_str("/watch");
    }
    path.push_str(&format!("/namespaces/{ns}/{resource}"));
    if named {
        path.push_str(&format!("/{name}"));
    }
    if !sub.is_empty() {
        path.push_str(&format!("/{sub}"));
    }

    let mut query = Vec::new();
    let mut watch_param: Option<bool> = None;
    let mut selected: Option<String> = None;
    let is_collection_get = method == "GET" && !named;
    if is_collection_get && rng.chance(40) {
        // repeated: the first value decides
        for _ in 0..1 + rng.next() % 2 {
            let v = *rng.pick(&["1", "0", "false", "true"]);
            if resource == "flunders" && v == "true" {
                continue; // the test backend holds `watch=true` streams open
            }
            watch_param.get_or_insert(!matches!(v, "0" | "false"));
            query.push(("watch".to_string(), v.to_string()));
        }
    }
    if method == "GET" && !named && rng.chance(40) {
        for _ in 0..1 + rng.next() % 2 {
            let n = *rng.pick(&names);
            let n = decode(n);
            selected.get_or_insert(n.clone());
            query.push(("fieldSelector".to_string(), format!("metadata.name={n}")));
        }
    }
    if method == "GET" && rng.chance(30) {
        query.push(("labelSelector".to_string(), "a=b".to_string()));
    }
    let watching = watch_prefix || watch_param == Some(true);
    if watching {
        query.push(("timeoutSeconds".to_string(), "1".to_string()));
    }
    if matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") && rng.chance(30) {
        query.push(("dryRun".to_string(), "All".to_string()));
    }

    let verb = match (method, named) {
        ("GET", _) if watching => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        _ => "deletecollection",
    };
    // kube's RequestInfo takes the name of a list or watch from a metadata.name field selector,
    // but only where it turned a get into one (not under the /watch/ prefix, whose verb is set
    // by the path)
    let want_name = if named {
        decode(name)
    } else if matches!(verb, "list" | "watch") && !watch_prefix {
        selected.unwrap_or_default()
    } else {
        String::new()
    };
    let body_name = if method == "POST" { *rng.pick(&names) } else { name };
    let body_name = decode(body_name);
    let kind = match resource {
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        _ => "Flunder",
    };
    let body = match method {
        "POST" | "PUT" => Some(
            json!({"apiVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
            "kind": kind, "metadata": {"name": body_name}, "data": {"k": "dmFsdWU="}}),
        ),
        "PATCH" => Some(json!({"metadata": {"labels": {"a": "b"}}})),
        _ => None,
    };
    Case {
        method,
        path,
        query,
        body,
        want: Expected {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: decode(ns),
            name: want_name,
        },
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

/// What the store's answer says it acted on: every object it returned (one, a list's items or
/// a watch's events) and a Status's details, checked against the request's namespace and name.
fn check_store_answer(case: &Case, code: u16, text: &str, what: &str) -> usize {
    let want = &case.want;
    let mut objects = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            // a pretty-printed body: parse whole
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                objects.push(v);
            }
            break;
        };
        objects.push(v);
    }
    let mut acted_on = Vec::new();
    for v in objects {
        if v["kind"] == "Status" {
            let d = &v["details"];
            if d.is_object() && code == 404 {
                // NotFound names what was looked up: the request's name, or its namespace
                let (kind, name) = (str_at(d, &["kind"]), str_at(d, &["name"]));
                let ok =
                    (kind == want.resource && name == want.name) || (kind == "namespaces" && name == want.namespace);
                assert!(ok, "{what}: the store looked up {kind}/{name}: {v}");
            }
            continue;
        }
        if let Some(items) = v["items"].as_array() {
            acted_on.extend(items.iter().cloned());
        } else if v["type"].is_string() && v["object"].is_object() {
            if v["object"]["kind"] != "Status" {
                acted_on.push(v["object"].clone());
            }
        } else if v["metadata"].is_object() {
            acted_on.push(v);
        }
    }
    let n = acted_on.len();
    for o in acted_on {
        let (ns, name) = (str_at(&o, &["metadata", "namespace"]), str_at(&o, &["metadata", "name"]));
        assert_eq!(ns, want.namespace, "{what}: the store answered with an object of another namespace: {o}");
        if !want.name.is_empty() {
            assert_eq!(name, want.name, "{what}: the store answered with another object: {o}");
        } else if want.verb == "create" {
            assert_eq!(name, str_at(case.body.as_ref().unwrap(), &["metadata", "name"]), "{what}");
        }
    }
    n
}

/// What the aggregated backend received, read by kube's path rules apart from frontdoor's.
fn check_backend_received(case: &Case, target: &str, what: &str) {
    let want = &case.want;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segs: Vec<String> = path.trim_matches('/').split('/').map(decode).collect();
    // apis/GROUP/VERSION[/watch]/namespaces/NS/RESOURCE[/NAME[/SUB]]
    assert_eq!((segs[0].as_str(), segs[1].as_str()), ("apis", want.group.as_str()), "{what}: {target}");
    let rest = if segs[3] == "watch" { &segs[4..] } else { &segs[3..] };
    assert_eq!(rest[0], "namespaces", "{what}: {target}");
    assert_eq!(rest[1], want.namespace, "{what}: backend got another namespace: {target}");
    assert_eq!(rest[2], want.resource, "{what}: backend got another resource: {target}");
    let (name, sub) = (rest.get(3).cloned().unwrap_or_default(), rest.get(4).cloned().unwrap_or_default());
    assert_eq!(sub, want.subresource, "{what}: {target}");
    if matches!(want.verb.as_str(), "list" | "watch") && name.is_empty() && !want.name.is_empty() {
        // the name came from the field selector: its first value travels unchanged
        let first = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "fieldSelector").map(|(_, v)| v);
        let selected = first.as_deref().and_then(|v| v.strip_prefix("metadata.name=")).unwrap_or("");
        assert_eq!(selected, want.name, "{what}: {target}");
    } else {
        assert_eq!(name, want.name, "{what}: backend got another name: {target}");
    }
}

#[test]
fn authorizer_audit_and_handler_agree_on_random_requests() {
    let cases: usize = std::env::var("DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let seed: u64 = std::env::var("DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_f00d);
    let sar = SarRecorder::start();
    let tmp = tempfile::tempdir().unwrap();
    let kc = tmp.path().join("webhook.kubeconfig");
    std::fs::write(&kc, format!("clusters:\n- name: w\n  cluster: {{server: \"http://127.0.0.1:{}/\"}}\n", sar.port))
        .unwrap();
    let policy = tmp.path().join("audit.yaml");
    std::fs::write(&policy, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n").unwrap();
    let log = tmp.path().join("audit.log");
    let s = setup(&[
        "--authorization-mode",
        "Webhook,RBAC",
        "--authorization-webhook-config-file",
        kc.to_str().unwrap(),
        "--authorization-webhook-cache-authorized-ttl",
        "0s",
        "--audit-policy-file",
        policy.to_str().unwrap(),
        "--audit-log-path",
        log.to_str().unwrap(),
    ]);
    issue_user(&s.fd, "alice", "alice", &["dev"]);
    let alice = s.fd.client_with_cert("alice");
    // a few objects for the reads to find
    for ns in ["default", "kube-public"] {
        for n in ["a", "abc", "x-y"] {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}});
            alice.post(s.fd.url(&format!("/api/v1/namespaces/{ns}/configmaps"))).json(&cm).send().unwrap();
        }
    }

    let mut rng = Rng(seed | 1);
    let mut by_verb = std::collections::BTreeMap::<String, usize>::new();
    let (mut store_checked, mut backend_checked, mut objects_checked) = (0, 0, 0);
    for i in 0..cases {
        let case = draw(&mut rng);
        let q: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&case.query).finish();
        let target = if q.is_empty() { case.path.clone() } else { format!("{}?{q}", case.path) };
        let what = format!("case {i} (DIFF_SEED={seed}): {} {target}", case.method);
        sar.take();
        let before = s.be.seen().len();
        let mut req = alice.request(case.method.parse().unwrap(), s.fd.url(&target));
        if let Some(b) = &case.body {
            let ct = if case.method == "PATCH" { "application/merge-patch+json" } else { "application/json" };
            req = req.header("Content-Type", ct).body(b.to_string());
        }
        let r = req.send().unwrap_or_else(|e| panic!("{what}: {e}"));
        let code = r.status().as_u16();
        let id = r.headers()["Audit-Id"].to_str().unwrap().to_string();
        let text = r.text().unwrap_or_default();
        assert!(code < 500 || case.want.resource == "flunders", "{what}: {code} {text}");

        // the authorizer: one review, for what kube's rules say the request is
        let reviews = sar.take();
        let mine: Vec<&Value> = reviews.iter().filter(|r| r["spec"]["user"] == "alice").collect();
        assert_eq!(mine.len(), 1, "{what}: reviews {reviews:?}");
        let ra = &mine[0]["spec"]["resourceAttributes"];
        let saw = Expected {
            verb: str_at(ra, &["verb"]).into(),
            group: str_at(ra, &["group"]).into(),
            resource: str_at(ra, &["resource"]).into(),
            subresource: str_at(ra, &["subresource"]).into(),
            namespace: str_at(ra, &["namespace"]).into(),
            name: str_at(ra, &["name"]).into(),
        };
        assert_eq!(saw, case.want, "{what}: the authorizer saw another request");

        // audit: the same
        let ev = audited(&log, &id);
        let o = &ev["objectRef"];
        let audited = Expected {
            verb: str_at(&ev, &["verb"]).into(),
            group: str_at(o, &["apiGroup"]).into(),
            resource: str_at(o, &["resource"]).into(),
            subresource: str_at(o, &["subresource"]).into(),
            namespace: str_at(o, &["namespace"]).into(),
            name: str_at(o, &["name"]).into(),
        };
        assert_eq!(audited, case.want, "{what}: audit recorded another request");
        assert_eq!(ev["responseStatus"]["code"], code, "{what}");

        // the handler
        if case.want.resource == "flunders" {
            let seen = s.be.seen();
            let got: Vec<_> = seen[before..].iter().filter(|x| x.target.contains("/flunders")).collect();
            assert_eq!(got.len(), 1, "{what}: backend saw {got:?}");
            assert_eq!(got[0].method, case.method, "{what}");
            check_backend_received(&case, &got[0].target, &what);
            backend_checked += 1;
        } else {
            objects_checked += check_store_answer(&case, code, &text, &what);
            store_checked += 1;
        }
        *by_verb.entry(case.want.verb.clone()).or_default() += 1;
    }
    println!(
        "differential: {cases} random requests (seed {seed}) agreed: authorizer = audit = kube's rules; {store_checked} checked against the store's answer ({objects_checked} objects returned), {backend_checked} against the backend's request; verbs {by_verb:?}"
    );
}
