//! Reloads under load: every hot-reloaded policy file and the serving certificate rewritten
//! round after round (every tenth version invalid) while clients keep sending requests that
//! every valid version allows. No request may fail; each invalid version is rejected and
//! counted in `frontdoor_policy_reload_total{policy,result="failure"}` while the last good
//! one stays in force.
//!
//! The default suite runs 10 rounds; `cargo test --test e2e reload_load -- --ignored` runs
//! 100 (RELOAD_ROUNDS overrides) and prints the figures.

use crate::authz::issue_user;
use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (metric label, file under the temp dir, a valid version of round `i`, an invalid one)
type Versions = (&'static str, &'static str, fn(usize) -> String, &'static str);

fn rbac(i: usize) -> String {
    // alice may always get configmaps; the extra resource changes each round
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: team, namespace: default}}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps, extra{i}]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: team, namespace: default}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: team}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}}\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}}\n"
    )
}

fn audit(i: usize) -> String {
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  users: [nobody{i}]\n- level: Metadata\n"
    )
}

fn tokens(i: usize) -> String {
    format!("bob-token,bob,u-bob\nextra-{i},user{i},u{i}\n")
}

fn authn(i: usize) -> String {
    format!("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {{url: 'https://issuer{i}.example', audiences: [frontdoor]}}\n  claimMappings: {{username: {{claim: sub, prefix: 'oidc:'}}}}\n")
}

fn flowcontrol(i: usize) -> String {
    format!("apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {{name: team}}\nspec:\n  type: Limited\n  limited:\n    nominalConcurrencyShares: {}\n    limitResponse: {{type: Reject}}\n", 10 + i % 5)
}

fn apiservices(i: usize) -> String {
    format!("apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1.x{i}.example.com}}\nspec:\n  group: x{i}.example.com\n  version: v1\n  groupPriorityMinimum: 100\n  versionPriority: 10\n  service: {{namespace: x, name: x, port: 443}}\n  insecureSkipTLSVerify: true\n")
}

const POLICIES: [Versions; 6] = [
    ("rbac", "policies/rbac/team.yaml", rbac, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nsubjects: []\n"),
    ("audit-policy", "policies/audit-policy.yaml", audit, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n"),
    ("token-auth-file", "policies/tokens.csv", tokens, "only-a-token\n"),
    ("authentication-config", "authn.yaml", authn, "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: Nope\n"),
    ("flowcontrol", "policies/flowcontrol/team.yaml", flowcontrol, "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: team}\nspec: [\n"),
    ("apiservices", "policies/apiservices.yaml", apiservices, "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.x.example.com}\nspec: [\n"),
];

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
    use rcgen::{CertificateParams, KeyPair};
    let ca_pem = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca.key")).unwrap()).unwrap();
    let ca = CertificateParams::from_ca_cert_pem(&ca_pem).unwrap().self_signed(&ca_key).unwrap();
    let p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    (p.signed_by(&key, &ca, &ca_key).unwrap().pem(), key.serialize_pem())
}

/// Writes a cert and key into `..vN` and points `..data` at it with one rename.
fn swap_pair(certs: &Path, n: usize, crt: &str, key: &str) {
    let dir = certs.join(format!("..v{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("apiserver.crt"), crt).unwrap();
    std::fs::write(dir.join("apiserver.key"), key).unwrap();
    let tmp = certs.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..v{n}"), &tmp).unwrap();
    std::fs::rename(tmp, certs.join("..data")).unwrap();
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

fn run(rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for (_, file, valid, _) in POLICIES {
        put(&root, file, &valid(0));
    }
    let authn_file = root.join("authn.yaml").display().to_string();
    let log = root.join("audit.log").display().to_string();
    let fd = Arc::new(Frontdoor::start_in(
        dir,
        &["--authentication-config", &authn_file, "--audit-log-path", &log, "--apiservice-check-interval", "1h"],
    ));
    issue_user(&fd, "alice", "alice", &[]);
    let certs = fd.certs();
    // the serving cert and key change together, as a Secret volume swaps them: both files are
    // symlinks through `..data`, which is renamed over in one step
    let mut last_key = std::fs::read_to_string(certs.join("apiserver.key")).unwrap();
    let crt = std::fs::read_to_string(certs.join("apiserver.crt")).unwrap();
    swap_pair(&certs, 0, &crt, &last_key);
    for f in ["apiserver.crt", "apiserver.key"] {
        let link = certs.join(format!("{f}.link"));
        std::os::unix::fs::symlink(format!("..data/{f}"), &link).unwrap();
        std::fs::rename(link, certs.join(f)).unwrap();
    }

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

    let started = Instant::now();
    let before = reloads(&fd);
    let mut invalid = 0u64;
    for i in 1..=rounds {
        let bad = i % 10 == 0;
        invalid += bad as u64;
        let now = reloads(&fd);
        for (_, file, valid, broken) in POLICIES {
            let text = if bad { broken.to_string() } else { valid(i) };
            put(&root, file, &text);
        }
        let (crt, key) = if bad { ("not a certificate".to_string(), last_key.clone()) } else { serving_cert(&certs) };
        last_key = key.clone();
        swap_pair(&certs, i, &crt, &key);
        // every file's reload is counted (success or failure) before the next round
        wait_until(&format!("round {i}'s reloads"), Duration::from_secs(20), || {
            let after = reloads(&fd);
            POLICIES.iter().map(|p| p.0).chain(["serving-cert"]).all(|p| {
                let r = if bad { "failure" } else { "success" };
                count(&after, p, r) > count(&now, p, r)
            })
        });
        if bad {
            // the last good versions stay in force: bob's token (tokens.csv) and alice's and
            // bob's RBAC grant are checked by the load; the serving cert by new connections
            assert_eq!(
                fd.client_with_cert("alice")
                    .get(fd.url("/api/v1/namespaces/default/configmaps"))
                    .send()
                    .unwrap()
                    .status(),
                200
            );
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let after = reloads(&fd);
    let mut line = Vec::new();
    for p in POLICIES.iter().map(|p| p.0).chain(["serving-cert"]) {
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
