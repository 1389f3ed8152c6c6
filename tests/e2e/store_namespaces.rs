//! Namespace deletion end to end, as kube does it: DELETE marks the namespace Terminating,
//! its content goes in the background, finalizers on content hold it (with kube's status
//! conditions), and it disappears once empty. `kubectl delete -f` of a namespace with its
//! objects and a waiting `kubectl delete ns` both succeed; the collection has no DELETE; two
//! replicas on one etcd both run the deleter without tripping over each other; `kubectl replace
//! --raw .../finalize` unsticks a namespace held by content nobody finalizes.

use crate::common::{stderr, stdout, wait_until, Frontdoor};
use frontdoor::store::etcd::process::EtcdProcess;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Every namespace has its kube-root-ca.crt: the rest is what a test made.
const NOT_ROOT_CA: &str = "metadata.name!=kube-root-ca.crt";

fn write(fd: &Frontdoor, name: &str, text: &str) -> String {
    let p = fd.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn gone(fd: &Frontdoor, what: &[&str]) -> bool {
    let o = fd.kubectl(&[&["get"], what].concat());
    !o.status.success() && stderr(&o).contains("not found")
}

#[test]
fn delete_f_and_waiting_delete_ns_succeed() {
    let fd = Frontdoor::start(&[]);
    let manifest = write(
        &fd,
        "app.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: app\ndata:\n  k: v\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: app\nstringData:\n  p: q\n",
    );
    fd.kubectl_ok(&["apply", "-f", &manifest]);
    let started = Instant::now();
    let out = fd.kubectl_ok(&["delete", "-f", &manifest]);
    for line in ["namespace \"app\" deleted", "configmap \"settings\" deleted", "secret \"creds\" deleted"] {
        assert!(out.contains(line), "{out}");
    }
    assert!(gone(&fd, &["ns", "app"]), "kubectl delete waited for the namespace");
    assert!(started.elapsed() < Duration::from_secs(60));

    // a namespace with content, deleted alone: kubectl waits until it is gone
    fd.kubectl_ok(&["create", "ns", "team"]);
    fd.kubectl_ok(&["-n", "team", "create", "cm", "x", "--from-literal=a=b"]);
    fd.kubectl_ok(&["-n", "team", "create", "sa", "robot"]);
    assert!(fd.kubectl_ok(&["delete", "ns", "team"]).contains("namespace \"team\" deleted"));
    assert!(gone(&fd, &["ns", "team"]));
    assert!(
        fd.kubectl_ok(&["get", "cm", "-A", "-o", "name", "--field-selector", NOT_ROOT_CA]).is_empty(),
        "the content went with it"
    );

    // the collection has no DELETE, and nothing was deleted trying
    let r = fd.admin_client().delete(fd.url("/api/v1/namespaces")).send().unwrap();
    assert_eq!(r.status(), 405);
    let st: Value = r.json().unwrap();
    assert_eq!(st["reason"], "MethodNotAllowed");
    assert!(fd.kubectl_ok(&["get", "ns", "-o", "name"]).contains("namespace/kube-public"));
}

#[test]
fn finalizers_hold_a_terminating_namespace() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["create", "ns", "held"]);
    let cm = write(
        &fd,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  namespace: held\n  finalizers: [example.com/hold]\n",
    );
    fd.kubectl_ok(&["create", "-f", &cm]);
    fd.kubectl_ok(&["delete", "ns", "held", "--wait=false"]);
    let get_ns = || -> Value { serde_json::from_str(&fd.kubectl_ok(&["get", "ns", "held", "-o", "json"])).unwrap() };
    let ns = get_ns();
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());

    // nothing new may be created in it
    let o = fd.kubectl(&["-n", "held", "create", "cm", "late"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "configmaps \"late\" is forbidden: unable to create new content in namespace held because it is being terminated"
        ),
        "{}",
        stderr(&o)
    );

    // the deleter reports what holds it
    let mut conditions = Value::Null;
    wait_until("deletion conditions", Duration::from_secs(30), || {
        conditions = get_ns()["status"]["conditions"].clone();
        conditions.as_array().is_some_and(|c| c.len() == 5)
    });
    let find = |t: &str| conditions.as_array().unwrap().iter().find(|c| c["type"] == t).unwrap().clone();
    assert_eq!(
        find("NamespaceContentRemaining")["message"],
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert_eq!(
        find("NamespaceFinalizersRemaining")["message"],
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    assert!(fd.kubectl_ok(&["describe", "ns", "held"]).contains("SomeFinalizersRemain"));
    assert_eq!(get_ns()["spec"]["finalizers"][0], "kubernetes");

    // the finalize subresource takes only PUT
    let r = fd.admin_client().get(fd.url("/api/v1/namespaces/held/finalize")).send().unwrap();
    assert_eq!(r.status(), 405);

    // the finalizer goes: the object, then the namespace
    fd.kubectl_ok(&[
        "-n",
        "held",
        "patch",
        "cm",
        "keep",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_until("the namespace to go", Duration::from_secs(30), || gone(&fd, &["ns", "held"]));
}

/// The classic unsticking of a namespace held by content nobody finalizes: clearing its
/// spec.finalizers through the finalize subresource removes it at once.
#[test]
fn kubectl_replace_raw_finalize_removes_a_stuck_namespace() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["create", "ns", "stuck"]);
    let cm = write(
        &fd,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  namespace: stuck\n  finalizers: [example.com/never]\n",
    );
    fd.kubectl_ok(&["create", "-f", &cm]);
    fd.kubectl_ok(&["delete", "ns", "stuck", "--wait=false"]);
    let mut ns: Value = serde_json::from_str(&fd.kubectl_ok(&["get", "ns", "stuck", "-o", "json"])).unwrap();
    ns["spec"]["finalizers"] = serde_json::json!([]);
    let f = write(&fd, "ns.json", &ns.to_string());
    let out = fd.kubectl_ok(&["replace", "--raw", "/api/v1/namespaces/stuck/finalize", "-f", &f]);
    let answered: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answered["metadata"]["name"], "stuck");
    assert!(gone(&fd, &["ns", "stuck"]), "finalized and empty of finalizers: removed at once");
}

