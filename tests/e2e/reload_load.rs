//! Reloads under load: every hot-reloaded policy file, the serving certificate, the client CA,
//! the request-header CA, the service-account keys and the proxy client certificate rewritten
//! round after round (every tenth version invalid) while clients keep sending requests that
//! every valid version allows. No request may fail; each invalid version is rejected and
//! counted in `frontdoor_policy_reload_total{policy,result="failure"}` while the last good
//! one stays in force; each valid one takes effect, shown by a request whose answer depends on
//! it (a SubjectAccessReview for ABAC and the authorization configuration, a SelfSubjectReview
//! with a cert from the new client CA, through the new request-header CA, with a token signed
//! by the new service-account key, and the CN an aggregated backend sees for the proxy cert).
//!
//! The default suite runs 10 rounds; `cargo test --test e2e reload_load -- --ignored` runs
//! 100 (RELOAD_ROUNDS overrides) and prints the figures.

use crate::aggregation::{apiservice, certs_init, FLUNDERS};
use crate::authz::issue_user;
use crate::backend::{self, TestBackend, GROUP};
use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (metric label, file under the temp dir, a valid version of round `i`, an invalid one)
type Versions = (&'static str, &'static str, fn(usize, &Fixture) -> String, &'static str);

/// What the valid versions refer to beyond the round.
struct Fixture {
    /// The APIService of the recording backend, in every valid APIService file.
    wardle: String,
}

fn rbac(i: usize, _: &Fixture) -> String {
    // alice may always get configmaps; the extra resource changes each round
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: team, namespace: default}}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps, extra{i}]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: team, namespace: default}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: team}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}}\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}}\n"
    )
}

fn audit(i: usize, _: &Fixture) -> String {
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  users: [nobody{i}]\n- level: Metadata\n"
    )
}

fn tokens(i: usize, _: &Fixture) -> String {
    format!("bob-token,bob,u-bob\nextra-{i},user{i},u{i}\n")
}

fn authn(i: usize, _: &Fixture) -> String {
    format!("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {{url: 'https://issuer{i}.example', audiences: [frontdoor]}}\n  claimMappings: {{username: {{claim: sub, prefix: 'oidc:'}}}}\n")
}

fn flowcontrol(i: usize, _: &Fixture) -> String {
    format!("apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {{name: team}}\nspec:\n  type: Limited\n  limited:\n    nominalConcurrencyShares: {}\n    limitResponse: {{type: Reject}}\n", 10 + i % 5)
}

fn apiservices(i: usize, f: &Fixture) -> String {
    format!("apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1.x{i}.example.com}}\nspec:\n  group: x{i}.example.com\n  version: v1\n  groupPriorityMinimum: 100\n  versionPriority: 10\n  service: {{namespace: x, name: x, port: 443}}\n  insecureSkipTLSVerify: true\n---\n{}", f.wardle)
}

/// ABAC: user abac{i} may read everything.
fn abac(i: usize, _: &Fixture) -> String {
    format!("{{\"apiVersion\": \"abac.authorization.kubernetes.io/v1beta1\", \"kind\": \"Policy\", \"spec\": {{\"user\": \"abac{i}\", \"namespace\": \"*\", \"resource\": \"*\", \"apiGroup\": \"*\", \"readonly\": true}}}}\n")
}

/// The authorizer chain: RBAC, ABAC, then AlwaysAllow in even rounds and AlwaysDeny in odd ones.
fn authz_config(i: usize, _: &Fixture) -> String {
    let last = if i.is_multiple_of(2) { "AlwaysAllow" } else { "AlwaysDeny" };
    format!("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n- {{type: RBAC, name: rbac}}\n- {{type: ABAC, name: abac}}\n- {{type: {last}, name: last{i}}}\n")
}

