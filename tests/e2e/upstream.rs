//! frontdoor in front of an existing apiserver (`--upstream-apiserver`): a second frontdoor
//! plays the cluster's apiserver, serving everything natively. Requests no APIService and no
//! local resource claims reach it (core group included), its discovery merges with
//! frontdoor's own and follows its changes, it may go down and come back; the user reaches it
//! by request-header (X-Remote-*, the proxy client cert) or by impersonation (frontdoor's own
//! token plus Impersonate-*). Checked with real kubectl and the upstream's audit log.

use crate::common::{share_pki, stderr, stdout, wait_until, Frontdoor, KUBECTL};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Resources the upstream serves beyond frontdoor's defaults (a stand-in for kube's apps group).
const APPS: &str = "- group: apps\n  version: v1\n  resource: deployments\n  kind: Deployment\n  namespaced: true\n  shortNames: [deploy]\n  categories: [all]\n  subresources: [status]\n";
/// What a CRD created upstream adds.
const CRONTABS: &str = "- group: stable.example.com\n  version: v1\n  resource: crontabs\n  kind: CronTab\n  namespaced: true\n  shortNames: [ct]\n";
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: \"\", resources: [configmaps]}]\n- level: None\n";
/// The upstream's grant to frontdoor's own account in impersonation mode (what the README
/// documents) and to alice.
const UPSTREAM_RBAC: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: frontdoor-impersonator}\nrules:\n- apiGroups: [\"\"]\n  resources: [users, groups, serviceaccounts]\n  verbs: [impersonate]\n- apiGroups: [authentication.k8s.io]\n  resources: [\"*\"]\n  verbs: [impersonate]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: frontdoor-impersonator}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: frontdoor-impersonator}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: frontdoor-proxy}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: alice-edit}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: frontdoor-reviewer}\nrules:\n- apiGroups: [authentication.k8s.io]\n  resources: [tokenreviews]\n  verbs: [create]\n- apiGroups: [authorization.k8s.io]\n  resources: [subjectaccessreviews]\n  verbs: [create]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: frontdoor-reviewer}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: frontdoor-reviewer}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: system:frontdoor}\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: frontdoor-proxy}\n";
const ALICE_RBAC: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: alice-edit}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}\n";

/// The upstream: a frontdoor on embedded defaults (it trusts its own front-proxy CA for
/// X-Remote-*), with an audit log of configmap requests.
fn start_upstream(dir: tempfile::TempDir, resources: &str) -> Frontdoor {
    let p = dir.path().to_path_buf();
    std::fs::create_dir_all(p.join("policies/rbac")).unwrap();
    std::fs::write(p.join("policies/rbac/upstream.yaml"), UPSTREAM_RBAC).unwrap();
    std::fs::write(p.join("policies/tokens.csv"), "fd-token,frontdoor-proxy,fd-uid,\n").unwrap();
    std::fs::write(p.join("resources.yaml"), resources).unwrap();
    std::fs::write(p.join("audit-policy.yaml"), AUDIT_POLICY).unwrap();
    let s = |n: &str| p.join(n).to_str().unwrap().to_string();
    let (res, audit, policy) = (s("resources.yaml"), s("audit.log"), s("audit-policy.yaml"));
    Frontdoor::start_in(dir, &["--resources-file", &res, "--audit-log-path", &audit, "--audit-policy-file", &policy])
}

/// A second start of the upstream at the same port, data and certs (after a "crash").
fn restart_upstream(old: &Frontdoor, resources: &str) -> Frontdoor {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    std::fs::create_dir_all(p.join("policies/rbac")).unwrap();
    std::fs::write(p.join("policies/rbac/upstream.yaml"), UPSTREAM_RBAC).unwrap();
    std::fs::write(p.join("policies/tokens.csv"), "fd-token,frontdoor-proxy,fd-uid,\n").unwrap();
    std::fs::write(p.join("resources.yaml"), resources).unwrap();
    let s = |d: &Path, n: &str| d.join(n).to_str().unwrap().to_string();
    std::fs::create_dir_all(p.join("certs")).unwrap();
    for f in std::fs::read_dir(old.certs()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), p.join("certs").join(f.file_name())).unwrap();
    }
    let (res, data) = (s(&p, "resources.yaml"), s(old.dir.path(), "data"));
    Frontdoor::start_on(dir, old.port, &["--resources-file", &res, "--data-dir", &data], Some("info"))
}

/// The front frontdoor: the upstream's CA and front-proxy pair (so the upstream believes its
/// X-Remote-*), a token for alice, `extra` flags naming the upstream.
fn start_front(up: &Frontdoor, extra: &[&str]) -> Frontdoor {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    share_pki(up, &certs);
    std::fs::create_dir_all(dir.path().join("policies/rbac")).unwrap();
    std::fs::write(dir.path().join("policies/tokens.csv"), "alice-token,alice,alice-uid,dev\n").unwrap();
    std::fs::write(dir.path().join("policies/rbac/alice.yaml"), ALICE_RBAC).unwrap();
    let url = format!("https://127.0.0.1:{}", up.port);
    let ca = up.certs().join("ca.crt");
    let mut args = vec!["--upstream-apiserver", &url, "--upstream-apiserver-ca-file", ca.to_str().unwrap()];
    if !extra.contains(&"--upstream-apiserver-refresh-interval") {
        args.extend_from_slice(&["--upstream-apiserver-refresh-interval", "300ms"]);
    }
    args.extend_from_slice(extra);
    let fd = Frontdoor::start_in(dir, &args);
    let admin = fd.admin_client();
    wait_until("the upstream apiserver ready through the front", Duration::from_secs(20), || {
        admin.get(fd.url("/readyz")).send().map(|r| r.status() == 200).unwrap_or(false)
    });
    fd
}

