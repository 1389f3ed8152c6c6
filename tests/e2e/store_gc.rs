//! Garbage collection of ownerReferences, as kube's garbage collector does it, driven with
//! kubectl's `--cascade` (background, foreground, orphan): dependents of a deleted owner go,
//! a foreground owner waits (with `foregroundDeletion`) for its blocking dependents, an
//! orphaned dependent loses its ownerReference, a dependent naming an owner of another uid
//! is collected; on one etcd two replicas both run the collector.

use crate::common::{stderr, wait_until, Frontdoor};
use frontdoor::store::etcd::process::EtcdProcess;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn get(fd: &Frontdoor, ns: &str, what: &str) -> Option<Value> {
    let o = fd.kubectl(&["-n", ns, "get", what, "-o", "json"]);
    if !o.status.success() {
        assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
        return None;
    }
    Some(serde_json::from_slice(&o.stdout).unwrap())
}

fn uid(fd: &Frontdoor, ns: &str, what: &str) -> String {
    get(fd, ns, what).unwrap()["metadata"]["uid"].as_str().unwrap().to_string()
}

/// Creates configmap `name` in `ns` owned by the given (kind, name, uid, blockOwnerDeletion)s.
fn dependent(fd: &Frontdoor, ns: &str, name: &str, owners: &[(&str, &str, &str, bool)], finalizers: &[&str]) {
    let refs: Vec<Value> = owners
        .iter()
        .map(|(kind, n, uid, block)| {
            let api_version = if *kind == "ClusterRole" { "rbac.authorization.k8s.io/v1" } else { "v1" };
            serde_json::json!({"apiVersion": api_version, "kind": kind, "name": n, "uid": uid, "blockOwnerDeletion": block})
        })
        .collect();
    let obj = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": refs, "finalizers": finalizers},
    });
    let p = fd.dir.path().join(format!("{ns}-{name}.json"));
    std::fs::write(&p, obj.to_string()).unwrap();
    fd.kubectl_ok(&["create", "-f", p.to_str().unwrap()]);
}

fn gone(fd: &Frontdoor, ns: &str, what: &str) -> bool {
    get(fd, ns, what).is_none()
}

