//! The attack table: requests built to confuse a front door, each against the real binary, with
//! the status kube-apiserver gives it and the check that nothing unauthorized reached the store or
//! a backend.
//!
//! One frontdoor, one recording backend (registered as the APIService for
//! wardle.example.com/v1alpha1), a handful of users with narrow RBAC rights. Every row is sent on a
//! fresh TLS connection with its exact bytes (hand-written HTTP/1.1, or hand-built HTTP/2 frames),
//! then the store (listed by an admin) and the backend's record are compared with their state
//! before the row: a row may change only what it names, and reach the backend only if it says so.
//! Every failing row is reported at the end, with what was expected and what came back.
//!
//! Expectations are kube-apiserver's (Go net/http + the generic apiserver handler chain): the
//! query is `url.Values`, read with `Get` (the first of repeated values) by RequestInfo and by the
//! handlers alike; the path is the decoded `URL.Path`, split on `/` without cleaning; headers are
//! read with `Header.Get` (the first value). Where Go and an equally safe answer differ only in
//! the status code (e.g. Go's 501 for an unsupported Transfer-Encoding where a proxy says 400),
//! the row accepts both and says so.

use crate::backend::{self, Seen, TestBackend, GROUP};
use crate::common::Frontdoor;
use crate::raw::{self, H2};
use base64::Engine;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NS: &str = "/api/v1/namespaces/default";
const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
const FLUNDERS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders";
const SSR: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
const SSR_BODY: &str = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
/// The data of the secret `other`: in no response to anyone but the admin.
const OTHER_DATA: &str = "T1RIRVItU0VDUkVU";
const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

const TOKENS: &str = "tok-admin,admin-user,u-admin,\"system:masters\"
tok-alice,alice,u-alice,\"users\"
tok-bob,bob,u-bob,\"users\"
tok-carol,carol,u-carol,\"users\"
tok-dave,dave,u-dave,\"users\"
tok-eve,eve,u-eve,\"users\"
tok-mallory,mallory,u-mallory,\"users\"
tok-olive,olive,u-olive,\"users\"
tok-pat,pat,u-pat,\"users\"
tok-sam,sam,u-sam,\"users\"
tok-uma,uma,u-uma,\"users\"
tok-ctl,ctl\u{1}user,u-ctl,\"flunder-readers\"
tok-tab,\"\tdave\",u-tab,\"\tsystem:masters,flunder-readers\"
";

/// alice: get/list/watch the one secret `allowed`, get configmaps. bob: create roles and
/// rolebindings (and nothing they would grant). carol: get/list/create configmaps, no watch.
/// dave: get/list/create flunders on the backend. eve: impersonate the user `bot` only.
/// olive: everything in namespace default (a namespace owner). pat: list serviceaccounts/token.
/// sam: every verb on subresources only (namespaces/status, serviceaccounts/token), none on
/// the objects (a controller's status rights). uma: update and patch, never create: secrets
/// and roles in default, namespaces and APIServices.
const POLICY: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: alice-one-secret, namespace: default}
rules:
- {apiGroups: [''], resources: [secrets], resourceNames: [allowed], verbs: [get, list, watch]}
- {apiGroups: [''], resources: [configmaps], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-one-secret, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: alice-one-secret}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: carol-configmaps, namespace: default}
rules:
- {apiGroups: [''], resources: [configmaps], verbs: [get, list, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: carol-configmaps, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: carol-configmaps}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: bob-rbac, namespace: default}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [roles, rolebindings], verbs: [create, get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-rbac, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: bob-rbac}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: dave-flunders}
rules:
- {apiGroups: [wardle.example.com], resources: [flunders], verbs: [get, list, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dave-flunders}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dave-flunders}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: dave}, {apiGroup: rbac.authorization.k8s.io, kind: Group, name: flunder-readers}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: eve-impersonates-bot}
rules:
- {apiGroups: [''], resources: [users], resourceNames: [bot], verbs: [impersonate]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: eve-impersonates-bot}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: eve-impersonates-bot}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: eve}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: olive-owner, namespace: default}
rules:
- {apiGroups: ['*'], resources: ['*'], verbs: ['*']}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: olive-owner, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: olive-owner}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: olive}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pat-token-list, namespace: default}
rules:
- {apiGroups: [''], resources: [serviceaccounts/token], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pat-token-list, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pat-token-list}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: pat}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: sam-subresources}
rules:
- {apiGroups: [''], resources: [namespaces/status, serviceaccounts/token], verbs: ['*']}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: sam-subresources}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sam-subresources}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: sam}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: uma-changes}
rules:
- {apiGroups: [''], resources: [secrets, namespaces], verbs: [get, update, patch]}
- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [get, update, patch]}
- {apiGroups: [apiregistration.k8s.io], resources: [apiservices], verbs: [get, update, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: uma-changes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: uma-changes}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: uma}]
";

/// What a row's request is.
enum Req {
    /// Raw HTTP/1.1 bytes on a TLS connection without a client certificate.
    H1(Vec<u8>),
    /// Raw HTTP/1.1 bytes on a TLS connection presenting one of the generated client certs.
    H1Cert(&'static str, Vec<u8>),
    /// One HTTP/2 stream: its header block exactly, then an optional DATA frame.
    H2(Vec<(String, String)>, Option<Vec<u8>>),
}

/// What a row expects back.
enum Want {
    /// The first response's status is one of these.
    Status(&'static [u16]),
    /// No response: the handshake fails, or the stream or connection is reset.
    Refused,
}

type BackendCheck = fn(&[Seen]) -> Result<(), String>;

struct Row {
    what: String,
    req: Req,
    want: Want,
    body_has: Vec<String>,
    body_lacks: Vec<String>,
    /// Store keys (`configmaps/name`) the row must change; nothing else may change.
    writes: Vec<&'static str>,
    /// `None`: the backend must see nothing. `Some`: it must see something, and this says whether
    /// what it saw is right.
    backend: Option<BackendCheck>,
}

impl Row {
    fn new(what: impl Into<String>, req: Req, want: Want) -> Row {
        Row { what: what.into(), req, want, body_has: vec![], body_lacks: vec![], writes: vec![], backend: None }
    }
    fn has(mut self, s: &str) -> Row {
        self.body_has.push(s.to_string());
        self
    }
    fn lacks(mut self, s: &str) -> Row {
        self.body_lacks.push(s.to_string());
        self
    }
    fn writes(mut self, key: &'static str) -> Row {
        self.writes.push(key);
        self
    }
    fn backend(mut self, check: BackendCheck) -> Row {
        self.backend = Some(check);
        self
    }
}

fn status(codes: &'static [u16]) -> Want {
    Want::Status(codes)
}

/// An HTTP/1.1 request with `Host`, the bearer token (if any), `headers` in order, a JSON body
/// with its Content-Length, and `Connection: close` unless `headers` name a Connection.
fn http(method: &str, target: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<&str>) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(t) = token {
        s.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("connection")) {
        s.push_str("Connection: close\r\n");
    }
    if let Some(b) = body {
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            s.push_str("Content-Type: application/json\r\n");
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
    } else {
        s.push_str("\r\n");
    }
    s.into_bytes()
}

fn get(target: &str, token: &str) -> Req {
    Req::H1(http("GET", target, Some(token), &[], None))
}

fn get_h(target: &str, token: &str, headers: &[(&str, &str)]) -> Req {
    Req::H1(http("GET", target, Some(token), headers, None))
}

fn post(target: &str, token: &str, body: &str) -> Req {
    Req::H1(http("POST", target, Some(token), &[], Some(body)))
}

fn post_h(target: &str, token: &str, headers: &[(&str, &str)], body: &str) -> Req {
    Req::H1(http("POST", target, Some(token), headers, Some(body)))
}

fn delete(target: &str, token: &str, body: &str) -> Req {
    Req::H1(http("DELETE", target, Some(token), &[], Some(body)))
}

fn h2(method: &str, path: &str, token: &str, extra: &[(&str, &str)]) -> Req {
    let mut h: Vec<(String, String)> = vec![
        (":method".into(), method.into()),
        (":scheme".into(), "https".into()),
        (":authority".into(), "127.0.0.1".into()),
        (":path".into(), path.into()),
        ("authorization".into(), format!("Bearer {token}")),
    ];
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Req::H2(h, None)
}

fn cm(name: &str) -> String {
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"k":"v"}}}}"#)
}

/// A request hidden after another's body. Anonymous: if it is ever run, it is as a request of
/// its own (refused), never as part of the request before it, whose identity it must not borrow.
fn smuggle_cm() -> String {
    format!("POST {NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", cm("smuggled").len(), cm("smuggled"))
}