fn ok(fd: &Frontdoor, kubeconfig: &Path, args: &[&str]) -> String {
    let o = crate::common::kubectl(kubeconfig, args);
    assert!(o.status.success(), "kubectl {args:?} failed: {}\n{}", stderr(&o), fd.logs());
    stdout(&o)
}

fn alice_kubeconfig(fd: &Frontdoor) -> PathBuf {
    token_kubeconfig(fd, "alice", "alice-token")
}

/// A kubeconfig for `fd` authenticating with a bearer token only.
fn token_kubeconfig(fd: &Frontdoor, name: &str, token: &str) -> PathBuf {
    let text = std::fs::read_to_string(fd.kubeconfig()).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let cluster = &v["clusters"][0]["cluster"];
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {}\nusers:\n- name: u\n  user: {{token: {token}}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        serde_json::to_string(&serde_json::to_value(cluster).unwrap()).unwrap()
    );
    let p = fd.dir.path().join(format!("{name}.kubeconfig"));
    std::fs::write(&p, kc).unwrap();
    p
}

/// The upstream's audit events reading configmap `name` (a create's objectRef has no name).
fn audited(up: &Frontdoor, name: &str) -> Vec<Value> {
    let read = || {
        let text = std::fs::read_to_string(up.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete" && e["verb"] == "get" && e["objectRef"]["name"] == name)
            .collect::<Vec<_>>()
    };
    // the upstream writes ResponseComplete after the response it audits: under load, a moment
    // after the client has its answer (CI saw none once)
    wait_until("the upstream's audit event", Duration::from_secs(10), || !read().is_empty());
    read()
}

/// `kubectl get -w` in the background: its output so far.
fn watch(kubeconfig: &Path, args: &[&str]) -> (std::process::Child, Arc<Mutex<String>>) {
    let mut child = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let out = child.stdout.take().unwrap();
    let s = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            s.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    (child, seen)
}

#[test]
fn request_header_mode_serves_the_cluster_through_the_front_door() {
    let up = start_upstream(tempfile::tempdir().unwrap(), APPS);
    let fd = start_front(&up, &[]);
    let (kc, upkc) = (fd.kubeconfig(), up.kubeconfig());
    let banner = format!("upstream apiserver: https://127.0.0.1:{} (request-header)", up.port);
    assert!(fd.logs().contains(&banner), "{}", fd.logs());

    // the core group is the upstream's: what is created through the front is there
    ok(&fd, &kc, &["create", "namespace", "team"]);
    ok(&fd, &kc, &["-n", "team", "create", "configmap", "c1", "--from-literal=a=1"]);
    assert!(ok(&up, &upkc, &["-n", "team", "get", "cm", "c1", "-o", "name"]).contains("configmap/c1"));
    ok(&up, &upkc, &["-n", "team", "create", "configmap", "c2"]);
    let got = ok(&fd, &kc, &["-n", "team", "get", "cm", "-o", "name"]);
    assert!(got.contains("configmap/c1") && got.contains("configmap/c2"), "{got}");

    // the upstream learned the user from X-Remote-* (uid included), with the proxy client cert
    let alice = alice_kubeconfig(&fd);
    ok(&fd, &alice, &["-n", "team", "create", "configmap", "by-alice"]);
    ok(&fd, &alice, &["-n", "team", "get", "configmap", "by-alice"]);
    let events = audited(&up, "by-alice");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["user"]["username"], "alice");
    assert_eq!(events[0]["user"]["uid"], "alice-uid");
    assert!(events[0]["user"]["groups"].to_string().contains("dev"), "{}", events[0]);
    assert!(events[0].get("impersonatedUser").is_none());

    // discovery merges the upstream's groups with frontdoor's own (APIServices stay local)
    let res = ok(&fd, &kc, &["api-resources"]);
    for r in ["deployments", "configmaps", "namespaces", "apiservices", "tokenreviews"] {
        assert!(res.contains(r), "{r} missing:\n{res}");
    }
    let apply = fd.dir.path().join("deploy.yaml");
    std::fs::write(&apply, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: team}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: nginx}]\n").unwrap();
    ok(&fd, &kc, &["apply", "-f", apply.to_str().unwrap()]);
    assert!(ok(&up, &upkc, &["-n", "team", "get", "deploy", "web", "-o", "name"]).contains("web"));
    let diff = crate::common::kubectl(&kc, &["diff", "-f", apply.to_str().unwrap()]);
    assert_eq!(diff.status.code(), Some(0), "no difference: {}{}", stdout(&diff), stderr(&diff));
    std::fs::write(&apply, std::fs::read_to_string(&apply).unwrap().replace("replicas: 1", "replicas: 3")).unwrap();
    let diff = crate::common::kubectl(&kc, &["diff", "-f", apply.to_str().unwrap()]);
    assert_eq!(diff.status.code(), Some(1), "{}{}", stdout(&diff), stderr(&diff));
    assert!(stdout(&diff).contains("+  replicas: 3"), "{}", stdout(&diff));

    // a local APIService for the upstream's group (as a real cluster has v1.apps) is served by
    // the upstream, kube-aggregator's local delegate: the group stays, in discovery too
    let local_apps = fd.dir.path().join("v1.apps.yaml");
    std::fs::write(&local_apps, "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.apps}\nspec: {group: apps, version: v1, groupPriorityMinimum: 17800, versionPriority: 15}\n").unwrap();
    ok(&fd, &kc, &["apply", "-f", local_apps.to_str().unwrap()]);
    wait_until("the local APIService in the table", Duration::from_secs(10), || {
        ok(&fd, &kc, &["get", "apiservice", "v1.apps", "-o", "name"]).contains("v1.apps")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(ok(&fd, &kc, &["-n", "team", "get", "deploy", "-o", "name"]).contains("deployment.apps/web"));
    assert!(ok(&fd, &kc, &["api-resources", "--api-group=apps"]).contains("deployments"));
    ok(&fd, &kc, &["delete", "-f", local_apps.to_str().unwrap()]);

    // explain reads the upstream's OpenAPI through the merged index: the same answer as asking
    // the upstream directly (whatever schemas it publishes)
    let explain = |k: &Path| {
        let o = crate::common::kubectl(k, &["explain", "deployments"]);
        (o.status.code(), stdout(&o), stderr(&o))
    };
    assert_eq!(explain(&kc), explain(&upkc));
    let index: Value = fd.admin_client().get(fd.url("/openapi/v3")).send().unwrap().json().unwrap();
    for gv in ["apis/apps/v1", "api/v1", "apis/apiregistration.k8s.io/v1"] {
        assert!(index["paths"][gv].is_object(), "{gv} missing from {index}");
    }

    // /version is the upstream's, frontdoor's own in a header
    let admin = fd.admin_client();
    let r = admin.get(fd.url("/version")).send().unwrap();
    assert!(r.headers().get("x-frontdoor-version").is_some());
    let v: Value = r.json().unwrap();
    let upv: Value = up.admin_client().get(up.url("/version")).send().unwrap().json().unwrap();
    assert_eq!(v, upv);

    // a watch through the front sees a change made upstream, event by event
    let (mut w, seen) = watch(&kc, &["-n", "team", "get", "cm", "-w", "--output-watch-events"]);
    wait_until("the watch's initial list", Duration::from_secs(10), || seen.lock().unwrap().contains("c2"));
    ok(&up, &upkc, &["-n", "team", "create", "configmap", "later"]);
    wait_until("the upstream's change through the watch", Duration::from_secs(10), || {
        seen.lock().unwrap().contains("later")
    });
    // the client goes away mid-stream: a debug line, never an ERROR
    let _ = w.kill();
    let _ = w.wait();
    std::thread::sleep(Duration::from_millis(500));
    let logs = fd.logs();
    assert!(!logs.contains("ERROR"), "{logs}");

    // can-i is answered by frontdoor's own authorizer
    assert_eq!(ok(&fd, &alice, &["auth", "can-i", "create", "configmaps", "-n", "team"]).trim(), "yes");
    let o = crate::common::kubectl(&alice, &["auth", "can-i", "create", "clusterroles"]);
    assert_eq!(stdout(&o).trim(), "no");

    // non-resource paths frontdoor does not serve itself are the upstream's
    let r = admin.get(fd.url("/.well-known/openid-configuration")).send().unwrap();
    let upr = up.admin_client().get(up.url("/.well-known/openid-configuration")).send().unwrap();
    assert_eq!(r.status(), upr.status());
}

#[test]
fn upstream_down_and_back_with_a_new_group() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.yaml");
    std::fs::write(
        &local,
        "- group: local.example.com\n  version: v1\n  resource: gadgets\n  kind: Gadget\n  namespaced: false\n",
    )
    .unwrap();
    let up = start_upstream(dir, APPS);
    let fd = start_front(&up, &["--resources-file", local.to_str().unwrap()]);
    let kc = fd.kubeconfig();
    ok(&fd, &kc, &["create", "configmap", "before"]);
    let gadget = fd.dir.path().join("gadget.yaml");
    std::fs::write(&gadget, "apiVersion: local.example.com/v1\nkind: Gadget\nmetadata: {name: g1}\n").unwrap();
    ok(&fd, &kc, &["create", "-f", gadget.to_str().unwrap()]);
    assert!(!ok(&up, &up.kubeconfig(), &["api-resources"]).contains("gadgets"), "local resources stay local");

    // down: the upstream's routes answer 503 at once, /readyz names the check, frontdoor's own
    // groups keep working
    unsafe {
        libc::kill(up.child.id() as i32, libc::SIGKILL);
    }
    let admin = fd.admin_client();
    wait_until("/readyz failing", Duration::from_secs(10), || {
        admin.get(fd.url("/readyz")).send().map(|r| r.status() == 500).unwrap_or(false)
    });
    let body = admin.get(fd.url("/readyz?verbose")).send().unwrap().text().unwrap();
    assert!(body.contains("[-]upstream-apiserver failed"), "{body}");
    assert!(admin.get(fd.url("/livez")).send().unwrap().status() == 200, "liveness does not follow the upstream");
    let t = Instant::now();
    let r = admin.get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap();
    assert_eq!(r.status(), 503);
    assert!(t.elapsed() < Duration::from_secs(1), "503 at once, not after a timeout: {:?}", t.elapsed());
    let s: Value = r.json().unwrap();
    assert_eq!((s["kind"].as_str(), s["reason"].as_str()), (Some("Status"), Some("ServiceUnavailable")), "{s}");
    assert!(ok(&fd, &kc, &["get", "gadgets", "-o", "name"]).contains("g1"));
    assert!(!fd.logs().contains("ERROR"), "a known-unavailable upstream is no error per request:\n{}", fd.logs());
    ok(&fd, &kc, &["get", "apiservices"]);

    // back, with a new group (a CRD created upstream): it appears without a restart here
    let up2 = restart_upstream(&up, &format!("{APPS}{CRONTABS}"));
    wait_until("/readyz passing again", Duration::from_secs(20), || {
        admin.get(fd.url("/readyz")).send().map(|r| r.status() == 200).unwrap_or(false)
    });
    assert!(ok(&fd, &kc, &["get", "cm", "-o", "name"]).contains("configmap/before"), "the upstream's data is back");
    wait_until("crontabs in the front's discovery", Duration::from_secs(10), || {
        stdout(&crate::common::kubectl(&kc, &["api-resources", "--api-group", "stable.example.com"]))
            .contains("crontabs")
    });
    let ct = fd.dir.path().join("ct.yaml");
    std::fs::write(&ct, "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: c1, namespace: default}\n")
        .unwrap();
    ok(&fd, &kc, &["create", "-f", ct.to_str().unwrap()]);
    assert!(ok(&up2, &up2.kubeconfig(), &["get", "ct", "-o", "name"]).contains("c1"));
}

