//! Two frontdoor replicas on one real etcd (`--etcd-servers`), driven with the real kubectl:
//! what one writes the other serves and streams to its watchers, an RBAC binding made through
//! one takes effect on the other, both report etcd in /readyz, and a replica restarted with an
//! empty data dir still has everything.

use crate::common::{stderr, wait_until, Frontdoor};
use frontdoor::store::etcd::process::EtcdProcess;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn replicas_share_one_etcd() {
    let etcd_dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(etcd_dir.path()).unwrap();
    let args = ["--etcd-servers", etcd.url.as_str()];
    let a = Frontdoor::start(&args);
    let b = Frontdoor::start(&args);

    // b streams what a writes
    let mut watch = Command::new(crate::common::KUBECTL)
        .arg("--kubeconfig")
        .arg(b.kubeconfig())
        .args(["get", "cm", "-w", "--output-watch-events", "-o", "jsonpath={.type} {.object.metadata.name}{\"\\n\"}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    std::thread::sleep(Duration::from_millis(500));

    a.kubectl_ok(&["create", "cm", "shared", "--from-literal=k=1"]);
    let on_a: Value = serde_json::from_str(&a.kubectl_ok(&["get", "cm", "shared", "-o", "json"])).unwrap();
    let on_b: Value = serde_json::from_str(&b.kubectl_ok(&["get", "cm", "shared", "-o", "json"])).unwrap();
    assert_eq!(on_a["metadata"]["uid"], on_b["metadata"]["uid"]);
    assert_eq!(on_a["metadata"]["resourceVersion"], on_b["metadata"]["resourceVersion"]);
    b.kubectl_ok(&["label", "cm", "shared", "written-by=b"]);
    assert!(a.kubectl_ok(&["get", "cm", "-l", "written-by=b", "-o", "name"]).contains("configmap/shared"));
    // optimistic concurrency across replicas: a stale resourceVersion is a Conflict
    let stale = on_a["metadata"]["resourceVersion"].as_str().unwrap();
    let o = a.kubectl(&["annotate", "cm", "shared", "x=y", &format!("--resource-version={stale}")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("the object has been modified"), "{}", stderr(&o));
    a.kubectl_ok(&["delete", "cm", "shared"]);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.ends_with(" shared") {
            seen.push(line.split(' ').next().unwrap().to_string());
        }
        if seen.last().is_some_and(|t| t == "DELETED") {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"], "b's watcher saw a's and b's writes in order");

    // an RBAC binding created through a authorizes on b
    let anon = b.anonymous_client();
    let cms = b.url("/api/v1/namespaces/default/configmaps");
    assert_eq!(anon.get(&cms).send().unwrap().status(), 403);
    a.kubectl_ok(&["create", "rolebinding", "anon-view", "--clusterrole=view", "--user=system:anonymous"]);
    wait_until("b to allow what a's binding grants", Duration::from_secs(10), || {
        anon.get(&cms).send().unwrap().status() == 200
    });

    let ready = b.admin_client().get(b.url("/readyz?verbose")).send().unwrap().text().unwrap();
    assert!(ready.contains("[+]etcd ok"), "{ready}");

    // a new replica with an empty data dir has everything
    a.kubectl_ok(&["create", "ns", "kept"]);
    drop(a);
    let c = Frontdoor::start(&args);
    assert!(c.kubectl_ok(&["get", "ns", "kept", "-o", "name"]).contains("namespace/kept"));

    // etcd gone: readiness says so, as kube's etcd check does
    drop(etcd);
    wait_until("/readyz to fail without etcd", Duration::from_secs(10), || {
        let r = c.admin_client().get(c.url("/readyz?verbose")).send().unwrap();
        r.status() == 500 && r.text().unwrap().contains("[-]etcd failed")
    });
}

/// Two replicas on one fresh etcd (which runs, and then its directory stays, as long as the
/// first value lives).
fn two_replicas() -> ((EtcdProcess, tempfile::TempDir), Frontdoor, Frontdoor) {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let args = ["--etcd-servers", etcd.url.as_str()];
    let (a, b) = (Frontdoor::start(&args), Frontdoor::start(&args));
    ((etcd, dir), a, b)
}

/// Writes that name no resourceVersion are retried after a lost race with another replica, as
/// kube retries them (from the state the failed transaction read): under contention across
/// replicas, unconditional patches and deletes were answered 409 "the object has been modified".
#[test]
fn unconditional_writes_across_replicas_never_conflict() {
    let (_etcd, a, b) = two_replicas();
    a.kubectl_ok(&["create", "cm", "contended"]);
    let patcher = |fd: &Frontdoor, tag: &'static str| {
        let (c, url) = (fd.admin_client(), fd.url("/api/v1/namespaces/default/configmaps/contended"));
        std::thread::spawn(move || {
            (0..40)
                .map(|i| {
                    let p = serde_json::json!({"data": {format!("{tag}{i}"): "x"}}).to_string();
                    let r = c.patch(&url).header("Content-Type", "application/merge-patch+json").body(p);
                    r.send().unwrap().status().as_u16()
                })
                .filter(|code| *code != 200)
                .collect::<Vec<_>>()
        })
    };
    let (on_a, on_b) = (patcher(&a, "a"), patcher(&b, "b"));
    assert_eq!((on_a.join().unwrap(), on_b.join().unwrap()), (vec![], vec![]), "every patch applied");
    let cm: Value = serde_json::from_str(&b.kubectl_ok(&["get", "cm", "contended", "-o", "json"])).unwrap();
    assert_eq!(cm["data"].as_object().map(|d| d.len()), Some(80));
    // a delete on one replica while the other patches
    let on_a = patcher(&a, "c");
    std::thread::sleep(Duration::from_millis(50));
    let r = b.admin_client().delete(b.url("/api/v1/namespaces/default/configmaps/contended")).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let after: Vec<u16> = on_a.join().unwrap();
    assert!(after.iter().all(|c| *c == 404), "only gone after the delete: {after:?}");
}

/// A read without a resourceVersion sees every write acknowledged before it, whichever replica
/// took the write (kube's quorum read): another replica's mirror may be a moment behind.
#[test]
fn a_read_sees_what_another_replica_acknowledged() {
    let (_etcd, a, b) = two_replicas();
    let (ca, cb) = (a.admin_client(), b.admin_client());
    let (on_a, on_b) = (a.url("/api/v1/namespaces/default/configmaps"), b.url("/api/v1/namespaces/default/configmaps"));
    let mut stale = Vec::new();
    for i in 0..150 {
        let name = format!("c{i}");
        let r =
            ca.post(&on_a).json(&serde_json::json!({"metadata": {"name": name}, "data": {"n": "1"}})).send().unwrap();
        assert_eq!(r.status(), 201);
        let code = cb.get(format!("{on_b}/{name}")).send().unwrap().status().as_u16();
        if code != 200 {
            stale.push((i, code));
        }
    }
    assert_eq!(stale, vec![], "reads on b right after a's acknowledged creates");
}
