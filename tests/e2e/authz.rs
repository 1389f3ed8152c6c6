//! Authorization through the real binary: RBAC by default with kube's bootstrap policy,
//! kube's 403 wording, `kubectl auth can-i [--list]`, the review APIs, policy hot reload
//! under continuous traffic, and the metrics.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Issues a client certificate for `cn` (groups `orgs`) from the dev CA, as `<certs>/<name>.crt/.key`,
/// and a kubeconfig for it; returns the kubeconfig path.
pub(crate) fn issue_user(fd: &Frontdoor, name: &str, cn: &str, orgs: &[&str]) -> PathBuf {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let certs = fd.certs();
    let ca_pem = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca.key")).unwrap()).unwrap();
    let ca = CertificateParams::from_ca_cert_pem(&ca_pem).unwrap().self_signed(&ca_key).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    for o in orgs {
        p.distinguished_name.push(DnType::OrganizationName, *o);
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(certs.join(format!("{name}.crt")), cert.pem()).unwrap();
    std::fs::write(certs.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    let kc = certs.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fd\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\nusers:\n- name: {name}\n  user:\n    client-certificate: {crt}\n    client-key: {key}\ncontexts:\n- name: fd\n  context: {{cluster: fd, user: {name}, namespace: default}}\ncurrent-context: fd\n",
            port = fd.port,
            ca = certs.join("ca.crt").display(),
            crt = certs.join(format!("{name}.crt")).display(),
            key = certs.join(format!("{name}.key")).display(),
        ),
    )
    .unwrap();
    kc
}

pub(crate) fn write_policy(dir: &Path, file: &str, text: &str) {
    let rbac = dir.join("policies/rbac");
    std::fs::create_dir_all(&rbac).unwrap();
    // write-then-rename, as editors and config management do
    let tmp = rbac.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, rbac.join(file)).unwrap();
}

fn role_binding(user: &str, ns: &str, resources: &[&str], verbs: &[&str]) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: r-{user}, namespace: {ns}}}\nrules:\n- apiGroups: [\"\"]\n  resources: {resources:?}\n  verbs: {verbs:?}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: rb-{user}, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: r-{user}}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}\n"
    )
}

/// An admin SubjectAccessReview: may `user` `verb` `resource` in `ns`?
fn sar(fd: &Frontdoor, admin: &reqwest::blocking::Client, user: &str, verb: &str, resource: &str, ns: &str) -> bool {
    let body = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:authenticated"], "resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}}
    });
    let r = admin.post(fd.url("/apis/authorization.k8s.io/v1/subjectaccessreviews")).json(&body).send().unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().unwrap();
    v["status"]["allowed"].as_bool().unwrap()
}