/// The identity headers a backend must see for dave, and nothing else identity-like: no header
/// whose name, with `_` read as `-` (as WSGI and CGI servers read them), starts with `x-remote-`
/// or `impersonate-` apart from frontdoor's own, and no credentials.
fn dave_only(seen: &[Seen]) -> Result<(), String> {
    for s in seen {
        if s.client_cn != "front-proxy-client" {
            return Err(format!("backend called without the proxy cert: {:?}", s.client_cn));
        }
        if s.all("x-remote-user") != vec!["dave"] {
            return Err(format!(
                "x-remote-user {:?} in {} {} {:?}",
                s.all("x-remote-user"),
                s.method,
                s.target,
                s.headers
            ));
        }
        if s.all("x-remote-group") != vec!["users", "system:authenticated"] {
            return Err(format!("x-remote-group {:?}", s.all("x-remote-group")));
        }
        for (k, v) in &s.headers {
            let norm = k.replace('_', "-");
            let ours = k == "x-remote-user" || k == "x-remote-group" || (k == "x-remote-uid" && v == "u-dave");
            if (norm.starts_with("x-remote-") || norm.starts_with("impersonate-") || norm == "authorization") && !ours {
                return Err(format!("identity header reached the backend: {k}: {v} (all: {:?})", s.headers));
            }
        }
        if s.target.contains("smuggled") || s.target.contains("secrets") {
            return Err(format!("backend saw {} {}", s.method, s.target));
        }
    }
    Ok(())
}

/// `dave_only`, and every target the backend got is the origin-form path the chain read.
fn dave_origin_form(seen: &[Seen]) -> Result<(), String> {
    dave_only(seen)?;
    match seen.iter().find(|s| !s.target.starts_with(FLUNDERS)) {
        Some(s) => Err(format!("backend got the target {:?}, not the path authorized", s.target)),
        None => Ok(()),
    }
}

/// `dave_only`, and no target the backend got holds a query pair the chain did not read
/// (Go drops a pair holding `;`; a `;`-splitting reader would read `watch=true` in it).
fn dave_query_as_read(seen: &[Seen]) -> Result<(), String> {
    dave_only(seen)?;
    match seen.iter().find(|s| s.target.contains(';')) {
        Some(s) => Err(format!("backend got the target {:?}, with a pair the chain dropped", s.target)),
        None => Ok(()),
    }
}

/// `dave_only`, and the backend got none of the client's hop-by-hop headers (Go's reverse
/// proxy drops them and any its `Connection` names).
fn dave_no_hop_by_hop(seen: &[Seen]) -> Result<(), String> {
    dave_only(seen)?;
    for s in seen {
        let hop = ["connection", "keep-alive", "proxy-connection", "trailer", "upgrade", "x-nominated"];
        if let Some((k, v)) = s.headers.iter().find(|(k, _)| hop.contains(&k.as_str())) {
            return Err(format!("backend got the hop-by-hop {k}: {v} (all: {:?})", s.headers));
        }
    }
    Ok(())
}