const POLICIES: [Versions; 8] = [
    ("rbac", "policies/rbac/team.yaml", rbac, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nsubjects: []\n"),
    ("audit-policy", "policies/audit-policy.yaml", audit, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n"),
    ("token-auth-file", "policies/tokens.csv", tokens, "only-a-token\n"),
    ("authentication-config", "authn.yaml", authn, "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: Nope\n"),
    ("flowcontrol", "policies/flowcontrol/team.yaml", flowcontrol, "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: team}\nspec: [\n"),
    ("apiservices", "policies/apiservices.yaml", apiservices, "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.x.example.com}\nspec: [\n"),
    ("abac", "policies/abac.jsonl", abac, "{\"apiVersion\": \"abac.authorization.kubernetes.io/v1beta1\", \"kind\": \"Policy\", \"spec\": {\n"),
    ("authorization-config", "authz.yaml", authz_config, "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers: []\n"),
];

/// What reloads besides the policy files (their metric labels).
const CERTS: [&str; 5] =
    ["serving-cert", "client-ca", "requestheader-client-ca", "service-account-key-file", "proxy-client-cert"];

/// A new CA: its certificate's PEM and what signs with it.
pub(crate) fn new_ca(cn: &str) -> (String, rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    let ca = p.self_signed(&key).unwrap();
    (ca.pem(), ca, key)
}

/// A client certificate for `cn` from `ca`: (cert, key) PEM.
fn client_cert(ca: &rcgen::Certificate, ca_key: &KeyPair, cn: &str) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    (p.signed_by(&key, ca, ca_key).unwrap().pem(), key.serialize_pem())
}

/// A CA on disk (`<name>.crt`, `<name>.key` in `certs`), as rcgen values.
fn ca_from(certs: &Path, name: &str) -> (rcgen::Certificate, KeyPair) {
    let ca_pem = std::fs::read_to_string(certs.join(format!("{name}.crt"))).unwrap();
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(certs.join(format!("{name}.key"))).unwrap()).unwrap();
    (CertificateParams::from_ca_cert_pem(&ca_pem).unwrap().self_signed(&ca_key).unwrap(), ca_key)
}

/// The credentials one valid round's CA and key files accept.
struct Credentials {
    round: usize,
    /// A client cert from this round's client CA (CN `cca{round}`).
    client: (String, String),
    /// A front-proxy cert from this round's request-header CA.
    proxy: (String, String),
    /// A service-account token signed by this round's key.
    token: String,
}

const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn sa_token(key: &KeyPair, uid: &str) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iss": SA_ISSUER, "aud": [SA_ISSUER], "sub": "system:serviceaccount:default:robot",
        "exp": now + 3600, "iat": now, "nbf": now,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "robot", "uid": uid}}});
    let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
}

/// Who a SelfSubjectReview says the caller is (None: refused at the handshake or 401).
fn whoami(c: reqwest::Result<reqwest::blocking::Client>, fd: &Frontdoor, headers: &[(&str, &str)]) -> Option<String> {
    let mut rb = c.ok()?.post(fd.url("/apis/authentication.k8s.io/v1/selfsubjectreviews"));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})).send().ok()?;
    if r.status() != 201 {
        return None;
    }
    let v: Value = r.json().ok()?;
    v["status"]["userInfo"]["username"].as_str().map(str::to_string)
}

fn with_cert(fd: &Frontdoor, (crt, key): &(String, String)) -> reqwest::Result<reqwest::blocking::Client> {
    let id = reqwest::Identity::from_pem(format!("{crt}{key}").as_bytes())?;
    client_builder(&fd.certs()).identity(id).build()
}

/// Whether a SubjectAccessReview allows `user` to list pods in default.
fn allowed(fd: &Frontdoor, user: &str) -> bool {
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}}});
    let r = fd.admin_client().post(fd.url("/apis/authorization.k8s.io/v1/subjectaccessreviews")).json(&sar).send();
    let v: Value = r.unwrap().json().unwrap();
    v["status"]["allowed"] == true
}