#[test]
fn background_foreground_orphan_as_kube() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["create", "ns", "gc"]);

    // background (kubectl's default): the owner goes at once, its dependents after it,
    // transitively; one with a surviving second owner only loses the gone one
    fd.kubectl_ok(&["-n", "gc", "create", "cm", "owner"]);
    fd.kubectl_ok(&["-n", "gc", "create", "cm", "other"]);
    let (owner, other) = (uid(&fd, "gc", "cm/owner"), uid(&fd, "gc", "cm/other"));
    dependent(&fd, "gc", "child", &[("ConfigMap", "owner", &owner, false)], &[]);
    let child = uid(&fd, "gc", "cm/child");
    dependent(&fd, "gc", "grandchild", &[("ConfigMap", "child", &child, false)], &[]);
    dependent(
        &fd,
        "gc",
        "shared",
        &[("ConfigMap", "owner", &owner, false), ("ConfigMap", "other", &other, false)],
        &[],
    );
    fd.kubectl_ok(&["-n", "gc", "delete", "cm", "owner"]);
    wait_until("background collection", WAIT, || gone(&fd, "gc", "cm/child") && gone(&fd, "gc", "cm/grandchild"));
    wait_until("the gone owner leaves the shared dependent", WAIT, || {
        let refs = get(&fd, "gc", "cm/shared").unwrap()["metadata"]["ownerReferences"].clone();
        refs.as_array().is_some_and(|r| r.len() == 1 && r[0]["name"] == "other")
    });

    // a dependent naming an owner by the right name but another uid has no owner: collected
    dependent(&fd, "gc", "stale", &[("ConfigMap", "other", "11111111-2222-3333-4444-555555555555", true)], &[]);
    wait_until("a stale owner uid is collected", WAIT, || gone(&fd, "gc", "cm/stale"));
    // a cluster-scoped owner of a namespaced dependent is looked up cluster-wide
    fd.kubectl_ok(&["create", "clusterrole", "gc-owner", "--verb=get", "--resource=configmaps"]);
    let role = uid(&fd, "", "clusterrole/gc-owner");
    dependent(&fd, "gc", "of-a-role", &[("ClusterRole", "gc-owner", &role, false)], &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!gone(&fd, "gc", "cm/of-a-role"), "its cluster-scoped owner is there");
    fd.kubectl_ok(&["delete", "clusterrole", "gc-owner"]);
    wait_until("dependent of a cluster-scoped owner", WAIT, || gone(&fd, "gc", "cm/of-a-role"));

    // foreground: the owner is marked (deletionTimestamp, foregroundDeletion) and stays
    // while a dependent that blocks its deletion is there
    fd.kubectl_ok(&["-n", "gc", "create", "cm", "fg"]);
    let fg = uid(&fd, "gc", "cm/fg");
    dependent(&fd, "gc", "blocker", &[("ConfigMap", "fg", &fg, true)], &["example.com/hold"]);
    dependent(&fd, "gc", "nonblocker", &[("ConfigMap", "fg", &fg, false)], &[]);
    fd.kubectl_ok(&["-n", "gc", "delete", "cm", "fg", "--cascade=foreground", "--wait=false"]);
    let marked = get(&fd, "gc", "cm/fg").expect("a foreground owner stays");
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    assert_eq!(marked["metadata"]["finalizers"], serde_json::json!(["foregroundDeletion"]));
    wait_until("dependents are deleted", WAIT, || {
        gone(&fd, "gc", "cm/nonblocker")
            && get(&fd, "gc", "cm/blocker").is_some_and(|b| b["metadata"]["deletionTimestamp"].is_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(get(&fd, "gc", "cm/fg").is_some(), "the blocking dependent holds its owner");
    fd.kubectl_ok(&[
        "-n",
        "gc",
        "patch",
        "cm",
        "blocker",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_until("the foreground owner goes after its blocker", WAIT, || {
        gone(&fd, "gc", "cm/blocker") && gone(&fd, "gc", "cm/fg")
    });

    // a waiting `kubectl delete --cascade=foreground` returns once the owner is gone
    fd.kubectl_ok(&["-n", "gc", "create", "cm", "fg2"]);
    let fg2 = uid(&fd, "gc", "cm/fg2");
    dependent(&fd, "gc", "fg2-child", &[("ConfigMap", "fg2", &fg2, true)], &[]);
    fd.kubectl_ok(&["-n", "gc", "delete", "cm", "fg2", "--cascade=foreground", "--timeout=20s"]);
    assert!(gone(&fd, "gc", "cm/fg2") && gone(&fd, "gc", "cm/fg2-child"));

    // orphan: the owner goes, its dependents stay without their reference to it
    fd.kubectl_ok(&["-n", "gc", "create", "cm", "parent"]);
    let parent = uid(&fd, "gc", "cm/parent");
    dependent(
        &fd,
        "gc",
        "orphan",
        &[("ConfigMap", "parent", &parent, true), ("ConfigMap", "other", &other, false)],
        &[],
    );
    fd.kubectl_ok(&["-n", "gc", "delete", "cm", "parent", "--cascade=orphan", "--timeout=20s"]);
    assert!(gone(&fd, "gc", "cm/parent"));
    let orphan = get(&fd, "gc", "cm/orphan").expect("an orphaned dependent stays");
    let refs = orphan["metadata"]["ownerReferences"].as_array().unwrap().clone();
    assert_eq!(refs.len(), 1, "{orphan}");
    assert_eq!(refs[0]["name"], "other");

    // an `orphan` finalizer the owner carries is the default of a delete without a policy
    fd.kubectl_ok(&["-n", "gc", "create", "cm", "keeps"]);
    fd.kubectl_ok(&["-n", "gc", "patch", "cm", "keeps", "-p", r#"{"metadata":{"finalizers":["orphan"]}}"#]);
    let keeps = uid(&fd, "gc", "cm/keeps");
    dependent(&fd, "gc", "kept", &[("ConfigMap", "keeps", &keeps, false)], &[]);
    let r = fd.admin_client().delete(fd.url("/api/v1/namespaces/gc/configmaps/keeps")).send().unwrap();
    assert_eq!(r.status(), 200);
    wait_until("the orphaning owner goes", WAIT, || gone(&fd, "gc", "cm/keeps"));
    let kept = get(&fd, "gc", "cm/kept").expect("kept");
    assert!(kept["metadata"].get("ownerReferences").is_none(), "{kept}");

    // kube's validation of the two ways to say it
    let r = fd
        .admin_client()
        .delete(fd.url("/api/v1/namespaces/gc/configmaps/kept"))
        .body(r#"{"kind":"DeleteOptions","apiVersion":"v1","orphanDependents":true,"propagationPolicy":"Background"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    let st: Value = r.json().unwrap();
    assert_eq!(
        st["message"],
        r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Background": orphanDependents and deletionPropagation cannot be both set"#
    );
    assert!(fd.logs().matches("panicked").count() == 0);
}

/// On one etcd two replicas both run the collector without harming each other's work.
#[test]
fn replicas_on_etcd_collect_once() {
    let etcd_dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(etcd_dir.path()).unwrap();
    let args = ["--etcd-servers", etcd.url.as_str()];
    let a = Frontdoor::start(&args);
    let b = Frontdoor::start(&args);
    a.kubectl_ok(&["create", "ns", "gc"]);
    for i in 0..5 {
        let owner = format!("owner{i}");
        a.kubectl_ok(&["-n", "gc", "create", "cm", &owner]);
        let u = uid(&a, "gc", &format!("cm/{owner}"));
        for j in 0..3 {
            dependent(&b, "gc", &format!("dep{i}-{j}"), &[("ConfigMap", &owner, &u, true)], &[]);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| a.kubectl_ok(&["-n", "gc", "delete", "cm", "owner0", "owner1", "owner2"]));
        s.spawn(|| b.kubectl_ok(&["-n", "gc", "delete", "cm", "owner3", "owner4", "--cascade=foreground"]));
    });
    wait_until("every dependent collected", WAIT, || {
        // every namespace also has its kube-root-ca.crt
        let mine = ["-n", "gc", "get", "cm", "-o", "name", "--field-selector", "metadata.name!=kube-root-ca.crt"];
        a.kubectl_ok(&mine).trim().is_empty() && b.kubectl_ok(&mine).trim().is_empty()
    });
    // a dependent of a kind this store serves, naming an owner of a kind it does not, stays
    dependent(&a, "gc", "of-a-pod", &[("Pod", "p", "11111111-2222-3333-4444-555555555555", true)], &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(get(&b, "gc", "cm/of-a-pod").is_some());
    for fd in [&a, &b] {
        assert!(fd.logs().matches("panicked").count() == 0);
    }
}

/// A foreground owner is woken by the uid its last blocking dependent named, whatever name the
/// reference gave it (kube's uidToNode): it waited on the dependent by uid, and was re-examined
/// only under the name, so it stayed `foregroundDeletion` for good.
#[test]
fn a_foreground_owner_is_woken_by_the_uid_its_dependent_named() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["create", "configmap", "owner"]);
    let owner = uid(&fd, "default", "configmap/owner");
    dependent(&fd, "default", "held", &[("ConfigMap", "not-the-owner", &owner, true)], &["example.com/hold"]);
    fd.kubectl_ok(&["delete", "configmap", "owner", "--cascade=foreground", "--wait=false"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(get(&fd, "default", "configmap/owner").is_some(), "waits for its blocking dependent");
    fd.kubectl_ok(&["patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    wait_until("the dependent gone", WAIT, || gone(&fd, "default", "configmap/held"));
    wait_until("the owner woken and gone", WAIT, || gone(&fd, "default", "configmap/owner"));
}