fn rows() -> Vec<Row> {
    let mut r = Vec::new();
    let ok: &'static [u16] = &[200];
    let forbidden: &'static [u16] = &[403];
    let other_secret = OTHER_DATA;

    // ---- controls: the rights the attacks try to stretch
    r.push(
        Row::new(
            "control: alice gets the one secret she may",
            get(&format!("{NS}/secrets/allowed"), "tok-alice"),
            status(ok),
        )
        .has(r#""name":"allowed""#),
    );
    r.push(
        Row::new(
            "control: alice may not get another secret",
            get(&format!("{NS}/secrets/other"), "tok-alice"),
            status(forbidden),
        )
        .lacks(OTHER_DATA),
    );
    r.push(Row::new("control: dave reaches the backend", get(FLUNDERS, "tok-dave"), status(ok)).backend(dave_only));
    r.push(
        Row::new(
            "a client's hop-by-hop headers (and an Upgrade no Connection names) end at frontdoor",
            get_h(
                FLUNDERS,
                "tok-dave",
                &[
                    ("Connection", "keep-alive, X-Nominated"),
                    ("X-Nominated", "1"),
                    ("Keep-Alive", "timeout=5"),
                    ("Proxy-Connection", "keep-alive"),
                    ("Trailer", "X-Bar"),
                    ("Upgrade", "h2c"),
                ],
            ),
            status(ok),
        )
        .backend(dave_no_hop_by_hop),
    );
    r.push(
        Row::new(
            "a query pair holding ';' (read by Go as nothing) never reaches the backend",
            get(&format!("{FLUNDERS}?watch=true;x=1&limit=5"), "tok-dave"),
            status(ok),
        )
        .backend(dave_query_as_read),
    );
    r.push(
        Row::new(
            "a user whose name no header can carry (a control character): 503, not a nameless request to the backend",
            get(FLUNDERS, "tok-ctl"),
            status(&[503]),
        )
        .has("invalid header field value for \\\"X-Remote-User\\\""),
    );
    r.push(
        Row::new(
            "a user named \"\\tdave\" in \"\\tsystem:masters\": 503, never X-Remote-* a backend reads trimmed",
            get(FLUNDERS, "tok-tab"),
            status(&[503]),
        )
        .has("begins or ends with whitespace"),
    );

    // ---- path confusion (kube splits the decoded path on '/', never cleans it)
    let forbidden_secret = |what: &str, path: String| {
        Row::new(what, get(&path, "tok-alice"), status(forbidden)).lacks(OTHER_DATA).lacks(other_secret)
    };
    r.push(forbidden_secret(
        "secrets/../configmaps: name '..', subresource configmaps",
        format!("{NS}/secrets/../configmaps/cm1"),
    ));
    r.push(forbidden_secret(
        "configmaps/../secrets/other: configmaps/secrets is not configmaps",
        format!("{NS}/configmaps/../secrets/other"),
    ));
    r.push(forbidden_secret("secrets/allowed/../other: subresource '..'", format!("{NS}/secrets/allowed/../other")));
    r.push(forbidden_secret("%2e%2e decodes to '..'", format!("{NS}/secrets/allowed/%2e%2e/other")));
    r.push(forbidden_secret("%2E%2E upper-case escapes", format!("{NS}/configmaps/%2E%2E/secrets/other")));
    r.push(forbidden_secret("encoded slash: allowed%2F..%2Fother", format!("{NS}/secrets/allowed%2F..%2Fother")));
    r.push(forbidden_secret("encoded slash: allowed%2fother", format!("{NS}/secrets/allowed%2fother")));
    r.push(forbidden_secret("leading //", format!("/{NS}/secrets/other")));
    r.push(forbidden_secret("empty segment after /api", "/api//v1/namespaces/default/secrets/other".to_string()));
    r.push(forbidden_secret("empty segment before the name", format!("{NS}/secrets//other")));
    r.push(forbidden_secret("trailing slash", format!("{NS}/secrets/other/")));
    r.push(forbidden_secret("trailing dot on the name", format!("{NS}/secrets/allowed.")));
    r.push(forbidden_secret("trailing /. segment", format!("{NS}/secrets/allowed/.")));
    r.push(forbidden_secret("./ segment", format!("{NS}/secrets/./other")));
    r.push(forbidden_secret("name in upper case", format!("{NS}/secrets/ALLOWED")));
    r.push(forbidden_secret("resource in mixed case", format!("{NS}/Secrets/other")));
    r.push(forbidden_secret(
        "/API prefix in upper case (a non-resource path)",
        "/API/v1/namespaces/default/secrets/other".to_string(),
    ));
    r.push(forbidden_secret("matrix parameter ;", format!("{NS}/secrets/allowed;other")));
    r.push(forbidden_secret("encoded NUL after the name", format!("{NS}/secrets/allowed%00")));
    // a raw control byte in the target: Go's url.ParseRequestURI refuses it and its server
    // answers a plain 400 before any handler; pingora percent-encodes it, which must not make
    // it the escape above (or send it on to a backend as one)
    let go_400 = |what: &str, req: Req| Row::new(what, req, status(&[400])).has("400 Bad Request").lacks(OTHER_DATA);
    r.push(go_400("raw NUL in the namespace", get("/api/v1/namespaces/de\u{0}fault/configmaps", "tok-admin")));
    r.push(go_400("raw CR in the resource", get(&format!("{NS}/config\rmaps"), "tok-admin")));
    r.push(go_400("raw TAB after the name", get(&format!("{NS}/secrets/allowed\t"), "tok-alice")));
    r.push(go_400("raw DEL in the query", get(&format!("{NS}/secrets?pretty=\u{7f}"), "tok-admin")));
    r.push(go_400(
        "raw DEL to the backend (pingora sent it on as %7F)",
        get(&format!("{FLUNDERS}/x\u{7f}"), "tok-dave"),
    ));
    r.push(go_400(
        "raw 0x01 in a create's query: nothing stored",
        post(&format!("{NS}/configmaps?fieldManager=a\u{1}"), "tok-admin", r#"{"metadata":{"name":"ctl"}}"#),
    ));
    r.push(go_400(
        "raw 0x1f after a space in the target (Go: a malformed version)",
        get(&format!("{NS}/configmaps x\u{1f}"), "tok-admin"),
    ));
    r.push(forbidden_secret("namespace escaped (%64efault)", "/api/v1/namespaces/%64efault/secrets/other".to_string()));
    r.push(forbidden_secret("another namespace", "/api/v1/namespaces/kube-system/secrets/allowed".to_string()));
    r.push(forbidden_secret("cluster-wide list", "/api/v1/secrets".to_string()));
    r.push(forbidden_secret(
        "non-resource prefix then ..: /healthz/../api/...",
        format!("/healthz/..{NS}/secrets/other"),
    ));
    r.push(forbidden_secret(
        "non-resource prefix then %2e%2e: /version/%2e%2e/api/...",
        format!("/version/%2e%2e{NS}/secrets/other"),
    ));
    r.push(forbidden_secret("absolute-form request target", format!("https://127.0.0.1{NS}/secrets/other")));
    r.push(
        Row::new(
            "absolute-form target to a backend: it gets the origin-form path authorized",
            get(&format!("https://127.0.0.1{FLUNDERS}"), "tok-dave"),
            status(ok),
        )
        .backend(dave_origin_form),
    );
    r.push(
        Row::new(
            "scheme-like target: x:/api/... (pingora reads /)",
            get(&format!("x:{NS}/secrets/other"), "tok-alice"),
            status(&[400]),
        )
        .lacks(OTHER_DATA)
        .lacks(other_secret),
    );
    r.push(Row::new("a target that is no path: foo", get("foo", "tok-alice"), status(&[400])));
    r.push(Row::new(
        "OPTIONS * is the server's own 200, as Go answers it",
        Req::H1(http("OPTIONS", "*", None, &[], None)),
        status(ok),
    ));
    r.push(Row::new("GET * is no request for a backend", get("*", "tok-dave"), status(&[403, 404])));
    r.push(Row::new(
        "a target of only a fragment: #x (pingora reads an empty path)",
        get("#x", "tok-alice"),
        status(&[400]),
    ));
    r.push(
        Row::new(
            "escaped name decodes first: %61llowed is the secret 'allowed'",
            get(&format!("{NS}/secrets/%61llowed"), "tok-alice"),
            status(ok),
        )
        .has(r#""name":"allowed""#),
    );
    r.push(Row::new(
        "backend path with ../../ to core secrets",
        get("/apis/wardle.example.com/v1alpha1/../../api/v1/namespaces/default/secrets/other", "tok-dave"),
        status(forbidden),
    ));
    r.push(Row::new(
        "backend: flunders/%2e%2e/%2e%2e",
        get(&format!("{FLUNDERS}/%2e%2e/%2e%2e"), "tok-dave"),
        status(forbidden),
    ));
    r.push(Row::new(
        "backend: flunders/x%2F..%2F..%2Fsecrets",
        get(&format!("{FLUNDERS}/x%2F..%2F..%2Fsecrets"), "tok-dave"),
        status(forbidden),
    ));
    r.push(Row::new(
        "backend: group in upper case",
        get("/apis/WARDLE.example.com/v1alpha1/namespaces/default/flunders", "tok-dave"),
        status(forbidden),
    ));

    // ---- query confusion (url.Values.Get: the first value, for the authorizer and the handler)
    r.push(
        Row::new(
            "fieldSelector metadata.name=allowed: list of the one secret",
            get(&format!("{NS}/secrets?fieldSelector=metadata.name%3Dallowed"), "tok-alice"),
            status(ok),
        )
        .has(r#""name":"allowed""#)
        .lacks(other_secret),
    );
    r.push(
        Row::new(
            "fieldSelector=metadata.name%3Dallowed&fieldSelector= lists only 'allowed'",
            get(&format!("{NS}/secrets?fieldSelector=metadata.name%3Dallowed&fieldSelector="), "tok-alice"),
            status(ok),
        )
        .has(r#""name":"allowed""#)
        .lacks(other_secret),
    );
    r.push(forbidden_secret(
        "fieldSelector=&fieldSelector=metadata.name%3Dallowed: a list of all",
        format!("{NS}/secrets?fieldSelector=&fieldSelector=metadata.name%3Dallowed"),
    ));
    r.push(
        Row::new(
            "fieldSelector=metadata.name%3Dallowed&fieldSelector=metadata.name%3Dother",
            get(
                &format!("{NS}/secrets?fieldSelector=metadata.name%3Dallowed&fieldSelector=metadata.name%3Dother"),
                "tok-alice",
            ),
            status(ok),
        )
        .has(r#""name":"allowed""#)
        .lacks(other_secret),
    );
    r.push(forbidden_secret(
        "fieldSelector metadata.name!=allowed",
        format!("{NS}/secrets?fieldSelector=metadata.name!%3Dallowed"),
    ));
    r.push(forbidden_secret(
        "fieldSelector metadata.name=other",
        format!("{NS}/secrets?fieldSelector=metadata.name%3Dother"),
    ));
    r.push(
        Row::new(
            "watch=0&watch=1 is a list for a user without watch",
            get(&format!("{NS}/configmaps?watch=0&watch=1"), "tok-carol"),
            status(ok),
        )
        .has("ConfigMapList"),
    );
    r.push(Row::new(
        "watch=1&watch=0 is a watch: forbidden without watch",
        get(&format!("{NS}/configmaps?watch=1&watch=0"), "tok-carol"),
        status(forbidden),
    ));
    r.push(Row::new(
        "watch=true&watch=false is a watch",
        get(&format!("{NS}/configmaps?watch=true&watch=false"), "tok-carol"),
        status(forbidden),
    ));
    r.push(
        Row::new(
            "labelSelector=app%3Da&labelSelector= selects app=a only",
            get(&format!("{NS}/configmaps?labelSelector=app%3Da&labelSelector="), "tok-carol"),
            status(ok),
        )
        .has(r#""name":"cm1""#)
        .lacks(r#""name":"cm2""#),
    );
    r.push(
        Row::new(
            "limit=1&limit=0 pages by 1",
            get(&format!("{NS}/configmaps?limit=1&limit=0&labelSelector=app"), "tok-carol"),
            status(ok),
        )
        .has(r#""continue":""#),
    );
    r.push(
        Row::new(
            "resourceVersion=0&resourceVersion=junk uses the first",
            get(&format!("{NS}/configmaps?resourceVersion=0&resourceVersion=junk"), "tok-carol"),
            status(ok),
        )
        .has("ConfigMapList"),
    );
    r.push(Row::new(
        "dryRun=All creates nothing",
        post(&format!("{NS}/configmaps?dryRun=All"), "tok-carol", &cm("dry1")),
        status(&[201]),
    ));
    r.push(Row::new(
        "dryRun=All&dryRun= is invalid (dryRun is a list: [All, ''])",
        post(&format!("{NS}/configmaps?dryRun=All&dryRun="), "tok-carol", &cm("dry2")),
        status(&[422]),
    ));
    r.push(Row::new(
        "dryRun=&dryRun=All is invalid, and writes nothing",
        post(&format!("{NS}/configmaps?dryRun=&dryRun=All"), "tok-carol", &cm("dry3")),
        status(&[422]),
    ));
    r.push(Row::new(
        "dryRun=bogus is invalid",
        post(&format!("{NS}/configmaps?dryRun=bogus"), "tok-carol", &cm("dry4")),
        status(&[422]),
    ));
    // a DeleteOptions body's dryRun is checked as the query's: a bad one deletes nothing
    r.push(Row::new(
        "DELETE with a body's dryRun [\"Al\"] is invalid, and deletes nothing",
        delete(&format!("{NS}/configmaps/cm1"), "tok-admin", r#"{"dryRun":["Al"]}"#),
        status(&[422]),
    ));
    r.push(Row::new(
        "DELETE with a body's dryRun \"All\" (not a list) deletes nothing",
        delete(
            &format!("{NS}/configmaps/cm1"),
            "tok-admin",
            r#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":"All"}"#,
        ),
        status(&[500]),
    ));
    r.push(Row::new(
        "deletecollection with a body's dryRun \"All\" (not a list) deletes nothing",
        delete(&format!("{NS}/configmaps?labelSelector=app"), "tok-admin", r#"{"dryRun":"All"}"#),
        status(&[500]),
    ));
    r.push(Row::new(
        "control: DELETE with a body's dryRun [\"All\"] deletes nothing",
        delete(&format!("{NS}/configmaps/cm1"), "tok-admin", r#"{"dryRun":["All"]}"#),
        status(&[200]),
    ));
    r.push(
        Row::new(
            "control: carol creates a configmap",
            post(&format!("{NS}/configmaps"), "tok-carol", &cm("real1")),
            status(&[201]),
        )
        .writes("configmaps/real1"),
    );

    // ---- header spoofing
    r.push(Row::new(
        "X-Remote-User/Group from a plain client are not believed",
        get_h(
            &format!("{NS}/secrets/other"),
            "tok-mallory",
            &[("X-Remote-User", "admin-user"), ("X-Remote-Group", "system:masters")],
        ),
        status(forbidden),
    ));
    r.push(Row::new(
        "X-Remote-User without a token: still anonymous",
        Req::H1(http(
            "GET",
            &format!("{NS}/secrets/other"),
            None,
            &[("X-Remote-User", "admin-user"), ("X-Remote-Group", "system:masters")],
            None,
        )),
        status(forbidden),
    ));
    r.push(
        Row::new(
            "X-Remote-User to the backend: replaced by frontdoor's",
            get_h(FLUNDERS, "tok-dave", &[("X-Remote-User", "admin-user"), ("X-Remote-Group", "system:masters")]),
            status(ok),
        )
        .backend(dave_only),
    );
    r.push(
        Row::new(
            "X_Remote_User (underscores) never reaches the backend",
            get_h(FLUNDERS, "tok-dave", &[("X_Remote_User", "admin-user"), ("X_Remote_Group", "system:masters")]),
            status(ok),
        )
        .backend(dave_only),
    );
    r.push(
        Row::new(
            "x-remote_user (mixed) never reaches the backend",
            get_h(FLUNDERS, "tok-dave", &[("x-remote_user", "admin-user"), ("x_remote-group", "system:masters")]),
            status(ok),
        )
        .backend(dave_only),
    );
    r.push(
        Row::new(
            "X-Remote-Extra-* from the client is dropped",
            get_h(FLUNDERS, "tok-dave", &[("X-Remote-Extra-Scopes", "all"), ("X_Remote_Extra_Scopes", "all")]),
            status(ok),
        )
        .backend(dave_only),
    );
    r.push(
        Row::new(
            "X-Remote-Uid / X_Remote_Uid never reach the backend",
            get_h(FLUNDERS, "tok-dave", &[("X-Remote-Uid", "u-admin"), ("X_Remote_Uid", "u-admin")]),
            status(ok),
        )
        .backend(dave_only),
    );
    r.push(
        Row::new(
            "Connection: X-Remote-User does not remove frontdoor's identity headers",
            get_h(FLUNDERS, "tok-dave", &[("Connection", "close, X-Remote-User, X-Remote-Group")]),
            status(ok),
        )
        .backend(dave_only),
    );
    r.push(Row::new(
        "Connection: Authorization does not hide the credential from authn",
        get_h(&format!("{NS}/secrets/other"), "tok-mallory", &[("Connection", "close, Authorization")]),
        status(forbidden),
    ));
    r.push(
        Row::new(
            "two Authorization headers: the first (mallory) counts",
            get_h(&format!("{NS}/secrets/other"), "tok-mallory", &[("Authorization", "Bearer tok-admin")]),
            status(forbidden),
        )
        .lacks(OTHER_DATA),
    );
    r.push(Row::new(
        "Authorization with an underscore name is no credential",
        Req::H1(http("GET", &format!("{NS}/secrets/other"), None, &[("Authorization_", "Bearer tok-admin")], None)),
        status(forbidden),
    ));

    // ---- impersonation
    r.push(Row::new(
        "impersonating a user without the right",
        get_h(&format!("{NS}/secrets/other"), "tok-mallory", &[("Impersonate-User", "admin-user")]),
        status(forbidden),
    ));
    r.push(Row::new(
        "impersonating system:masters without the right",
        get_h(
            &format!("{NS}/secrets/other"),
            "tok-eve",
            &[("Impersonate-User", "bot"), ("Impersonate-Group", "system:masters")],
        ),
        status(forbidden),
    ));
    r.push(Row::new(
        "impersonating a user named in UTF-8 (josé) without the right: asked for, not ignored",
        get_h(&format!("{NS}/configmaps/cm1"), "tok-carol", &[("Impersonate-User", "josé")]),
        status(forbidden),
    ));
    r.push(Row::new(
        "impersonating a group without a user (kube's 500)",
        get_h(&format!("{NS}/secrets/other"), "tok-mallory", &[("Impersonate-Group", "system:masters")]),
        status(&[500]),
    ));
    r.push(Row::new(
        "impersonating a user eve may not",
        get_h(&format!("{NS}/secrets/other"), "tok-eve", &[("Impersonate-User", "admin-user")]),
        status(forbidden),
    ));
    r.push(Row::new(
        "impersonating extra without the right",
        post_h(SSR, "tok-eve", &[("Impersonate-User", "bot"), ("Impersonate-Extra-Scopes", "all")], SSR_BODY),
        status(forbidden),
    ));
    r.push(
        Row::new(
            "control: eve impersonates bot",
            post_h(SSR, "tok-eve", &[("Impersonate-User", "bot")], SSR_BODY),
            status(&[201]),
        )
        .has(r#""username":"bot""#),
    );
    r.push(Row::new(
        "two Impersonate-User headers: the first (admin-user) counts",
        post_h(SSR, "tok-eve", &[("Impersonate-User", "admin-user"), ("Impersonate-User", "bot")], SSR_BODY),
        status(forbidden),
    ));
    r.push(
        Row::new(
            "Impersonate_User (underscore) is not impersonation",
            post_h(SSR, "tok-eve", &[("Impersonate_User", "admin-user")], SSR_BODY),
            status(&[201]),
        )
        .has(r#""username":"eve""#)
        .lacks("admin-user"),
    );

    // ---- RBAC escalation (kube: create/update of a role or binding may grant only what the user holds, unless escalate/bind)
    let rb = |name: &str, kind: &str, role: &str| {
        format!(
            r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"{name}"}},"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"{kind}","name":"{role}"}},"subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"bob"}}]}}"#
        )
    };
    let role = |name: &str, rules: &str| {
        format!(
            r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{{"name":"{name}"}},"rules":{rules}}}"#
        )
    };
    r.push(Row::new(
        "bob binds cluster-admin to himself",
        post(&format!("{RBAC}/rolebindings"), "tok-bob", &rb("bob-admin", "ClusterRole", "cluster-admin")),
        status(forbidden),
    ));
    r.push(Row::new(
        "bob binds the admin ClusterRole to himself",
        post(&format!("{RBAC}/rolebindings"), "tok-bob", &rb("bob-admin2", "ClusterRole", "admin")),
        status(forbidden),
    ));
    r.push(Row::new(
        "bob binds cluster-admin with dryRun=All",
        post(&format!("{RBAC}/rolebindings?dryRun=All"), "tok-bob", &rb("bob-admin3", "ClusterRole", "cluster-admin")),
        status(forbidden),
    ));
    r.push(Row::new(
        "bob creates a Role with rights he lacks (secrets)",
        post(
            &format!("{RBAC}/roles"),
            "tok-bob",
            &role("bob-secrets", r#"[{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}]"#),
        ),
        status(forbidden),
    ));
    r.push(Row::new(
        "bob creates a Role with '*'",
        post(
            &format!("{RBAC}/roles"),
            "tok-bob",
            &role("bob-star", r#"[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}]"#),
        ),
        status(forbidden),
    ));
    r.push(Row::new(
        "bob creates a Role adding 'escalate' to his own rights",
        post(
            &format!("{RBAC}/roles"),
            "tok-bob",
            &role(
                "bob-esc",
                r#"[{"apiGroups":["rbac.authorization.k8s.io"],"resources":["roles"],"verbs":["create","escalate"]}]"#,
            ),
        ),
        status(forbidden),
    ));
    r.push(Row::new(
        "bob creates a ClusterRoleBinding (no right at all)",
        post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            "tok-bob",
            &rb("bob-crb", "ClusterRole", "cluster-admin").replace("RoleBinding", "ClusterRoleBinding"),
        ),
        status(forbidden),
    ));
    r.push(
        Row::new(
            "control: bob creates a Role within his rights",
            post(
                &format!("{RBAC}/roles"),
                "tok-bob",
                &role(
                    "bob-sub",
                    r#"[{"apiGroups":["rbac.authorization.k8s.io"],"resources":["roles"],"verbs":["get"]}]"#,
                ),
            ),
            status(&[201]),
        )
        .writes("roles/bob-sub"),
    );
    r.push(
        Row::new(
            "control: bob binds a Role he holds all of",
            post(&format!("{RBAC}/rolebindings"), "tok-bob", &rb("bob-self", "Role", "bob-rbac")),
            status(&[201]),
        )
        .writes("rolebindings/bob-self"),
    );

    // ---- forged tokens (a bearer token that fails authentication is a 401, never anonymous)
    let unauthorized: &'static [u16] = &[401];
    for (what, tok) in forged_tokens() {
        r.push(Row::new(
            format!("forged token: {what}"),
            Req::H1(http("GET", &format!("{NS}/secrets/other"), Some(&tok), &[], None)),
            status(unauthorized),
        ));
    }

    // ---- routes kube does not have: a grant in one namespace, or on one name, must not reach further
    let owner_reach = [
        ("GET", "/api/v1/namespaces/default/namespaces", None),
        ("GET", "/api/v1/namespaces/default/namespaces?watch=1&timeoutSeconds=1", None),
        ("GET", "/api/v1/namespaces/default/namespaces/kube-system", None),
        (
            "PATCH",
            "/api/v1/namespaces/default/namespaces/kube-system",
            Some(r#"{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}"#),
        ),
        ("DELETE", "/api/v1/namespaces/default/namespaces/kube-node-lease", None),
        (
            "PUT",
            "/api/v1/namespaces/default/namespaces/kube-node-lease/finalize",
            Some(
                r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"kube-node-lease"},"spec":{"finalizers":[]}}"#,
            ),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/namespaces",
            Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"olive-made"}}"#),
        ),
        // read as the namespace default itself by RequestInfo, but not a route either
        ("GET", "/api/v1/namespaces/default/namespaces/default", None),
        (
            "PATCH",
            "/api/v1/namespaces/default/namespaces/default",
            Some(r#"{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}"#),
        ),
        // nothing follows a subresource
        ("GET", "/api/v1/namespaces/default/status/junk", None),
        (
            "PUT",
            "/api/v1/namespaces/default/finalize/junk",
            Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"},"spec":{"finalizers":[]}}"#),
        ),
    ];
    // the /watch/ prefix names the verb whatever the method, and kube serves it only to GET
    for method in ["PUT", "POST", "DELETE"] {
        r.push(
            Row::new(
                format!("{method} under /watch/ (kube: 405, not a watch)"),
                Req::H1(http(
                    method,
                    "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1",
                    Some("tok-admin"),
                    &[],
                    Some(&cm("w1")),
                )),
                status(&[405]),
            )
            .lacks("ADDED"),
        );
    }
    for (method, path, body) in owner_reach {
        let ct: &[(&str, &str)] = if method == "PATCH" {
            &[("Content-Type", "application/merge-patch+json")]
        } else {
            &[("Content-Type", "application/json")]
        };
        r.push(
            Row::new(
                format!("a namespace owner's {method} {path} (no such route: 404)"),
                Req::H1(http(method, path, Some("tok-olive"), ct, body)),
                status(&[404]),
            )
            .lacks("kube-system\",\"resourceVersion"),
        );
    }
    r.push(Row::new(
        "create on an object's path, another name in the body (405: authorized is the URL's name)",
        post(&format!("{NS}/configmaps/allowed-name"), "tok-carol", &cm("body-name")),
        status(&[405]),
    ));
    // a collection's route takes no update or patch: a nameless one would create under a
    // generated name what was authorized as an update
    for (method, ct, body) in [
        ("PUT", "application/json", r#"{"metadata":{"generateName":"put-"},"data":{"a":"b"}}"#),
        ("PATCH", "application/apply-patch+yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: ssa-}\n"),
        ("PATCH", "application/merge-patch+json", "{}"),
    ] {
        let query = if ct.starts_with("application/apply") { "?fieldManager=x" } else { "" };
        r.push(Row::new(
            format!("a namespace owner's {method} ({ct}) of the configmaps collection (405)"),
            Req::H1(http(
                method,
                &format!("{NS}/configmaps{query}"),
                Some("tok-olive"),
                &[("Content-Type", ct)],
                Some(body),
            )),
            status(&[405]),
        ));
    }
    // Go's readRequest: an HTTP/1.1 request names exactly one host
    r.push(
        Row::new(
            "an HTTP/1.1 request without Host (Go: 400)",
            Req::H1(
                format!("GET {NS}/configmaps HTTP/1.1\r\nAuthorization: Bearer tok-olive\r\nConnection: close\r\n\r\n")
                    .into_bytes(),
            ),
            status(&[400]),
        )
        .has("400 Bad Request: missing required Host header"),
    );
    r.push(
        Row::new(
            "an HTTP/1.1 request with two Hosts (Go: 400)",
            Req::H1(
                format!("GET {NS}/configmaps HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: Bearer tok-olive\r\nConnection: close\r\n\r\n")
                    .into_bytes(),
            ),
            // (pingora refuses it first, without a body)
            status(&[400]),
        ),
    );
    r.push(Row::new(
        "create a namespace on a namespace's path (405)",
        post(
            "/api/v1/namespaces/default",
            "tok-olive",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"olive-made2"}}"#,
        ),
        status(&[405]),
    ));
    r.push(Row::new(
        "create a role on a role's path, another name in the body (405)",
        post(
            &format!("{RBAC}/roles/bob-rbac"),
            "tok-bob",
            r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"bob-other"},"rules":[]}"#,
        ),
        status(&[405]),
    ));
    for path in
        [format!("{NS}/serviceaccounts//token"), format!("{NS}/serviceaccounts//token?watch=1&timeoutSeconds=1")]
    {
        r.push(
            Row::new(
                format!("a subresource without its object: {path} (404, not a list of objects)"),
                get(&path, "tok-pat"),
                status(&[404]),
            )
            .lacks("ServiceAccount"),
        );
    }

    // ---- rights on a subresource only: no route to the object beyond the subresource's own
    let apply = [("Content-Type", "application/apply-patch+yaml")];
    r.push(Row::new(
        "server-side apply to a missing namespace's status: 404, not a create of the namespace",
        Req::H1(http(
            "PATCH",
            "/api/v1/namespaces/sam-made/status?fieldManager=sam",
            Some("tok-sam"),
            &apply,
            Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"sam-made"}}"#),
        )),
        status(&[404]),
    ));
    let sa = r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sam-sa"},"automountServiceAccountToken":false}"#;
    r.push(Row::new(
        "server-side apply to a missing serviceaccount's token: 405, token is create-only",
        Req::H1(http(
            "PATCH",
            &format!("{NS}/serviceaccounts/sam-sa/token?fieldManager=sam"),
            Some("tok-sam"),
            &apply,
            Some(sa),
        )),
        status(&[405]),
    ));
    for (method, ct) in
        [("GET", None), ("PUT", Some("application/json")), ("PATCH", Some("application/merge-patch+json"))]
    {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
        r.push(
            Row::new(
                format!("{method} of a serviceaccount's token subresource: 405, not the serviceaccount"),
                Req::H1(http(
                    method,
                    &format!("{NS}/serviceaccounts/default/token"),
                    Some("tok-sam"),
                    &headers,
                    ct.map(|_| r#"{"metadata":{"name":"default","labels":{"by":"sam"}}}"#),
                )),
                status(&[405]),
            )
            .lacks("\"kind\":\"ServiceAccount\""),
        );
    }
    // a TokenRequest's body may not name another service account than the URL's (kube's 422
    // and 409), where it was silently replaced by the URL's
    let token = format!("{NS}/serviceaccounts/default/token");
    let tr = |meta: &str| {
        format!(r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","metadata":{meta},"spec":{{}}}}"#)
    };
    for (what, meta, code) in [
        ("another name", r#"{"name":"robot"}"#, &[422]),
        ("another namespace", r#"{"name":"default","namespace":"kube-system"}"#, &[422]),
        ("another uid", r#"{"uid":"00000000-0000-0000-0000-000000000000"}"#, &[409]),
    ] {
        r.push(
            Row::new(
                format!("TokenRequest whose body names {what}: refused"),
                post(&token, "tok-sam", &tr(meta)),
                status(code),
            )
            .lacks("\"token\""),
        );
    }
    r.push(
        Row::new(
            "control: TokenRequest whose body names the URL's service account",
            post(&token, "tok-sam", &tr(r#"{"name":"default","namespace":"default"}"#)),
            status(&[201]),
        )
        .has("\"token\""),
    );
    for path in [
        "/api/v1/watch/namespaces/default/serviceaccounts/default/token?timeoutSeconds=1",
        "/api/v1/watch/namespaces/default/status?timeoutSeconds=1",
    ] {
        r.push(
            Row::new(
                format!("watch of a subresource: {path} (404: kube has no such route)"),
                get(path, "tok-sam"),
                status(&[404]),
            )
            .lacks("ADDED"),
        );
    }

    // ---- a write that would create is authorized as a create (kube's update and patch handlers)
    let apiservice = r#"{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1.evil.example"},"spec":{"group":"evil.example","version":"v1","groupPriorityMinimum":100,"versionPriority":10,"service":{"namespace":"default","name":"evil"},"insecureSkipTLSVerify":true}}"#;
    for (what, path, body) in [
        (
            "a secret",
            format!("{NS}/secrets/uma-made"),
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"uma-made"},"stringData":{"a":"b"}}"#,
        ),
        (
            "a namespace",
            "/api/v1/namespaces/uma-made".to_string(),
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"uma-made"}}"#,
        ),
        (
            "an APIService (a route for a new group)",
            "/apis/apiregistration.k8s.io/v1/apiservices/v1.evil.example".to_string(),
            apiservice,
        ),
    ] {
        for q in ["fieldManager=uma", "fieldManager=uma&dryRun=All"] {
            r.push(Row::new(
                format!("server-side apply creating {what} with patch rights only ({q}): 403"),
                Req::H1(http("PATCH", &format!("{path}?{q}"), Some("tok-uma"), &apply, Some(body))),
                status(&[403]),
            ));
        }
    }
    r.push(Row::new(
        "a PUT creating a Role with update rights only: 403",
        Req::H1(http(
            "PUT",
            &format!("{RBAC}/roles/uma-made"),
            Some("tok-uma"),
            &[("Content-Type", "application/json")],
            Some(r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"uma-made"},"rules":[]}"#),
        )),
        status(&[403]),
    ));

    // ---- client certificates
    r.push(Row::new(
        "self-signed cert claiming system:masters: handshake fails",
        Req::H1Cert("self-signed", http("GET", &format!("{NS}/secrets/other"), None, &[], None)),
        Want::Refused,
    ));
    r.push(Row::new(
        "self-signed cert named front-proxy-client with X-Remote-User",
        Req::H1Cert(
            "self-signed-proxy",
            http(
                "GET",
                &format!("{NS}/secrets/other"),
                None,
                &[("X-Remote-User", "admin-user"), ("X-Remote-Group", "system:masters")],
                None,
            ),
        ),
        Want::Refused,
    ));
    r.push(Row::new(
        "expired cert from the client CA",
        Req::H1Cert("expired", http("GET", &format!("{NS}/secrets/other"), None, &[], None)),
        Want::Refused,
    ));
    r.push(Row::new(
        "front-proxy CA cert with a CN not allowed, asserting X-Remote-User",
        Req::H1Cert(
            "proxy-not-allowed",
            http(
                "GET",
                &format!("{NS}/secrets/other"),
                None,
                &[("X-Remote-User", "admin-user"), ("X-Remote-Group", "system:masters")],
                None,
            ),
        ),
        status(unauthorized),
    ));
    r.push(Row::new(
        "client-CA cert (user 'imposter') asserting X-Remote-User",
        Req::H1Cert(
            "client-imposter",
            http(
                "GET",
                &format!("{NS}/secrets/other"),
                None,
                &[("X-Remote-User", "admin-user"), ("X-Remote-Group", "system:masters")],
                None,
            ),
        ),
        status(forbidden),
    ));

    // ---- request smuggling over HTTP/1.1: one reading of the framing, the same at frontdoor and at
    // the backend; bytes after a body never join the request before them
    let body = cm("cl-te");
    let bad_framing: &'static [u16] = &[400, 501];
    let chunked = |b: &str| format!("{:x}\r\n{b}\r\n0\r\n\r\n", b.len());
    let smug = smuggle_cm();
    r.push(Row::new(
        "CL + TE: the chunked body ends early, the bytes after it are no part of the request",
        Req::H1(format!("POST {NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-mallory\r\nContent-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{}{smug}", chunked(&body).len() + smug.len(), chunked(&body)).into_bytes()),
        status(&[400, 403]),
    ));
    r.push(Row::new(
        "TE + CL to the backend: no second request reaches it",
        Req::H1(format!("POST {FLUNDERS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-dave\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{}GET {FLUNDERS}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n", chunked("{}")).into_bytes()),
        status(&[400, 200]),
    ).backend(dave_only));
    r.push(Row::new(
        "two different Content-Lengths",
        Req::H1(format!("POST {NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-carol\r\nContent-Type: application/json\r\nContent-Length: {}\r\nContent-Length: {}\r\n\r\n{}{smug}", cm("twocl").len(), cm("twocl").len() + smug.len(), cm("twocl")).into_bytes()),
        status(&[400]),
    ));
    r.push(Row::new(
        "Content-Length with a comma list",
        Req::H1(format!("POST {NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-carol\r\nContent-Type: application/json\r\nContent-Length: {0}, {0}\r\n\r\n{1}", cm("commacl").len(), cm("commacl")).into_bytes()),
        status(&[400]),
    ));
    for (what, te) in [
        ("Transfer-Encoding: xchunked", "Transfer-Encoding: xchunked"),
        ("Transfer-Encoding: chunked, identity", "Transfer-Encoding: chunked, identity"),
        ("two Transfer-Encoding headers", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"),
        ("Transfer-Encoding: identity", "Transfer-Encoding: identity"),
        ("space before the colon", "Transfer-Encoding : chunked"),
        ("vertical tab before chunked", "Transfer-Encoding:\x0bchunked"),
        ("obs-fold line continuation", "Transfer-Encoding:\r\n chunked"),
    ] {
        r.push(Row::new(
            format!("obfuscated TE ({what}) + Content-Length (Go: 400 or 501)"),
            Req::H1(format!("POST {NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-mallory\r\nContent-Type: application/json\r\n{te}\r\nContent-Length: {}\r\n\r\n{}{smug}", chunked(&body).len(), chunked(&body)).into_bytes()),
            status(bad_framing),
        ));
    }
    // without a Content-Length too: Go takes one Transfer-Encoding header, `chunked`, else 501
    for (what, te) in [
        ("chunked, chunked", "Transfer-Encoding: chunked, chunked"),
        ("gzip, chunked", "Transfer-Encoding: gzip, chunked"),
        ("identity, chunked", "Transfer-Encoding: identity, chunked"),
        ("two chunked headers", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
    ] {
        let made = cm("te-made");
        r.push(Row::new(
            format!("Transfer-Encoding {what} alone: 501, nothing created"),
            Req::H1(format!("POST {NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-carol\r\nContent-Type: application/json\r\n{te}\r\n\r\n{}", chunked(&made)).into_bytes()),
            status(&[501]),
        ));
    }
    r.push(Row::new(
        "chunk size overflow",
        Req::H1(format!("POST {NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-carol\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\n{body}\r\n0\r\n\r\n").into_bytes()),
        status(&[400]),
    ));
    r.push(Row::new(
        "pipelined: each request is authenticated on its own (mallory, then alice)",
        Req::H1(
            [
                http("GET", &format!("{NS}/secrets/other"), Some("tok-mallory"), &[("Connection", "keep-alive")], None),
                http("GET", &format!("{NS}/secrets/other"), Some("tok-alice"), &[], None),
            ]
            .concat(),
        ),
        status(forbidden),
    ));
    r.push(Row::new(
        "a bare LF before the body hides no second request",
        Req::H1(format!("POST {NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-mallory\nContent-Length: 0\r\n\r\n{smug}").into_bytes()),
        status(&[400, 403]),
    ));

    // ---- HTTP/2 header tricks (RFC 9113 8.2: malformed requests are stream errors)
    let refused = Want::Refused;
    r.push(Row::new(
        "h2 control: alice gets her secret",
        h2("GET", &format!("{NS}/secrets/allowed"), "tok-alice", &[]),
        status(ok),
    ));
    r.push(Row::new(
        "h2 control: alice may not get another",
        h2("GET", &format!("{NS}/secrets/other"), "tok-alice", &[]),
        status(forbidden),
    ));
    r.push(Row::new(
        "h2 raw NUL in :path",
        h2("GET", &format!("{NS}/secrets/allowed\u{0}"), "tok-alice", &[]),
        Want::Refused,
    ));
    r.push(Row::new(
        "h2 raw DEL in :path to the backend",
        h2("GET", &format!("{FLUNDERS}\u{7f}"), "tok-dave", &[]),
        Want::Refused,
    ));
    r.push(Row::new(
        "h2 upper-case header name",
        h2("GET", &format!("{NS}/secrets/allowed"), "tok-alice", &[("X-Remote-User", "admin-user")]),
        refused,
    ));
    r.push(Row::new(
        "h2 connection-specific header (connection)",
        h2("GET", &format!("{NS}/secrets/allowed"), "tok-alice", &[("connection", "x-remote-user")]),
        Want::Refused,
    ));
    r.push(Row::new(
        "h2 transfer-encoding: chunked",
        h2("GET", &format!("{NS}/secrets/allowed"), "tok-alice", &[("transfer-encoding", "chunked")]),
        Want::Refused,
    ));
    r.push(Row::new(
        "h2 te other than trailers",
        h2("GET", &format!("{NS}/secrets/allowed"), "tok-alice", &[("te", "gzip")]),
        Want::Refused,
    ));
    r.push(Row::new(
        "h2 duplicate :path (allowed, then other)",
        h2("GET", &format!("{NS}/secrets/allowed"), "tok-alice", &[(":path", &format!("{NS}/secrets/other"))]),
        Want::Refused,
    ));
    r.push(Row::new(
        "h2 pseudo-header after a regular header",
        Req::H2(
            vec![
                (":method".into(), "GET".into()),
                (":scheme".into(), "https".into()),
                ("authorization".into(), "Bearer tok-alice".into()),
                (":authority".into(), "127.0.0.1".into()),
                (":path".into(), format!("{NS}/secrets/other")),
            ],
            None,
        ),
        Want::Refused,
    ));
    r.push(
        Row::new(
            "h2 x-remote-user to the backend is replaced",
            h2("GET", FLUNDERS, "tok-dave", &[("x-remote-user", "admin-user"), ("x-remote-group", "system:masters")]),
            status(ok),
        )
        .backend(dave_only),
    );
    r.push(
        Row::new(
            "h2 x_remote_user to the backend is dropped",
            h2("GET", FLUNDERS, "tok-dave", &[("x_remote_user", "admin-user")]),
            status(ok),
        )
        .backend(dave_only),
    );
    r.push(Row::new(
        "h2 two authorization fields: the first (mallory) counts",
        h2("GET", &format!("{NS}/secrets/other"), "tok-mallory", &[("authorization", "Bearer tok-admin")]),
        status(forbidden),
    ));
    r.push(Row::new(
        "h2 content-length disagreeing with DATA",
        Req::H2(
            vec![
                (":method".into(), "POST".into()),
                (":scheme".into(), "https".into()),
                (":authority".into(), "127.0.0.1".into()),
                (":path".into(), format!("{NS}/configmaps")),
                ("authorization".into(), "Bearer tok-carol".into()),
                ("content-type".into(), "application/json".into()),
                ("content-length".into(), "2".into()),
            ],
            Some(cm("h2cl").into_bytes()),
        ),
        Want::Refused,
    ));
    r
}

/// Bearer tokens that must not authenticate: (what, token).
fn forged_tokens() -> Vec<(&'static str, String)> {
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"iss": SA_ISSUER, "aud": [SA_ISSUER], "sub": "system:serviceaccount:default:robot", "exp": now + 300, "iat": now,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "robot", "uid": "robot-uid"}}});
    let none = format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(&claims));
    let none_upper = format!("{}.{}.", b64(&serde_json::json!({"alg": "NONE", "typ": "JWT"})), b64(&claims));
    let garbage_sig = format!("{}.{}.{}", b64(&serde_json::json!({"alg": "ES256"})), b64(&claims), "AAAA");
    vec![
        ("alg none", none),
        ("alg NONE", none_upper),
        ("ES256 header, garbage signature", garbage_sig),
        ("garbage", "abc.def.ghi".to_string()),
        ("not a JWT", "definitely-not-a-token".to_string()),
        ("a static token's prefix", "tok-admi".to_string()),
    ]
}