#[test]
fn impersonation_mode_calls_with_frontdoors_own_token() {
    let up = start_upstream(tempfile::tempdir().unwrap(), APPS);
    let kcfile = up.dir.path().join("frontdoor-upstream.kubeconfig");
    std::fs::write(
        &kcfile,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: up\n  cluster: {{server: 'https://127.0.0.1:{}', certificate-authority: {}}}\nusers:\n- name: fd\n  user: {{token: fd-token}}\ncontexts:\n- name: up\n  context: {{cluster: up, user: fd}}\ncurrent-context: up\n",
            up.port,
            up.certs().join("ca.crt").display()
        ),
    )
    .unwrap();
    // no --upstream-apiserver: the kubeconfig names the server, and selects impersonation
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies/rbac")).unwrap();
    std::fs::write(dir.path().join("policies/tokens.csv"), "alice-token,alice,alice-uid,dev\n").unwrap();
    std::fs::write(dir.path().join("policies/rbac/alice.yaml"), ALICE_RBAC).unwrap();
    let fd = Frontdoor::start_in(
        dir,
        &[
            "--upstream-apiserver-kubeconfig",
            kcfile.to_str().unwrap(),
            "--upstream-apiserver-refresh-interval",
            "300ms",
            "--audit-log-path",
            "-",
            // the upstream's SubjectAccessReview, asked with frontdoor's own token
            "--authorization-mode",
            "Upstream",
        ],
    );
    let admin = fd.admin_client();
    wait_until("the upstream ready", Duration::from_secs(20), || {
        admin.get(fd.url("/readyz")).send().map(|r| r.status() == 200).unwrap_or(false)
    });
    assert!(fd.logs().contains(&format!("upstream apiserver: https://127.0.0.1:{} (impersonation)", up.port)));
    let alice = alice_kubeconfig(&fd);
    assert_eq!(ok(&fd, &alice, &["auth", "can-i", "create", "configmaps"]).trim(), "yes");
    ok(&fd, &alice, &["create", "configmap", "imp"]);
    ok(&fd, &alice, &["get", "configmap", "imp"]);
    let events = audited(&up, "imp");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["user"]["username"], "frontdoor-proxy", "frontdoor's own credential");
    assert_eq!(events[0]["impersonatedUser"]["username"], "alice");
    assert_eq!(events[0]["impersonatedUser"]["uid"], "alice-uid");
    assert!(events[0]["impersonatedUser"]["groups"].to_string().contains("dev"), "{}", events[0]);
    assert!(ok(&fd, &fd.kubeconfig(), &["get", "cm", "-o", "name"]).contains("configmap/imp"));
    let logs = fd.logs();
    assert!(!logs.contains("fd-token"), "frontdoor's credential never reaches its logs or audit");
    // alice may not do what the upstream's RBAC does not grant her
    let o = crate::common::kubectl(&alice, &["get", "clusterroles"]);
    assert!(stderr(&o).contains(r#"User "alice" cannot list resource "clusterroles""#), "{}", stderr(&o));
    // the upstream's service-account tokens, reviewed there with frontdoor's own token
    let kc = fd.kubeconfig();
    ok(&fd, &kc, &["create", "serviceaccount", "robot"]);
    ok(&fd, &kc, &["create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount=default:robot"]);
    let token = ok(&fd, &kc, &["create", "token", "robot"]).trim().to_string();
    assert!(ok(&fd, &token_kubeconfig(&fd, "robot", &token), &["get", "cm", "-o", "name"]).contains("configmap/imp"));
}

#[test]
fn upstream_authorizes_and_verifies_its_service_account_tokens() {
    let up = start_upstream(tempfile::tempdir().unwrap(), APPS);
    // only the upstream's authorization decides (frontdoor's RBAC files are not consulted)
    let fd = start_front(&up, &["--authorization-mode", "Upstream"]);
    let (kc, upkc) = (fd.kubeconfig(), up.kubeconfig());
    let alice = alice_kubeconfig(&fd);
    ok(&fd, &alice, &["create", "configmap", "by-alice"]);
    assert_eq!(ok(&fd, &alice, &["auth", "can-i", "create", "configmaps"]).trim(), "yes");
    let o = crate::common::kubectl(&alice, &["auth", "can-i", "create", "clusterroles"]);
    assert_eq!(stdout(&o).trim(), "no", "{}", stderr(&o));
    let o = crate::common::kubectl(&alice, &["get", "clusterroles"]);
    assert!(
        stderr(&o).contains(r#"User "alice" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#),
        "{}",
        stderr(&o)
    );

    // RBAC objects written through the front land where the authorizer reads them: upstream
    ok(&fd, &kc, &["create", "serviceaccount", "robot"]);
    ok(&fd, &kc, &["create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount=default:robot"]);
    assert!(ok(&up, &upkc, &["get", "rolebinding", "robot-view", "-o", "name"]).contains("robot-view"));

    // a token the upstream issues works through the front door (TokenReview upstream)
    let token = ok(&fd, &kc, &["create", "token", "robot"]).trim().to_string();
    assert!(token.starts_with("eyJ"), "{token}");
    let robot = token_kubeconfig(&fd, "robot", &token);
    assert!(ok(&fd, &robot, &["get", "configmaps", "-o", "name"]).contains("by-alice"));
    let o = crate::common::kubectl(&robot, &["create", "configmap", "nope"]);
    assert!(
        stderr(&o).contains(r#"User "system:serviceaccount:default:robot" cannot create resource "configmaps""#),
        "{}",
        stderr(&o)
    );
    let o = crate::common::kubectl(&token_kubeconfig(&fd, "bad", "not-a-token"), &["get", "configmaps"]);
    assert!(stderr(&o).contains("Unauthorized") || stderr(&o).contains("must be logged in"), "{}", stderr(&o));
}

#[test]
fn streams_and_upgrades_pass_through_unbuffered() {
    // the upstream aggregates wardle to a recording backend; the front knows wardle only from
    // the upstream's discovery
    let s = crate::aggregation::setup(&[]);
    let fd = start_front(&s.fd, &[]);
    let flunders = crate::aggregation::FLUNDERS;
    wait_until("wardle in the front's discovery", Duration::from_secs(10), || {
        stdout(&fd.kubectl(&["api-resources", "--api-group", crate::backend::GROUP])).contains("flunders")
    });

    // exec/attach/port-forward's SPDY and websocket upgrades, echoed through both hops
    for (method, protocol) in [("POST", "SPDY/3.1"), ("GET", "websocket")] {
        let head = crate::aggregation::upgrade_and_echo(&fd, method, protocol).unwrap();
        assert!(head.to_ascii_lowercase().contains(&format!("upgrade: {}", protocol.to_ascii_lowercase())), "{head}");
    }
    let seen = s.be.last(&format!("{flunders}/f1/attach")).unwrap();
    assert_eq!(seen.all("x-remote-user"), vec!["admin"], "the user the front authenticated, through the upstream");

    // a watch's first event arrives while the backend still holds the second
    use std::io::Read;
    let mut r = fd.admin_client().get(fd.url(&format!("{flunders}?watch=true"))).send().unwrap();
    assert_eq!(r.status(), 200);
    let first = crate::common::first_line(&mut r);
    assert!(first.contains("\"f1\"") && !first.contains("\"f2\""), "{first}");
    s.be.release();
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("\"f2\""), "{rest}");
}

/// What the front serves itself beyond its defaults (the upstream does not serve it).
const GADGETS: &str =
    "- group: local.example.com\n  version: v1\n  resource: gadgets\n  kind: Gadget\n  namespaced: false\n";
/// What a backend behind the front serves beyond kube's leases.
const WIDGETS: &str =
    "- group: widgets.example.com\n  version: v1\n  resource: widgets\n  kind: Widget\n  namespaced: true\n";

/// An APIService routing `group`/v1 to the backend `default/be`.
fn to_backend(group: &str, priority: u32) -> String {
    format!("apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1.{group}}}\nspec: {{group: {group}, version: v1, groupPriorityMinimum: {priority}, versionPriority: 15, service: {{namespace: default, name: be, port: 443}}, insecureSkipTLSVerify: true}}\n")
}

/// A client of `fd` as admin that does not follow redirects.
fn no_redirects(fd: &Frontdoor) -> reqwest::blocking::Client {
    fd.client_builder_with_cert("admin")
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn etag_of(r: &reqwest::blocking::Response) -> String {
    r.headers().get("etag").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[test]
fn openapi_merges_the_upstreams_frontdoors_and_a_backends_documents() {
    let up = start_upstream(tempfile::tempdir().unwrap(), APPS);
    // a backend apiserver (a third frontdoor) for coordination.k8s.io/v1 and widgets.example.com/v1,
    // believing the front's X-Remote-*
    let bdir = tempfile::tempdir().unwrap();
    share_pki(&up, &bdir.path().join("certs"));
    std::fs::write(bdir.path().join("widgets.yaml"), WIDGETS).unwrap();
    let widgets = bdir.path().join("widgets.yaml").to_str().unwrap().to_string();
    let be = Frontdoor::start_in(bdir, &["--resources-file", &widgets]);
    let files = up.dir.path();
    std::fs::write(files.join("gadgets.yaml"), GADGETS).unwrap();
    let services = [to_backend("coordination.k8s.io", 16500), to_backend("widgets.example.com", 1000)].join("---\n");
    std::fs::write(files.join("apiservices.yaml"), services).unwrap();
    let (gadgets, apiservices) = (files.join("gadgets.yaml"), files.join("apiservices.yaml"));
    let endpoint = format!("default/be:443=127.0.0.1:{}", be.port);
    let fd = start_front(
        &up,
        &[
            "--resources-file",
            gadgets.to_str().unwrap(),
            "--apiservices-file",
            apiservices.to_str().unwrap(),
            "--service-endpoint",
            &endpoint,
            "--apiservice-check-interval",
            "300ms",
        ],
    );
    let kc = fd.kubeconfig();
    let admin = no_redirects(&fd);
    let get = |path: &str| admin.get(fd.url(path)).send().unwrap();
    let widget_path = "/apis/widgets.example.com/v1/namespaces/{namespace}/widgets";
    wait_until("the backend's documents in /openapi/v2", Duration::from_secs(20), || {
        get("/openapi/v2").json::<Value>().unwrap()["paths"][widget_path].is_object()
    });

    // /openapi/v2: the upstream's, frontdoor's own and the backend's, as kube-aggregator merges them
    let r = get("/openapi/v2");
    assert_eq!(r.status(), 200);
    let etag = etag_of(&r);
    let v2: Value = r.json().unwrap();
    for def in [
        "io.k8s.api.core.v1.ConfigMap",
        "io.k8s.api.coordination.v1.Lease",
        "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService",
    ] {
        assert!(v2["definitions"][def].is_object(), "{def} missing from /openapi/v2");
    }
    for path in [
        "/api/v1/namespaces/{namespace}/configmaps",
        "/apis/local.example.com/v1/gadgets",
        "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
        "/apis/apiregistration.k8s.io/v1/apiservices",
        widget_path,
    ] {
        assert!(v2["paths"][path].is_object(), "{path} missing from /openapi/v2");
    }
    let paths = v2["paths"].as_object().unwrap();
    assert!(!paths.keys().any(|p| p.starts_with("/apis/widgets.example.com/") && p.contains("configmaps")));
    // cached: the same ETag again, and 304 to it
    assert_eq!(etag_of(&get("/openapi/v2")), etag);
    let r = admin.get(fd.url("/openapi/v2")).header("If-None-Match", &etag).send().unwrap();
    assert_eq!(r.status(), 304);

    // kubectl explain reads every side's kinds (from v3; its v2 reader asks for protobuf only)
    for (resource, kind) in [("configmaps", "ConfigMap"), ("leases", "Lease"), ("apiservices", "APIService")] {
        let out = ok(&fd, &kc, &["explain", resource]);
        assert!(out.contains("KIND:") && out.contains(kind), "{resource}: {out}");
    }

    // /openapi/v3: every group-version document named with its hash; the upstream's and the
    // backend's served from frontdoor's cache, even while their servers do not answer
    let index: Value = get("/openapi/v3").json().unwrap();
    let url = |gv: &str| index["paths"][gv]["serverRelativeURL"].as_str().unwrap_or_default().to_string();
    for gv in ["api/v1", "apis/coordination.k8s.io/v1", "apis/widgets.example.com/v1", "apis/local.example.com/v1"] {
        assert!(url(gv).starts_with(&format!("/openapi/v3/{gv}?hash=")), "{gv}: {index}");
    }
    unsafe {
        libc::kill(up.child.id() as i32, libc::SIGSTOP);
        libc::kill(be.child.id() as i32, libc::SIGSTOP);
    }
    for gv in ["api/v1", "apis/coordination.k8s.io/v1", "apis/widgets.example.com/v1"] {
        let r = get(&url(gv));
        assert_eq!(r.status(), 200, "{gv}");
        assert_eq!(r.headers().get("cache-control").unwrap(), "public, immutable");
        let doc: Value = r.json().unwrap();
        assert!(doc["paths"].as_object().unwrap().keys().any(|p| p.starts_with(&format!("/{gv}/"))), "{gv}: {doc}");
        let r = get(&format!("/openapi/v3/{gv}?hash=stale"));
        assert_eq!(r.status(), 301, "a stale hash is redirected to the current one");
        assert_eq!(r.headers().get("location").unwrap().to_str().unwrap(), url(gv));
    }
    assert_eq!(etag_of(&get("/openapi/v2")), etag, "v2 from the cache too");
    unsafe {
        libc::kill(up.child.id() as i32, libc::SIGCONT);
        libc::kill(be.child.id() as i32, libc::SIGCONT);
    }
    let resources = ok(&fd, &kc, &["api-resources"]);
    assert!(resources.contains("widgets") && resources.contains("gadgets"), "{resources}");

    // the backend goes away: its groups leave discovery and both documents
    drop(be);
    wait_until("widgets out of /openapi/v2", Duration::from_secs(20), || {
        !get("/openapi/v2").json::<Value>().unwrap()["paths"][widget_path].is_object()
    });
    let r = admin.get(fd.url("/openapi/v2")).header("If-None-Match", &etag).send().unwrap();
    assert_eq!(r.status(), 200, "a new document, a new ETag");
    assert_ne!(etag_of(&r), etag);
    let index: Value = get("/openapi/v3").json().unwrap();
    assert!(index["paths"].get("apis/widgets.example.com/v1").is_none(), "{index}");
    assert!(index["paths"]["api/v1"].is_object());
    let resources = ok(&fd, &kc, &["api-resources"]);
    assert!(!resources.contains("widgets") && resources.contains("configmaps"), "{resources}");
}

#[test]
fn an_upstream_without_aggregated_discovery_is_read_the_legacy_way() {
    // an old apiserver: /api and /apis answer APIVersions and APIGroupList whatever is asked
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let st =
        Command::new(env!("CARGO_BIN_EXE_frontdoor")).args(["certs", "init", "--dir"]).arg(&certs).status().unwrap();
    assert!(st.success());
    let pki = crate::backend::pki(&["127.0.0.1"]);
    let old = crate::backend::TestBackend::start(&pki, &certs.join("front-proxy-ca.crt"));
    std::fs::write(dir.path().join("old-ca.crt"), &pki.ca_pem).unwrap();
    let url = format!("https://127.0.0.1:{}", old.port);
    let ca = dir.path().join("old-ca.crt").to_str().unwrap().to_string();
    let fd = Frontdoor::start_in(
        dir,
        &[
            "--upstream-apiserver",
            &url,
            "--upstream-apiserver-ca-file",
            &ca,
            "--upstream-apiserver-refresh-interval",
            "300ms",
        ],
    );
    let admin = fd.admin_client();
    wait_until("the legacy upstream ready", Duration::from_secs(20), || {
        admin.get(fd.url("/readyz")).send().map(|r| r.status() == 200).unwrap_or(false)
    });
    fd.wait_for_log("has no aggregated discovery");
    // its groups merge with frontdoor's own, in both forms of discovery
    let res = stdout(&fd.kubectl(&["api-resources"]));
    for r in ["pods", "flunders", "fischers", "apiservices"] {
        assert!(res.contains(r), "{r} missing:\n{res}\n{}", fd.logs());
    }
    let apis: Value = admin.get(fd.url("/apis")).send().unwrap().json().unwrap();
    assert!(apis.to_string().contains("wardle.example.com/v1alpha1"), "{apis}");
    let core: Value = admin.get(fd.url("/api/v1")).send().unwrap().json().unwrap();
    assert!(core.to_string().contains("pods/log"), "{core}");
    // and its requests reach it
    let r = admin.get(fd.url(crate::aggregation::FLUNDERS)).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(old.last(crate::aggregation::FLUNDERS).unwrap().all("x-remote-user"), vec!["admin"]);
    let v: Value = admin.get(fd.url("/version")).send().unwrap().json().unwrap();
    assert_eq!(v["gitVersion"], "v1.26.15-legacy");
}

#[test]
fn token_review_can_be_off_and_both_versions_are_metrics() {
    let up = start_upstream(tempfile::tempdir().unwrap(), APPS);
    let fd = start_front(&up, &["--upstream-apiserver-token-review=false"]);
    let kc = fd.kubeconfig();
    ok(&fd, &kc, &["create", "serviceaccount", "robot"]);
    let upkc = up.kubeconfig();
    ok(&up, &upkc, &["create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount=default:robot"]);
    let token = ok(&fd, &kc, &["create", "token", "robot"]).trim().to_string();
    // the token is good at the upstream, but the front does not ask it
    ok(&up, &token_kubeconfig(&up, "robot", &token), &["get", "configmaps"]);
    let o = crate::common::kubectl(&token_kubeconfig(&fd, "robot", &token), &["get", "configmaps"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Unauthorized") || stderr(&o).contains("must be logged in"), "{}", stderr(&o));

    // frontdoor's own version and the upstream's, as kube's kubernetes_build_info
    let admin = fd.admin_client();
    let ours =
        admin.get(fd.url("/version")).send().unwrap().headers()["x-frontdoor-version"].to_str().unwrap().to_string();
    let theirs: Value = up.admin_client().get(up.url("/version")).send().unwrap().json().unwrap();
    let metrics = admin.get(fd.url("/metrics")).send().unwrap().text().unwrap();
    let line =
        |name: &str| metrics.lines().find(|l| l.starts_with(&format!("{name}{{"))).unwrap_or_default().to_string();
    let own = line("frontdoor_build_info");
    assert!(own.contains(&format!("git_version=\"{ours}\"")) && own.ends_with(" 1"), "{own}");
    assert!(own.contains("major=\"1\"") && own.contains("platform=\"linux/"), "{own}");
    let up_line = line("frontdoor_upstream_apiserver_build_info");
    let want = format!("git_version=\"{}\"", theirs["gitVersion"].as_str().unwrap());
    assert!(up_line.contains(&want) && up_line.ends_with(" 1"), "{up_line}");
}

#[test]
fn a_refused_connection_marks_the_upstream_down_at_once() {
    let up = start_upstream(tempfile::tempdir().unwrap(), APPS);
    // the refresher would not notice for a minute: the failed connection itself tells
    let fd = start_front(&up, &["--upstream-apiserver-refresh-interval", "60s"]);
    let admin = fd.admin_client();
    unsafe {
        libc::kill(up.child.id() as i32, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(200));
    let r = admin.get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap();
    assert_eq!(r.status(), 503);
    let s: Value = r.json().unwrap();
    assert!(s["message"].as_str().unwrap().starts_with("error trying to reach service"), "{s}");
    let t = Instant::now();
    wait_until("/readyz failing", Duration::from_secs(3), || {
        admin.get(fd.url("/readyz")).send().map(|r| r.status() == 500).unwrap_or(false)
    });
    assert!(t.elapsed() < Duration::from_secs(3));
    let t = Instant::now();
    let r = admin.get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap();
    assert_eq!(r.status(), 503);
    assert!(t.elapsed() < Duration::from_secs(1), "503 at once: {:?}", t.elapsed());
    let s: Value = r.json().unwrap();
    assert_eq!(s["message"], "service unavailable", "known unavailable, not dialled: {s}");
    // while down, the refresher retries every second: back without waiting a minute
    let _up2 = restart_upstream(&up, APPS);
    wait_until("/readyz passing again", Duration::from_secs(20), || {
        admin.get(fd.url("/readyz")).send().map(|r| r.status() == 200).unwrap_or(false)
    });
    assert_eq!(admin.get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap().status(), 200);
}

#[test]
fn a_client_leaving_a_proxied_watch_is_a_debug_line() {
    let up = start_upstream(tempfile::tempdir().unwrap(), APPS);
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    share_pki(&up, &certs);
    let url = format!("https://127.0.0.1:{}", up.port);
    let ca = up.certs().join("ca.crt");
    let fd = Frontdoor::start_logging(
        dir,
        &[
            "--upstream-apiserver",
            &url,
            "--upstream-apiserver-ca-file",
            ca.to_str().unwrap(),
            "--upstream-apiserver-refresh-interval",
            "300ms",
        ],
        Some("info,frontdoor=debug"),
    );
    let admin = fd.admin_client();
    wait_until("the upstream ready", Duration::from_secs(20), || {
        admin.get(fd.url("/readyz")).send().map(|r| r.status() == 200).unwrap_or(false)
    });
    fd.kubectl_ok(&["create", "configmap", "first"]);
    let mut w = admin.get(fd.url("/api/v1/namespaces/default/configmaps?watch=true")).send().unwrap();
    assert!(crate::common::first_line(&mut w).contains("first"));
    drop(w);
    // the next events are written to a client that has gone
    for i in 0..5 {
        fd.kubectl_ok(&["create", "configmap", &format!("after-{i}")]);
    }
    wait_until("the debug line", Duration::from_secs(10), || fd.logs().contains("client went away mid-response"));
    let logs = fd.logs();
    assert!(!logs.contains("ERROR"), "{logs}");
}

/// Requests with a tiny `?timeout=` cut their own dials short (a dial runs under the request's
/// deadline): that says nothing about the upstream, which stays available.
#[test]
fn dials_cut_by_a_requests_own_deadline_do_not_mark_the_upstream_down() {
    let up = start_upstream(tempfile::tempdir().unwrap(), APPS);
    let fd = start_front(&up, &["--upstream-apiserver-refresh-interval", "60s"]);
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let codes: Vec<u16> = (0..24)
        .map(|_| {
            let (c, url) = (fd.admin_client(), fd.url(&format!("{path}?timeout=3ms")));
            std::thread::spawn(move || c.get(url).send().map(|r| r.status().as_u16()).unwrap_or(0))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(codes.iter().all(|c| *c == 504 || *c == 200), "kube's timeout or an answer: {codes:?}");
    let admin = fd.admin_client();
    let r = admin.get(fd.url(path)).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    assert_eq!(admin.get(fd.url("/readyz")).send().unwrap().status(), 200);
}