#[test]
fn replicas_on_etcd_both_run_the_deleter() {
    let etcd_dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(etcd_dir.path()).unwrap();
    let args = ["--etcd-servers", etcd.url.as_str()];
    let a = Frontdoor::start(&args);
    let b = Frontdoor::start(&args);
    for i in 0..3 {
        let n = format!("shared{i}");
        a.kubectl_ok(&["create", "ns", &n]);
        for j in 0..5 {
            b.kubectl_ok(&["-n", &n, "create", "cm", &format!("cm{j}")]);
        }
    }
    // deletes through both replicas at once; each replica's deleter sees every namespace
    // (a delete that comes late may find shared1 gone already: that is kube's NotFound)
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| a.kubectl_ok(&["delete", "ns", "shared0", "shared1", "--wait=false", "--ignore-not-found"]));
        s.spawn(|| b.kubectl_ok(&["delete", "ns", "shared1", "shared2", "--wait=false", "--ignore-not-found"]));
    });
    for i in 0..3 {
        let n = format!("shared{i}");
        wait_until(&n, Duration::from_secs(60), || gone(&a, &["ns", &n]) && gone(&b, &["ns", &n]));
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(stdout(&b.kubectl(&["get", "cm", "-A", "-o", "name", "--field-selector", NOT_ROOT_CA])).is_empty());
    assert!(a.logs().matches("panicked").count() == 0 && b.logs().matches("panicked").count() == 0);
}