/// Tokens signed with the dev keys: HS256 keyed with the public key, expired, wrong issuer,
/// wrong audience. Built once the certs exist.
fn signed_tokens(certs: &Path, uid: &str) -> Vec<(&'static str, String)> {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str, exp: i64| {
        serde_json::json!({"iss": iss, "aud": [aud], "sub": "system:serviceaccount:default:robot", "exp": exp, "iat": now - 600, "nbf": now - 600,
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "robot", "uid": uid}}})
    };
    let sa_key = EncodingKey::from_ec_pem(&std::fs::read(certs.join("sa.key")).unwrap()).unwrap();
    let es = |c: serde_json::Value| encode(&Header::new(Algorithm::ES256), &c, &sa_key).unwrap();
    let public = std::fs::read(certs.join("sa.pub")).unwrap();
    let hs = encode(
        &Header::new(Algorithm::HS256),
        &claims(SA_ISSUER, SA_ISSUER, now + 300),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    vec![
        ("HS256 keyed with the public key", hs),
        ("expired", es(claims(SA_ISSUER, SA_ISSUER, now - 120))),
        ("wrong issuer", es(claims("https://evil.example", SA_ISSUER, now + 300))),
        ("wrong audience", es(claims(SA_ISSUER, "https://evil.example", now + 300))),
    ]
}