/// Checks that the versions of round `v` (the last valid one) are in force, and those of
/// round `before` (the valid one before it) no longer.
fn check_in_force(fd: &Frontdoor, v: usize, now: &Credentials, before: Option<&Credentials>, be: &TestBackend) {
    // the authorization configuration: AlwaysAllow last in even rounds, AlwaysDeny in odd ones
    assert_eq!(allowed(fd, "stranger"), v.is_multiple_of(2), "round {v}'s authorization configuration");
    if !v.is_multiple_of(2) {
        assert!(allowed(fd, &format!("abac{v}")), "round {v}'s ABAC policy");
        assert!(!allowed(fd, &format!("abac{}", v - 1)), "round {}'s ABAC policy is gone", v - 1);
    }
    assert_eq!(now.round, v);
    assert_eq!(
        whoami(with_cert(fd, &now.client), fd, &[]).as_deref(),
        Some(format!("cca{v}").as_str()),
        "round {v}'s client CA"
    );
    let rh = |c: &Credentials| whoami(with_cert(fd, &c.proxy), fd, &[("X-Remote-User", &format!("rh{}", c.round))]);
    assert_eq!(rh(now), Some(format!("rh{v}")), "round {v}'s request-header CA");
    let sa = |c: &Credentials| {
        whoami(client_builder(&fd.certs()).build(), fd, &[("Authorization", &format!("Bearer {}", c.token))])
    };
    assert_eq!(sa(now).as_deref(), Some("system:serviceaccount:default:robot"), "round {v}'s service-account key");
    if let Some(b) = before {
        assert_eq!(whoami(with_cert(fd, &b.client), fd, &[]), None, "round {}'s client CA is gone", b.round);
        assert_eq!(rh(b), None, "round {}'s request-header CA is gone", b.round);
        assert_eq!(sa(b), None, "round {}'s service-account key is gone", b.round);
    }
    // the proxy client cert: what the aggregated backend sees on new connections (the query in
    // the order a backend gets it, Go's url.Values.Encode: keys sorted)
    let marker = format!("{FLUNDERS}?check=1&round={v}");
    let admin = fd.admin_client();
    wait_until(&format!("round {v}'s proxy client cert at the backend"), Duration::from_secs(20), || {
        admin.get(fd.url(&marker)).send().is_ok_and(|r| r.status() == 200)
            && be.last(&marker).is_some_and(|s| s.client_cn == format!("fpc-{v}"))
    });
}

/// Writes then renames, as editors and config management do.
fn put(root: &Path, file: &str, text: &str) {
    let p = root.join(file);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, p).unwrap();
}

/// A new serving certificate for 127.0.0.1 from the dev CA.
fn serving_cert(certs: &Path) -> (String, String) {
    let (ca, ca_key) = ca_from(certs, "ca");
    let p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    (p.signed_by(&key, &ca, &ca_key).unwrap().pem(), key.serialize_pem())
}

/// Writes a cert and key (as `crt_name`, `key_name`) into `dir/..vN` and points `dir/..data`
/// at it with one rename, as a Secret volume swaps them.
fn swap_pair(dir: &Path, n: usize, (crt_name, key_name): (&str, &str), crt: &str, key: &str) {
    let v = dir.join(format!("..v{n}"));
    std::fs::create_dir_all(&v).unwrap();
    std::fs::write(v.join(crt_name), crt).unwrap();
    std::fs::write(v.join(key_name), key).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..v{n}"), &tmp).unwrap();
    std::fs::rename(tmp, dir.join("..data")).unwrap();
}

/// Makes `dir/crt_name` and `dir/key_name` symlinks through `..data` (after a first `swap_pair`).
fn link_pair(dir: &Path, names: [&str; 2]) {
    for f in names {
        let link = dir.join(format!("{f}.link"));
        std::os::unix::fs::symlink(format!("..data/{f}"), &link).unwrap();
        std::fs::rename(link, dir.join(f)).unwrap();
    }
}

/// `frontdoor_policy_reload_total` by (policy, result).
fn reloads(fd: &Frontdoor) -> BTreeMap<(String, String), u64> {
    let text = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
    let mut out = BTreeMap::new();
    for l in text.lines().filter(|l| l.starts_with("frontdoor_policy_reload_total{")) {
        let label = |name: &str| {
            l.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string()
        };
        let v = l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        out.insert((label("policy"), label("result")), v);
    }
    out
}

fn count(m: &BTreeMap<(String, String), u64>, policy: &str, result: &str) -> u64 {
    m.get(&(policy.to_string(), result.to_string())).copied().unwrap_or(0)
}