#[test]
fn forbidden_requests_get_kubes_exact_message() {
    let fd = Frontdoor::start(&[]);
    issue_user(&fd, "alice", "alice", &["developers"]);
    let alice = fd.client_with_cert("alice");
    let cases = [
        (
            "/api/v1/namespaces/default/configmaps/x",
            r#"configmaps "x" is forbidden: User "alice" cannot get resource "configmaps" in API group "" in the namespace "default""#,
        ),
        (
            "/apis/apps/v1/deployments",
            r#"deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" at the cluster scope"#,
        ),
        (
            "/api/v1/namespaces/default/pods/p/log",
            r#"pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace "default""#,
        ),
        ("/metrics", r#"forbidden: User "alice" cannot get path "/metrics""#),
    ];
    for (path, want) in cases {
        let r = alice.get(fd.url(path)).send().unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "Forbidden");
        assert_eq!(v["code"], 403);
        assert_eq!(v["message"], want, "{path}");
    }
    // kubectl prints it as is (raw, as resource discovery is not this module's)
    let kc = fd.certs().join("alice.kubeconfig");
    let o = kubectl(&kc, &["get", "--raw", "/api/v1/namespaces/default/configmaps/x"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(r#"Error from server (Forbidden): configmaps "x" is forbidden: User "alice" cannot get resource "configmaps" in API group "" in the namespace "default""#),
        "{}",
        stderr(&o)
    );
    // bootstrap policy: discovery and public info are open to her, anonymous gets only public info
    assert_ne!(alice.get(fd.url("/apis")).send().unwrap().status(), 403);
    let anon = fd.anonymous_client();
    assert_eq!(anon.get(fd.url("/version")).send().unwrap().status(), 200);
    let r = anon.get(fd.url("/apis")).send().unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["message"],
        r#"forbidden: User "system:anonymous" cannot get path "/apis""#
    );
    // admin (system:masters) is allowed everything
    assert_ne!(fd.admin_client().get(fd.url("/api/v1/namespaces/default/configmaps/x")).send().unwrap().status(), 403);
}

/// A webhook that cannot be reached is kube's 500 for a request nothing else allows, while RBAC
/// after it still allows what it allows, and system:masters never reaches the chain.
#[test]
fn failed_webhook_is_an_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    std::fs::write(
        dir.path().join("webhook.kubeconfig"),
        format!("clusters:\n- name: w\n  cluster: {{server: \"https://127.0.0.1:{closed}/\", insecure-skip-tls-verify: true}}\n"),
    )
    .unwrap();
    let kc = dir.path().join("webhook.kubeconfig").display().to_string();
    let fd =
        Frontdoor::start_in(dir, &["--authorization-mode", "Webhook,RBAC", "--authorization-webhook-config-file", &kc]);
    issue_user(&fd, "alice", "alice", &[]);
    let alice = fd.client_with_cert("alice");
    let r = alice.get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap();
    assert_eq!(r.status(), 500);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "InternalError");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with(r#"Internal Server Error: "/api/v1/namespaces/default/configmaps": authorization webhook"#),
        "{message}"
    );
    // RBAC's bootstrap policy lets any authenticated user read /version after the webhook failed
    assert_eq!(alice.get(fd.url("/version")).send().unwrap().status(), 200);
    assert_eq!(fd.admin_client().get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap().status(), 200);
}