/// Every namespace gets the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap
/// (the CA that verifies this server), as kube's serviceaccounts-controller and
/// root-ca-cert-publisher do: the system namespaces at startup, a new one at once, a deleted
/// one back, an edited CA restored; `kubectl create token default` works in a new namespace.
#[test]
fn namespaces_get_their_default_service_account_and_root_ca() {
    let fd = Frontdoor::start(&[]);
    let ca = std::fs::read_to_string(fd.certs().join("ca.crt")).unwrap();
    let cm = |ns: &str| -> Option<Value> {
        let o = fd.kubectl(&["-n", ns, "get", "cm", "kube-root-ca.crt", "-o", "json"]);
        o.status.success().then(|| serde_json::from_slice(&o.stdout).unwrap())
    };
    let sa_uid = |ns: &str| -> Option<String> {
        let o = fd.kubectl(&["-n", ns, "get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
        o.status.success().then(|| stdout(&o))
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        wait_until(ns, Duration::from_secs(10), || cm(ns).is_some() && sa_uid(ns).is_some());
    }
    fd.kubectl_ok(&["create", "ns", "fresh"]);
    wait_until("a new namespace's defaults", Duration::from_secs(10), || {
        cm("fresh").is_some() && sa_uid("fresh").is_some()
    });
    let published = cm("fresh").unwrap();
    assert_eq!(published["data"]["ca.crt"], ca.as_str(), "the serving CA bundle");
    assert!(published["metadata"]["annotations"]["kubernetes.io/description"]
        .as_str()
        .unwrap()
        .starts_with("Contains a CA bundle that can be used to verify the kube-apiserver"));

    // kubectl create token default: a token for the new namespace's default ServiceAccount
    let token = fd.kubectl_ok(&["-n", "fresh", "create", "token", "default"]);
    let review: Value = fd
        .anonymous_client()
        .post(fd.url("/apis/authentication.k8s.io/v1/selfsubjectreviews"))
        .bearer_auth(token.trim())
        .header("Content-Type", "application/json")
        .body(r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "system:serviceaccount:fresh:default", "{review}");

    // deleted: put back (a new object); edited: restored
    let before = sa_uid("fresh").unwrap();
    fd.kubectl_ok(&["-n", "fresh", "delete", "sa", "default"]);
    wait_until("the default ServiceAccount back", Duration::from_secs(10), || {
        sa_uid("fresh").is_some_and(|u| u != before)
    });
    fd.kubectl_ok(&["-n", "fresh", "delete", "cm", "kube-root-ca.crt"]);
    wait_until("the root CA back", Duration::from_secs(10), || cm("fresh").is_some());
    fd.kubectl_ok(&["-n", "fresh", "patch", "cm", "kube-root-ca.crt", "-p", r#"{"data":{"ca.crt":"forged"}}"#]);
    wait_until("the root CA restored", Duration::from_secs(10), || {
        cm("fresh").is_some_and(|c| c["data"]["ca.crt"] == ca.as_str())
    });
    // a terminating namespace gets nothing back
    fd.kubectl_ok(&["delete", "ns", "fresh", "--timeout=30s"]);
    assert!(gone(&fd, &["ns", "fresh"]));
    assert!(fd.logs().matches("panicked").count() == 0);
}

/// kube's status rule for namespaces: the phase follows the deletion, so a status writer
/// cannot mark a live namespace Terminating (which would refuse every create in it), and a
/// status without a phase is Active.
#[test]
fn a_namespaces_phase_follows_its_deletion() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["create", "ns", "live"]);
    let patch = |p: &str| fd.kubectl(&["patch", "ns", "live", "--subresource=status", "--type=merge", "-p", p]);
    let o = patch(r#"{"status":{"phase":"Terminating"}}"#);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("may only be 'Active' if `deletionTimestamp` is empty"), "{}", stderr(&o));
    let o = patch(r#"{"status":{"phase":null}}"#);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fd.kubectl_ok(&["get", "ns", "live", "-o", "jsonpath={.status.phase}"]), "Active");
    fd.kubectl_ok(&["create", "configmap", "c", "-n", "live"]);

    // and a namespace being deleted takes no new content, a service account's token included
    fd.kubectl_ok(&["create", "sa", "held", "-n", "live"]);
    fd.kubectl_ok(&[
        "patch",
        "sa",
        "held",
        "-n",
        "live",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/keep"]}}"#,
    ]);
    fd.kubectl_ok(&["delete", "ns", "live", "--wait=false"]);
    let o = fd.kubectl(&["create", "token", "held", "-n", "live"]);
    assert!(
        stderr(&o).contains("unable to create new content in namespace live because it is being terminated"),
        "{}",
        stderr(&o)
    );
}