/// One valid round's client CA, request-header CA, service-account key and proxy cert files
/// (with the dev CAs they keep trusting), and the credentials they accept.
fn write_certs(root: &Path, certs: &Path, i: usize, uid: &str) -> Credentials {
    let (client_ca, ca, ca_key) = new_ca(&format!("client-ca-{i}"));
    let dev_ca = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
    put(root, "client-ca.crt", &format!("{dev_ca}{client_ca}"));
    let client = client_cert(&ca, &ca_key, &format!("cca{i}"));
    let (rh_ca, ca, ca_key) = new_ca(&format!("requestheader-ca-{i}"));
    let dev_fp = std::fs::read_to_string(certs.join("front-proxy-ca.crt")).unwrap();
    put(root, "requestheader-ca.crt", &format!("{dev_fp}{rh_ca}"));
    let proxy = client_cert(&ca, &ca_key, "front-proxy-client");
    let sa = KeyPair::generate().unwrap();
    put(root, "sa-rotating.pub", &sa.public_key_pem());
    let token = sa_token(&sa, uid);
    // the proxy client cert, from the dev front-proxy CA the backend trusts
    let (fp_ca, fp_key) = ca_from(certs, "front-proxy-ca");
    let (crt, key) = client_cert(&fp_ca, &fp_key, &format!("fpc-{i}"));
    swap_pair(&root.join("proxy"), i, ("tls.crt", "tls.key"), &crt, &key);
    Credentials { round: i, client, proxy, token }
}