/// Client certificates for the cert rows, as (chain PEM, key PEM).
fn forged_certs(certs: &Path) -> BTreeMap<&'static str, (String, String)> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let leaf = |cn: &str, org: Option<&str>, past: bool| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if let Some(o) = org {
            p.distinguished_name.push(DnType::OrganizationName, o);
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if past {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        (p, key)
    };
    let ca = |name: &str| {
        let key = KeyPair::from_pem(&std::fs::read_to_string(certs.join(format!("{name}.key"))).unwrap()).unwrap();
        let params =
            CertificateParams::from_ca_cert_pem(&std::fs::read_to_string(certs.join(format!("{name}.crt"))).unwrap())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    };
    let (client_ca, client_ca_key) = ca("ca");
    let (proxy_ca, proxy_ca_key) = ca("front-proxy-ca");
    let mut out = BTreeMap::new();
    let (p, k) = leaf("admin", Some("system:masters"), false);
    out.insert("self-signed", (p.self_signed(&k).unwrap().pem(), k.serialize_pem()));
    let (p, k) = leaf("front-proxy-client", None, false);
    out.insert("self-signed-proxy", (p.self_signed(&k).unwrap().pem(), k.serialize_pem()));
    let (p, k) = leaf("admin", Some("system:masters"), true);
    out.insert("expired", (p.signed_by(&k, &client_ca, &client_ca_key).unwrap().pem(), k.serialize_pem()));
    let (p, k) = leaf("evil-proxy", None, false);
    out.insert("proxy-not-allowed", (p.signed_by(&k, &proxy_ca, &proxy_ca_key).unwrap().pem(), k.serialize_pem()));
    let (p, k) = leaf("imposter", None, false);
    out.insert("client-imposter", (p.signed_by(&k, &client_ca, &client_ca_key).unwrap().pem(), k.serialize_pem()));
    out
}

