//! One reading of every request: repeated and conflicting query parameters are authorized,
//! audited and served on the same (first) value, as kube-apiserver reads them with Go's
//! `url.Values.Get`. Each row asserts what authorization saw (the audit event's verb and
//! objectRef), and what the store did (the response, and what is stored afterwards).

use crate::common::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::path::PathBuf;

const NS: &str = "/api/v1/namespaces/default";

/// alice may get, list and watch the secret `allowed` only (resourceNames), and nothing else.
const RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: one-secret, namespace: default}
rules:
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [allowed]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: one-secret, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: one-secret}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
"#;

struct Env {
    fd: Frontdoor,
    log: PathBuf,
    admin: Client,
    alice: Client,
}

fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(policies.join("rbac")).unwrap();
    std::fs::write(policies.join("rbac/alice.yaml"), RBAC).unwrap();
    std::fs::write(policies.join("tokens.csv"), "alice-token,alice,u-alice\n").unwrap();
    std::fs::write(
        policies.join("audit-policy.yaml"),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .unwrap();
    let log = dir.path().join("audit.log");
    let fd = Frontdoor::start_in(dir, &["--audit-log-path", log.to_str().unwrap()]);
    let admin = fd.admin_client();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("Authorization", "Bearer alice-token".parse().unwrap());
    let alice = client_builder(&fd.certs()).default_headers(headers).build().unwrap();
    for (name, labels) in [("allowed", json!({"a": "1"})), ("other", json!({"a": "2"}))] {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels}, "stringData": {"k": "v"}});
        let r = admin.post(fd.url(&format!("{NS}/secrets"))).json(&s).send().unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    }
    Env { fd, log, admin, alice }
}

/// Sends a request; returns (status, body text, the audited verb, the audited objectRef name).
fn send(
    env: &Env,
    client: &Client,
    method: &str,
    path_and_query: &str,
    body: Option<Value>,
) -> (u16, String, String, String) {
    let mut req = client.request(method.parse().unwrap(), env.fd.url(path_and_query));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().unwrap();
    let code = r.status().as_u16();
    let id = r.headers()["Audit-Id"].to_str().unwrap().to_string();
    let text = r.text().unwrap();
    let ev = audited(&env.log, &id);
    let name = ev["objectRef"]["name"].as_str().unwrap_or("").to_string();
    (code, text, ev["verb"].as_str().unwrap_or("").to_string(), name)
}