/// Every tenth round: each of those files replaced by something that does not load.
fn break_certs(root: &Path, i: usize) {
    put(root, "client-ca.crt", "not a certificate\n");
    put(root, "requestheader-ca.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    put(root, "sa-rotating.pub", "not a key\n");
    let key = std::fs::read_to_string(root.join("proxy/tls.key")).unwrap();
    swap_pair(&root.join("proxy"), i, ("tls.crt", "tls.key"), "not a certificate", &key);
}

fn run(rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let certs = root.join("certs");
    certs_init(&certs);
    // an aggregated backend that records the client cert frontdoor presents
    let pki = backend::pki(&["api.wardle.svc"]);
    let be = TestBackend::start(&pki, &certs.join("front-proxy-ca.crt"));
    let fixture = Fixture { wardle: apiservice(GROUP, "v1alpha1", 1000, 15, "wardle/api", &pki.ca_pem) };
    for (_, file, valid, _) in POLICIES {
        put(&root, file, &valid(0, &fixture));
    }
    // round 0 of the CA and key files, for a service account made once frontdoor runs
    let mut creds = write_certs(&root, &certs, 0, "none-yet");
    link_pair(&root.join("proxy"), ["tls.crt", "tls.key"]);
    let p = |f: &str| root.join(f).display().to_string();
    let ep = format!("wardle/api:443=127.0.0.1:{}", be.port);
    let fd = Arc::new(Frontdoor::start_in(
        dir,
        &[
            "--authentication-config",
            &p("authn.yaml"),
            "--authorization-config",
            &p("authz.yaml"),
            "--audit-log-path",
            &p("audit.log"),
            "--client-ca-file",
            &p("client-ca.crt"),
            "--requestheader-client-ca-file",
            &p("requestheader-ca.crt"),
            "--service-account-key-file",
            &p("certs/sa.pub"),
            "--service-account-key-file",
            &p("sa-rotating.pub"),
            "--service-account-signing-key-file",
            &p("certs/sa.key"),
            "--proxy-client-cert-file",
            &p("proxy/tls.crt"),
            "--proxy-client-key-file",
            &p("proxy/tls.key"),
            "--service-endpoint",
            &ep,
            "--apiservice-check-interval",
            "500ms",
        ],
    ));
    issue_user(&fd, "alice", "alice", &[]);
    let robot: Value = fd
        .admin_client()
        .post(fd.url("/api/v1/namespaces/default/serviceaccounts"))
        .json(&json!({"metadata": {"name": "robot"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let uid = robot["metadata"]["uid"].as_str().unwrap().to_string();
    let sa = KeyPair::generate().unwrap();
    put(&root, "sa-rotating.pub", &sa.public_key_pem());
    creds.token = sa_token(&sa, &uid);
    wait_until("the service account's key", Duration::from_secs(10), || {
        let bearer = format!("Bearer {}", creds.token);
        whoami(client_builder(&fd.certs()).build(), &fd, &[("Authorization", &bearer)]).is_some()
    });
    check_in_force(&fd, 0, &creds, None, &be);

    let certs = fd.certs();
    // the serving cert and key change together, as a Secret volume swaps them: both files are
    // symlinks through `..data`, which is renamed over in one step
    let mut last_key = std::fs::read_to_string(certs.join("apiserver.key")).unwrap();
    let crt = std::fs::read_to_string(certs.join("apiserver.crt")).unwrap();
    swap_pair(&certs, 0, ("apiserver.crt", "apiserver.key"), &crt, &last_key);
    link_pair(&certs, ["apiserver.crt", "apiserver.key"]);

    // the load: alice (client cert) and bob (token) read a configmap every valid RBAC allows,
    // new connections each time for half the clients (so each sees the serving cert in force)
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (fd, stop, sent, failed, failures) =
                (fd.clone(), stop.clone(), sent.clone(), failed.clone(), failures.clone());
            std::thread::spawn(move || {
                let client = || {
                    if w % 2 == 0 {
                        fd.client_with_cert("alice")
                    } else {
                        let mut h = reqwest::header::HeaderMap::new();
                        h.insert("Authorization", "Bearer bob-token".parse().unwrap());
                        client_builder(&fd.certs()).default_headers(h).build().unwrap()
                    }
                };
                let mut c = client();
                while !stop.load(Ordering::Relaxed) {
                    if w >= 2 {
                        c = client();
                    }
                    let r = c.get(fd.url("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")).send();
                    sent.fetch_add(1, Ordering::Relaxed);
                    match r {
                        Ok(r) if r.status() == 200 || r.status() == 404 => {}
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            failures.lock().unwrap().push(format!("{:?}", other.map(|r| r.status())));
                        }
                    }
                }
            })
        })
        .collect();

    let labels = || POLICIES.iter().map(|p| p.0).chain(CERTS);
    let started = Instant::now();
    let before = reloads(&fd);
    let mut invalid = 0u64;
    let (mut last_valid, mut previous) = (0, None);
    for i in 1..=rounds {
        let bad = i % 10 == 0;
        invalid += bad as u64;
        let now = reloads(&fd);
        for (_, file, valid, broken) in POLICIES {
            let text = if bad { broken.to_string() } else { valid(i, &fixture) };
            put(&root, file, &text);
        }
        if bad {
            break_certs(&root, i);
        } else {
            previous = Some(std::mem::replace(&mut creds, write_certs(&root, &certs, i, &uid)));
            last_valid = i;
        }
        let (crt, key) = if bad { ("not a certificate".to_string(), last_key.clone()) } else { serving_cert(&certs) };
        last_key = key.clone();
        swap_pair(&certs, i, ("apiserver.crt", "apiserver.key"), &crt, &key);
        // every file's reload is counted (success or failure) before the next round
        wait_until(&format!("round {i}'s reloads"), Duration::from_secs(20), || {
            let after = reloads(&fd);
            labels().all(|p| {
                let r = if bad { "failure" } else { "success" };
                count(&after, p, r) > count(&now, p, r)
            })
        });
        // the last good versions are in force: bob's token (tokens.csv) and alice's and bob's
        // RBAC grant are checked by the load, the serving cert by new connections, the rest here
        assert_eq!(
            fd.client_with_cert("alice").get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap().status(),
            200
        );
        let before_last = if bad { None } else { previous.as_ref() };
        check_in_force(&fd, last_valid, &creds, before_last, &be);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let after = reloads(&fd);
    let mut line = Vec::new();
    for p in labels() {
        let (ok, bad) = (
            count(&after, p, "success") - count(&before, p, "success"),
            count(&after, p, "failure") - count(&before, p, "failure"),
        );
        assert_eq!(bad, invalid, "{p}: every invalid version rejected and counted once");
        assert!(ok >= rounds as u64 - invalid, "{p}: {ok} successful reloads");
        line.push(format!("{p} {ok} ok/{bad} rejected"));
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "reloads under load: {rounds} rounds in {:?}; {}; {sent} requests, {failed} failed",
        started.elapsed(),
        line.join(", ")
    );
    assert!(sent > rounds, "the load ran: {sent}");
    assert_eq!(failed, 0, "failed requests: {:?}", failures.lock().unwrap());
}

#[test]
fn policies_and_serving_cert_reload_under_load() {
    run(std::env::var("RELOAD_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10));
}

#[test]
#[ignore = "long: 100 rounds"]
fn hundred_reloads_under_load() {
    run(std::env::var("RELOAD_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100));
}