/// Every object an attack could write, by `kind/name`, with its resourceVersion.
fn store_state(admin: &reqwest::blocking::Client, fd: &Frontdoor) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (kind, path) in [
        ("configmaps", format!("{NS}/configmaps")),
        ("secrets", format!("{NS}/secrets")),
        ("serviceaccounts", format!("{NS}/serviceaccounts")),
        ("roles", format!("{RBAC}/roles")),
        ("rolebindings", format!("{RBAC}/rolebindings")),
        ("clusterroles", "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_string()),
        ("clusterrolebindings", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_string()),
        ("namespaces", "/api/v1/namespaces".to_string()),
    ] {
        let v: serde_json::Value = admin.get(fd.url(&path)).send().unwrap().json().unwrap();
        for item in v["items"].as_array().into_iter().flatten() {
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            let rv = item["metadata"]["resourceVersion"].as_str().unwrap_or_default();
            out.insert(format!("{kind}/{name}"), rv.to_string());
        }
    }
    out
}

fn apiservice(ca_pem: &str) -> String {
    format!(
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata:\n  name: v1alpha1.{GROUP}\nspec:\n  group: {GROUP}\n  version: v1alpha1\n  groupPriorityMinimum: 1000\n  versionPriority: 15\n  service: {{namespace: wardle, name: api, port: 443}}\n  caBundle: {}\n",
        base64::engine::general_purpose::STANDARD.encode(ca_pem)
    )
}