/// `--authorization-config` reloads in place, as kube's does: a changed chain takes effect, RBAC
/// added by a reload sees the bindings already stored, and a bad file keeps the running chain.
#[test]
fn authorization_config_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("authz.yaml");
    let tmp = dir.path().join(".authz.yaml.tmp");
    let write = |text: &str| {
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    let config = |types: &[&str]| {
        let mut s =
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n".to_string();
        for t in types {
            s += &format!("- type: {t}\n  name: {}\n", t.to_lowercase());
        }
        s
    };
    write(&config(&["AlwaysDeny"]));
    let path = file.display().to_string();
    let fd = Frontdoor::start_in(dir, &["--authorization-config", &path]);
    issue_user(&fd, "dora", "dora", &[]);
    let dora = fd.client_with_cert("dora");
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    assert_eq!(dora.get(&cms).send().unwrap().status(), 403);
    // a binding stored while RBAC is not in the chain
    let o = fd.kubectl(&["create", "rolebinding", "dora-view", "--clusterrole=view", "--user=dora", "-n", "default"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(dora.get(&cms).send().unwrap().status(), 403);

    write(&config(&["RBAC", "AlwaysDeny"]));
    wait_until("RBAC to join the chain", Duration::from_secs(10), || dora.get(&cms).send().unwrap().status() == 200);
    assert_eq!(dora.get(fd.url("/api/v1/namespaces/kube-system/configmaps")).send().unwrap().status(), 403);

    write("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers: []\n");
    let failed = "apiserver_authorization_config_controller_automatic_reloads_total{apiserver_id_hash=\"sha256:";
    wait_until("the failed reload to be counted", Duration::from_secs(10), || {
        metrics(&fd).lines().any(|l| l.starts_with(failed) && l.contains("status=\"failure\"} 1"))
    });
    assert!(fd.logs().contains("at least one authorization mode must be defined"), "{}", fd.logs());
    assert_eq!(dora.get(&cms).send().unwrap().status(), 200, "the running chain stays");
    assert!(metrics(&fd).lines().any(|l| l.starts_with(failed) && l.contains("status=\"success\"} 1")));
}

#[test]
fn kubectl_auth_can_i_and_list() {
    let dir = tempfile::tempdir().unwrap();
    write_policy(
        dir.path(),
        "alice.yaml",
        &role_binding("alice", "team", &["configmaps", "pods/log"], &["get", "list"]),
    );
    let fd = Frontdoor::start_in(dir, &[]);
    let kc = issue_user(&fd, "alice", "alice", &[]);

    let o = fd.kubectl(&["auth", "can-i", "create", "deployments", "-n", "anywhere"]);
    assert_eq!(stdout(&o).trim(), "yes", "admin: {}", stderr(&o));
    assert!(o.status.success());

    let o = kubectl(&kc, &["auth", "can-i", "get", "configmaps", "-n", "team"]);
    assert_eq!(stdout(&o).trim(), "yes", "{}", stderr(&o));
    let o = kubectl(&kc, &["auth", "can-i", "get", "pods", "--subresource", "log", "-n", "team"]);
    assert_eq!(stdout(&o).trim(), "yes", "{}", stderr(&o));
    let o = kubectl(&kc, &["auth", "can-i", "delete", "configmaps", "-n", "team"]);
    assert_eq!(stdout(&o).trim(), "no");
    assert_eq!(o.status.code(), Some(1), "kubectl exits 1 on no");
    let o = kubectl(&kc, &["auth", "can-i", "get", "configmaps", "-n", "default"]);
    assert_eq!(stdout(&o).trim(), "no");
    let o = kubectl(&kc, &["auth", "can-i", "get", "/apis/apps"]);
    assert_eq!(stdout(&o).trim(), "yes", "bootstrap discovery: {}", stderr(&o));

    let o = kubectl(&kc, &["auth", "can-i", "--list", "-n", "team"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("configmaps") && out.contains("pods/log"), "{out}");
    assert!(out.contains("selfsubjectaccessreviews.authorization.k8s.io"), "{out}");
    assert!(out.contains("/apis/*"), "{out}");
    let o = kubectl(&kc, &["auth", "can-i", "--list", "-n", "default"]);
    assert!(!stdout(&o).contains("pods/log"), "{}", stdout(&o));
    let o = fd.kubectl(&["auth", "can-i", "--list"]);
    assert!(stdout(&o).contains("*.*"), "admin is cluster-admin: {}", stdout(&o));
}

#[test]
fn kubectl_auth_can_i_as_another_user() {
    let dir = tempfile::tempdir().unwrap();
    write_policy(dir.path(), "bob.yaml", &role_binding("bob", "default", &["secrets"], &["get"]));
    let fd = Frontdoor::start_in(dir, &[]);
    let o = fd.kubectl(&["auth", "can-i", "get", "secrets", "--as", "bob"]);
    assert_eq!(stdout(&o).trim(), "yes", "{}", stderr(&o));
    let o = fd.kubectl(&["auth", "can-i", "get", "secrets", "--as", "carol"]);
    assert_eq!(stdout(&o).trim(), "no", "{}", stderr(&o));
    let o = fd.kubectl(&["auth", "can-i", "get", "secrets", "--as", "carol", "--as-group", "system:masters"]);
    assert_eq!(stdout(&o).trim(), "yes", "{}", stderr(&o));
}

#[test]
fn review_apis() {
    let dir = tempfile::tempdir().unwrap();
    write_policy(dir.path(), "bob.yaml", &role_binding("bob", "team", &["secrets"], &["get"]));
    let fd = Frontdoor::start_in(dir, &[]);
    let admin = fd.admin_client();
    assert!(sar(&fd, &admin, "bob", "get", "secrets", "team"));
    assert!(!sar(&fd, &admin, "bob", "get", "secrets", "other"));

    // the allowed reason names the binding, as kube's RBAC does
    let body = serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
        "spec": {"user": "bob", "resourceAttributes": {"namespace": "team", "verb": "get", "resource": "secrets"}}});
    let r = admin
        .post(fd.url("/apis/authorization.k8s.io/v1/namespaces/team/localsubjectaccessreviews"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["status"]["reason"], r#"RBAC: allowed by RoleBinding "rb-bob/team" of Role "r-bob" to User "bob""#);
    assert_eq!(v["metadata"]["namespace"], "team");
    let r = admin
        .post(fd.url("/apis/authorization.k8s.io/v1/namespaces/other/localsubjectaccessreviews"))
        .json(&body)
        .send()
        .unwrap();
    // kube sets the review's namespace from the URL, then validates (422)
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["message"],
        "LocalSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes.namespace: Invalid value: \"team\": must match metadata.namespace"
    );

    // validation, in kube's words
    let r = admin
        .post(fd.url("/apis/authorization.k8s.io/v1/subjectaccessreviews"))
        .json(&serde_json::json!({"kind": "SubjectAccessReview", "spec": {"resourceAttributes": {"verb": "get"}}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    let m = r.json::<serde_json::Value>().unwrap()["message"].as_str().unwrap().to_string();
    assert!(m.starts_with("SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user"), "{m}");

    // an authenticated user may review herself but not others; anonymous may do neither
    issue_user(&fd, "carol", "carol", &[]);
    let carol = fd.client_with_cert("carol");
    let ssar = serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"nonResourceAttributes": {"path": "/apis", "verb": "get"}}});
    let r = carol.post(fd.url("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")).json(&ssar).send().unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["status"]["allowed"], true);
    let r = carol.post(fd.url("/apis/authorization.k8s.io/v1/subjectaccessreviews")).json(&body).send().unwrap();
    assert_eq!(r.status(), 403);
    let r = fd
        .anonymous_client()
        .post(fd.url("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"))
        .json(&ssar)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = admin.get(fd.url("/apis/authorization.k8s.io/v1/subjectaccessreviews")).send().unwrap();
    assert_eq!(r.status(), 405);
}

#[test]
fn reload_under_traffic_keeps_serving_and_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    write_policy(dir.path(), "team.yaml", &role_binding("alice", "default", &["configmaps"], &["get"]));
    let root = dir.path().to_path_buf();
    let fd = Arc::new(Frontdoor::start_in(dir, &[]));
    issue_user(&fd, "alice", "alice", &[]);
    let admin = fd.admin_client();
    assert!(sar(&fd, &admin, "alice", "get", "configmaps", "default"));
    assert!(!sar(&fd, &admin, "alice", "get", "secrets", "default"));

    // continuous traffic on a request both the old and the new policy allow
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (fd, stop, sent, refused) = (fd.clone(), stop.clone(), sent.clone(), refused.clone());
            std::thread::spawn(move || {
                let alice = fd.client_with_cert("alice");
                while !stop.load(Ordering::Relaxed) {
                    let r = alice.get(fd.url("/api/v1/namespaces/default/configmaps/settings")).send();
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !matches!(r, Ok(ref r) if r.status() != 403 && r.status().as_u16() < 500) {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    // new policy: still configmaps, now secrets too
    std::thread::sleep(Duration::from_millis(300));
    write_policy(&root, "team.yaml", &role_binding("alice", "default", &["configmaps", "secrets"], &["get"]));
    wait_until("the new policy", Duration::from_secs(10), || sar(&fd, &admin, "alice", "get", "secrets", "default"));

    // a bad file keeps its previous version (here: none), the rest of the policy stays
    let failures_before = reload_failures(&fd);
    write_policy(
        &root,
        "broken.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nsubjects: []\n",
    );
    wait_until("the failed reload to be counted", Duration::from_secs(10), || reload_failures(&fd) > failures_before);
    fd.wait_for_log("roleRef.name: Required value");
    assert!(fd.logs().contains("broken.yaml"), "{}", fd.logs());
    write_policy(&root, "broken.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: Rolez\nmetadata: {name: x}\n");
    wait_until("the second failed reload", Duration::from_secs(10), || reload_failures(&fd) > failures_before + 1);
    fd.wait_for_log("unknown kind");
    write_policy(&root, "broken.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\nrules: [{apiGroups: [''], resources: [pods]}]\n");
    wait_until("the third failed reload", Duration::from_secs(10), || reload_failures(&fd) > failures_before + 2);
    fd.wait_for_log("verbs must contain at least one value");
    assert!(sar(&fd, &admin, "alice", "get", "secrets", "default"), "the last good policy is still in force");
    std::fs::remove_file(root.join("policies/rbac/broken.yaml")).unwrap();

    // an object defined twice fails the reload whole: the copy's wider grant never applies, and
    // the store's mirror of the files is not rewritten over and over
    let rv = |fd: &Frontdoor| -> u64 {
        let l: serde_json::Value =
            admin.get(fd.url("/apis/rbac.authorization.k8s.io/v1/rolebindings")).send().unwrap().json().unwrap();
        l["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
    };
    let failures = reload_failures(&fd);
    write_policy(
        &root,
        "team-copy.yaml",
        &role_binding("alice", "default", &["configmaps", "secrets"], &["get", "list"]),
    );
    wait_until("the duplicate's failed reload", Duration::from_secs(10), || reload_failures(&fd) > failures);
    fd.wait_for_log("Role default/r-alice is defined in both");
    let before = rv(&fd);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rv(&fd), before, "the store is not rewritten");
    assert!(!sar(&fd, &admin, "alice", "list", "secrets", "default"), "the copy's grant is not in force");
    std::fs::remove_file(root.join("policies/rbac/team-copy.yaml")).unwrap();

    // a FIFO with a manifest's name fails its reload naming it (it would block the reader), and
    // links to `.` are walked once: a change beside them still applies
    let failures = reload_failures(&fd);
    let fifo = root.join("policies/rbac/pipe.yaml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    wait_until("the FIFO's failed reload", Duration::from_secs(10), || reload_failures(&fd) > failures);
    fd.wait_for_log("pipe.yaml: not a regular file");
    std::fs::remove_file(&fifo).unwrap();
    for l in ["self", "self2"] {
        std::os::unix::fs::symlink(".", root.join("policies/rbac").join(l)).unwrap();
    }
    write_policy(&root, "team.yaml", &role_binding("alice", "default", &["configmaps"], &["get"]));
    wait_until("the revocation beside the links", Duration::from_secs(10), || {
        !sar(&fd, &admin, "alice", "get", "secrets", "default")
    });

    // a file written in place is read once its writer closes it: its first half (the Role
    // without its binding) never revokes alice's configmaps meanwhile
    let policy = role_binding("alice", "default", &["configmaps", "pods"], &["get"]);
    let (role, binding) = policy.split_at(policy.find("---").unwrap());
    let mut f =
        std::fs::OpenOptions::new().write(true).truncate(true).open(root.join("policies/rbac/team.yaml")).unwrap();
    std::io::Write::write_all(&mut f, role.as_bytes()).unwrap();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        assert!(sar(&fd, &admin, "alice", "get", "configmaps", "default"), "the half-written file was taken");
    }
    std::io::Write::write_all(&mut f, binding.as_bytes()).unwrap();
    drop(f);
    wait_until("the whole file", Duration::from_secs(10), || sar(&fd, &admin, "alice", "get", "pods", "default"));

    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > 20, "traffic ran: {}", sent.load(Ordering::Relaxed));
    assert_eq!(refused.load(Ordering::Relaxed), 0, "no request allowed by both policies failed");
}

fn metrics(fd: &Frontdoor) -> String {
    fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap()
}

fn reload_failures(fd: &Frontdoor) -> u64 {
    metrics(fd)
        .lines()
        .find(|l| {
            l.starts_with("frontdoor_policy_reload_total{")
                && l.contains("policy=\"rbac\"")
                && l.contains("result=\"failure\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn decisions_are_counted_with_kubes_metric_names() {
    let fd = Frontdoor::start(&[]);
    let m = metrics(&fd);
    assert!(m.contains("# TYPE authorization_attempts_total counter"), "registered at startup");
    assert!(m.contains("# TYPE authorization_duration_seconds histogram"));
    let _ = fd.anonymous_client().get(fd.url("/apis")).send().unwrap();
    let _ = fd.anonymous_client().get(fd.url("/version")).send().unwrap();
    let m = metrics(&fd);
    assert!(m.contains("authorization_attempts_total{result=\"no-opinion\"}"), "{m}");
    assert!(m.contains("authorization_attempts_total{result=\"allowed\"}"), "{m}");
    assert!(
        m.contains("apiserver_authorization_decisions_total{decision=\"allowed\",name=\"rbac\",type=\"RBAC\"}"),
        "{m}"
    );
}