fn names(list: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(list).unwrap_or_else(|e| panic!("not a list ({e}): {list}"));
    v["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

fn stored(env: &Env, resource: &str, name: &str) -> Option<Value> {
    let r = env.admin.get(env.fd.url(&format!("{NS}/{resource}/{name}"))).send().unwrap();
    (r.status() == 200).then(|| r.json().unwrap())
}

#[test]
fn repeated_query_parameters_are_authorized_and_served_on_one_value() {
    let env = start();
    let secrets = format!("{NS}/secrets");

    // fieldSelector: the first value names the object authorization checked, and the store
    // serves that object only; an empty first value is a list of everything, and refused
    let (code, body, verb, name) =
        send(&env, &env.alice, "GET", &format!("{secrets}?fieldSelector=metadata.name%3Dallowed&fieldSelector="), None);
    assert_eq!((code, verb.as_str(), name.as_str()), (200, "list", "allowed"), "{body}");
    assert_eq!(names(&body), vec!["allowed"], "served what was authorized");
    let (code, _, verb, name) =
        send(&env, &env.alice, "GET", &format!("{secrets}?fieldSelector=&fieldSelector=metadata.name%3Dallowed"), None);
    assert_eq!((code, verb.as_str(), name.as_str()), (403, "list", ""));

    // the authorized name bounds what is served whatever else the selector says
    let (code, body, verb, name) = send(
        &env,
        &env.alice,
        "GET",
        &format!("{secrets}?fieldSelector=metadata.name%3Dallowed&labelSelector=a%3D2&labelSelector="),
        None,
    );
    assert_eq!((code, verb.as_str(), name.as_str()), (200, "list", "allowed"));
    assert!(names(&body).is_empty(), "labelSelector's first value (a=2) applies: {body}");

    // the legacy watch path with a name watches that object only
    let (code, body, verb, name) =
        send(&env, &env.alice, "GET", "/api/v1/watch/namespaces/default/secrets/allowed?timeoutSeconds=1", None);
    assert_eq!((code, verb.as_str(), name.as_str()), (200, "watch", "allowed"));
    assert!(body.contains("\"allowed\"") && !body.contains("\"other\""), "{body}");
    // ... and so does a watch by field selector, with the first value
    let (code, body, verb, name) = send(
        &env,
        &env.alice,
        "GET",
        &format!("{secrets}?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dallowed&fieldSelector=metadata.name%3Dother"),
        None,
    );
    assert_eq!((code, verb.as_str(), name.as_str()), (200, "watch", "allowed"));
    assert!(body.contains("\"allowed\"") && !body.contains("\"other\""), "{body}");

    // watch: the first value decides list or watch, for authorization, audit and the store
    let (code, body, verb, _) = send(&env, &env.admin, "GET", &format!("{secrets}?watch=0&watch=1"), None);
    assert_eq!((code, verb.as_str()), (200, "list"));
    assert_eq!(names(&body), vec!["allowed", "other"], "served as a list");
    let (code, body, verb, _) =
        send(&env, &env.admin, "GET", &format!("{secrets}?watch=1&watch=0&timeoutSeconds=1"), None);
    assert_eq!((code, verb.as_str()), (200, "watch"));
    let first: Value = serde_json::from_str(body.lines().next().unwrap_or("")).unwrap();
    assert_eq!(first["type"], "ADDED", "served as a watch: {body}");
    let (code, _, verb, _) = send(&env, &env.alice, "GET", &format!("{secrets}?watch=0&watch=1"), None);
    assert_eq!((code, verb.as_str()), (403, "list"));

    // limit and continue: the first values
    let (code, body, verb, _) = send(&env, &env.admin, "GET", &format!("{secrets}?limit=1&limit=100"), None);
    assert_eq!((code, verb.as_str()), (200, "list"));
    assert_eq!(names(&body), vec!["allowed"]);
    let token = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["continue"].as_str().unwrap().to_string();
    let (code, body, _, _) =
        send(&env, &env.admin, "GET", &format!("{secrets}?limit=1&continue={token}&continue="), None);
    assert_eq!(code, 200);
    assert_eq!(names(&body), vec!["other"], "the first continue token");
    let (code, _, _, _) = send(&env, &env.admin, "GET", &format!("{secrets}?limit=x&limit=1"), None);
    assert_eq!(code, 400, "a first limit that does not parse");

    // resourceVersion: the first value (far in the future: too large)
    let (code, body, _, _) =
        send(&env, &env.admin, "GET", &format!("{secrets}?resourceVersion=999999999&resourceVersion=0"), None);
    assert_eq!(code, 504, "{body}");
    let (code, _, _, _) =
        send(&env, &env.admin, "GET", &format!("{secrets}?resourceVersion=0&resourceVersion=999999999"), None);
    assert_eq!(code, 200);

    // timeout: the first value is the one parsed (a bad one is refused before authentication)
    let timeout = |q: &str| env.admin.get(env.fd.url(&format!("{secrets}/allowed?{q}"))).send().unwrap().status();
    assert_eq!(timeout("timeout=garbage&timeout=5s"), 400);
    assert_eq!(timeout("timeout=5s&timeout=garbage"), 200);

    // dryRun is a list: every value must be All, and a dry run writes nothing
    let cm =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    let cms = format!("{NS}/configmaps");
    let (code, _, verb, _) = send(&env, &env.admin, "POST", &format!("{cms}?dryRun=All&dryRun="), Some(cm("d1")));
    assert_eq!((code, verb.as_str()), (422, "create"));
    assert!(stored(&env, "configmaps", "d1").is_none());
    let (code, _, _, _) = send(&env, &env.admin, "POST", &format!("{cms}?dryRun=&dryRun=All"), Some(cm("d2")));
    assert_eq!(code, 422);
    assert!(stored(&env, "configmaps", "d2").is_none());
    let (code, _, _, _) = send(&env, &env.admin, "POST", &format!("{cms}?dryRun=All&dryRun=All"), Some(cm("d3")));
    assert_eq!(code, 201);
    assert!(stored(&env, "configmaps", "d3").is_none(), "a dry run is not stored");

    // fieldManager: the first value owns the fields
    let (code, _, _, _) =
        send(&env, &env.admin, "POST", &format!("{cms}?fieldManager=first&fieldManager=second"), Some(cm("fm")));
    assert_eq!(code, 201);
    let obj = stored(&env, "configmaps", "fm").unwrap();
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "first", "{obj}");

    // propagationPolicy: the first value is validated and used
    let (code, body, verb, name) = send(
        &env,
        &env.admin,
        "DELETE",
        &format!("{cms}/fm?propagationPolicy=Bogus&propagationPolicy=Background"),
        None,
    );
    assert_eq!((code, verb.as_str(), name.as_str()), (422, "delete", "fm"), "{body}");
    assert!(stored(&env, "configmaps", "fm").is_some(), "a refused delete deletes nothing");
    let (code, _, verb, _) = send(
        &env,
        &env.admin,
        "DELETE",
        &format!("{cms}/fm?propagationPolicy=Background&propagationPolicy=Bogus"),
        None,
    );
    assert_eq!((code, verb.as_str()), (200, "delete"));
    assert!(stored(&env, "configmaps", "fm").is_none());

    // alice's reach is what it was: the one secret, by name
    assert_eq!(send(&env, &env.alice, "GET", &format!("{secrets}/allowed"), None).0, 200);
    assert_eq!(send(&env, &env.alice, "GET", &format!("{secrets}/other"), None).0, 403);
    assert_eq!(send(&env, &env.alice, "GET", &secrets, None).0, 403);
}