#[test]
fn attack_table() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let st =
        Command::new(env!("CARGO_BIN_EXE_frontdoor")).args(["certs", "init", "--dir"]).arg(&certs).status().unwrap();
    assert!(st.success());
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(policies.join("rbac")).unwrap();
    std::fs::write(policies.join("tokens.csv"), TOKENS).unwrap();
    std::fs::write(policies.join("rbac/attacks.yaml"), POLICY).unwrap();
    let pki = backend::pki(&["api.wardle.svc"]);
    let be = TestBackend::start(&pki, &certs.join("front-proxy-ca.crt"));
    let file = dir.path().join("apiservices.yaml");
    std::fs::write(&file, apiservice(&pki.ca_pem)).unwrap();
    let ep = format!("wardle/api:443=127.0.0.1:{}", be.port);
    let fd = Frontdoor::start_in(
        dir,
        &[
            "--apiservices-file",
            file.to_str().unwrap(),
            "--service-endpoint",
            &ep,
            "--apiservice-check-interval",
            "300ms",
        ],
    );
    let admin = fd.admin_client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin.get(fd.url(FLUNDERS)).send().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "wardle not available\n{}", fd.logs());
        std::thread::sleep(Duration::from_millis(100));
    }

    // the objects the attacks aim at
    let create = |path: &str, body: serde_json::Value| {
        let r = admin.post(fd.url(path)).json(&body).send().unwrap();
        assert_eq!(r.status().as_u16(), 201, "{path}: {}", r.text().unwrap_or_default());
        r.json::<serde_json::Value>().unwrap()
    };
    create(&format!("{NS}/secrets"), serde_json::json!({"metadata": {"name": "allowed"}, "data": {"v": "c2VjcmV0"}}));
    create(&format!("{NS}/secrets"), serde_json::json!({"metadata": {"name": "other"}, "data": {"v": OTHER_DATA}}));
    create(&format!("{NS}/configmaps"), serde_json::json!({"metadata": {"name": "cm1", "labels": {"app": "a"}}}));
    create(&format!("{NS}/configmaps"), serde_json::json!({"metadata": {"name": "cm2", "labels": {"app": "b"}}}));
    let sa = create(&format!("{NS}/serviceaccounts"), serde_json::json!({"metadata": {"name": "robot"}}));
    let uid = sa["metadata"]["uid"].as_str().unwrap().to_string();

    let mut rows = rows();
    for (what, tok) in signed_tokens(&fd.certs(), &uid) {
        rows.push(Row::new(
            format!("forged token: {what}"),
            Req::H1(http("GET", &format!("{NS}/secrets/other"), Some(&tok), &[], None)),
            status(&[401]),
        ));
    }
    // the signing works: the same key and claims, valid, authenticate the service account
    let valid = {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        let now = chrono::Utc::now().timestamp();
        let c = serde_json::json!({"iss": SA_ISSUER, "aud": [SA_ISSUER], "sub": "system:serviceaccount:default:robot", "exp": now + 300, "iat": now,
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "robot", "uid": uid}}});
        let k = EncodingKey::from_ec_pem(&std::fs::read(fd.certs().join("sa.key")).unwrap()).unwrap();
        encode(&Header::new(Algorithm::ES256), &c, &k).unwrap()
    };
    rows.push(
        Row::new("control: a valid service-account token", post(SSR, &valid, SSR_BODY), status(&[201]))
            .has("system:serviceaccount:default:robot"),
    );
    assert!(rows.len() >= 60, "{} rows", rows.len());
    eprintln!("attack table: {} rows", rows.len());

    let ca = fd.certs().join("ca.crt");
    let h1 = raw::tls_config(&ca, None, &[b"http/1.1"]);
    let h2c = raw::tls_config(&ca, None, &[b"h2"]);
    let certs = forged_certs(&fd.certs());
    let mut before = store_state(&admin, &fd);
    let mut failures = Vec::new();
    for row in &rows {
        let seen_before = be.seen().len();
        let (got, body, detail) = match &row.req {
            Req::H1(bytes) => {
                let x = raw::http1(fd.port, h1.clone(), bytes);
                (
                    x.responses.first().map(|r| r.status),
                    x.responses.first().map(|r| r.body.clone()).unwrap_or_default(),
                    format!("{:?}", x.error),
                )
            }
            Req::H1Cert(name, bytes) => {
                let (chain, key) = &certs[name];
                let x = raw::http1(fd.port, raw::tls_config(&ca, Some((chain, key)), &[b"http/1.1"]), bytes);
                (
                    x.responses.first().map(|r| r.status),
                    x.responses.first().map(|r| r.body.clone()).unwrap_or_default(),
                    format!("{:?}", x.error),
                )
            }
            Req::H2(headers, body) => {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                match raw::h2(fd.port, h2c.clone(), &h, body.as_deref()) {
                    H2::Status(s) => (Some(s), String::new(), String::new()),
                    // a refusal is the protocol's own: RST_STREAM or GOAWAY, not a dropped connection
                    H2::Failed(e) => (Some(0), String::new(), format!("connection failed: {e}")),
                    other => (None, String::new(), format!("{other:?}")),
                }
            }
        };
        let mut problems = Vec::new();
        match (&row.want, got) {
            (Want::Status(codes), Some(s)) if codes.contains(&s) => {}
            (Want::Refused, None) => {}
            (Want::Status(codes), _) => problems.push(format!("status {got:?}, want one of {codes:?} {detail}")),
            (Want::Refused, Some(s)) => problems.push(format!("status {s}, want the request refused {detail}")),
        }
        for s in &row.body_has {
            if !body.contains(s.as_str()) {
                problems.push(format!("body lacks {s}"));
            }
        }
        for s in &row.body_lacks {
            if body.contains(s.as_str()) {
                problems.push(format!("body has {s}"));
            }
        }
        // the store: exactly the row's own writes
        let after = store_state(&admin, &fd);
        let changed: Vec<&String> = after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k).collect();
        let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        let want: Vec<String> = row.writes.iter().map(|s| s.to_string()).collect();
        if changed.iter().map(|s| s.to_string()).collect::<Vec<_>>() != want || !removed.is_empty() {
            problems.push(format!("store changed {changed:?} removed {removed:?}, want {want:?}"));
        }
        before = after;
        // the backend: reached only by rows that say so, and then with the right headers
        std::thread::sleep(Duration::from_millis(20));
        // (the availability probe, GET /apis/<group>/<version> as system:kube-aggregator, and its
        // OpenAPI fetches are not the row's)
        let probe = format!("/apis/{GROUP}/v1alpha1");
        let prober = |s: &Seen| {
            s.all("user-agent") == vec!["frontdoor-availability-check"]
                && (s.target == probe || s.target.starts_with("/openapi/v2") || s.target.starts_with("/openapi/v3"))
        };
        let seen: Vec<Seen> = be.seen()[seen_before..].iter().filter(|s| !prober(s)).cloned().collect();
        match row.backend {
            None if !seen.is_empty() => problems.push(format!(
                "backend saw {:?}",
                seen.iter().map(|s| format!("{} {}", s.method, s.target)).collect::<Vec<_>>()
            )),
            Some(_) if seen.is_empty() && got == Some(200) => problems.push("backend not reached".to_string()),
            Some(check) => {
                if let Err(e) = check(&seen) {
                    problems.push(e);
                }
            }
            None => {}
        }
        if std::env::var_os("ATTACKS_VERBOSE").is_some() {
            eprintln!(
                "{:>4} {} {} {detail}",
                got.map_or("-".to_string(), |s| s.to_string()),
                if problems.is_empty() { "ok  " } else { "FAIL" },
                row.what
            );
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} | body: {}",
                row.what,
                problems.join("; "),
                body.chars().take(300).collect::<String>()
            ));
        }
    }
    // and the server is still fine
    assert_eq!(admin.get(fd.url("/readyz")).send().unwrap().status(), 200);
    assert!(failures.is_empty(), "{} of {} attack rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

/// An HTTP/2 request whose `:scheme` is not `https` or `http`, or whose `:path` has a malformed
/// escape, is a stream error (RST_STREAM PROTOCOL_ERROR) before any handler, as in Go's
/// x/net/http2 server (`newWriterAndRequest`); frontdoor served both (200). Not counted as a
/// request, as kube never sees one.
#[test]
fn an_http2_scheme_or_path_go_refuses_is_a_stream_error() {
    let fd = Frontdoor::start(&[]);
    let chain = std::fs::read_to_string(fd.certs().join("admin.crt")).unwrap();
    let key = std::fs::read_to_string(fd.certs().join("admin.key")).unwrap();
    let config = raw::tls_config(&fd.certs().join("ca.crt"), Some((&chain, &key)), &[b"h2"]);
    let cms = "/api/v1/namespaces/default/configmaps";
    let send = |scheme: &str, path: &str| {
        let h = [(":method", "GET"), (":scheme", scheme), (":authority", "127.0.0.1"), (":path", path)];
        raw::h2(fd.port, config.clone(), &h, None)
    };
    const PROTOCOL_ERROR: u32 = 1;
    for (scheme, path) in [
        ("foo", cms),
        ("wss", cms),
        ("https", "/api/v1/namespaces/a%zz/configmaps"),
        ("https", "/api/v1/namespaces/default/configmaps/x%"),
    ] {
        assert_eq!(send(scheme, path), H2::Reset(PROTOCOL_ERROR), "{scheme} {path}");
    }
    // what Go takes: both schemes, an escape, a bad escape in the query
    for (scheme, path) in [("https", cms), ("http", cms), ("https", "/api/v1/namespaces/a%20b/configmaps")] {
        assert_eq!(send(scheme, path), H2::Status(200), "{scheme} {path}");
    }
    assert_eq!(send("https", &format!("{cms}?x=%zz")), H2::Status(200));
    let text = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
    let lists: f64 = text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("resource=\"configmaps\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(lists, 4.0, "only the requests served are counted");
}
