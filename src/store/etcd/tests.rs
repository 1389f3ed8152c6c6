//! Against a real etcd (Debian's etcd-server, which `.ci/setup` installs) on loopback ports.

use super::process::EtcdProcess;
use super::*;

fn obj(name: &str, v: &str) -> Value {
    json!({"metadata": {"name": name, "resourceVersion": "999"}, "data": {"k": v}})
}

#[test]
fn revisions_cas_lists_at_revisions_and_a_second_replica_sees_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let servers = vec![etcd.url.clone()];
    let a = EtcdStorage::connect(&servers, "/registry", 100).unwrap();
    let b = EtcdStorage::connect(&servers, "/registry", 100).unwrap();

    let x = a.create("/registry/cm/ns/x", obj("x", "1")).unwrap();
    assert_eq!(x.value["metadata"]["resourceVersion"], x.rev.to_string(), "the revision is the resourceVersion");
    assert_eq!(a.get("/registry/cm/ns/x").unwrap().rev, x.rev, "a write is readable at once on its replica");
    assert_eq!(b.create("/registry/cm/ns/x", obj("x", "1")).unwrap_err(), StorageError::AlreadyExists);
    assert_eq!(b.update("/registry/cm/ns/x", obj("x", "2"), Some(x.rev + 100)).unwrap_err(), StorageError::Conflict);
    let x2 = b.update("/registry/cm/ns/x", obj("x", "2"), Some(x.rev)).unwrap();
    assert!(x2.rev > x.rev);
    assert_eq!(a.update("/registry/cm/ns/x", obj("x", "3"), Some(x.rev)).unwrap_err(), StorageError::Conflict);
    assert_eq!(a.update("/registry/cm/ns/nope", obj("nope", "1"), None).unwrap_err(), StorageError::NotFound);
    assert_eq!(a.delete("/registry/cm/ns/nope", None).unwrap_err(), StorageError::NotFound);

    // replica a follows b's write through its watch
    let deadline = std::time::Instant::now() + TIMEOUT;
    while a.get("/registry/cm/ns/x").map(|s| s.rev) != Some(x2.rev) {
        assert!(std::time::Instant::now() < deadline, "replica a never saw b's update");
        std::thread::sleep(Duration::from_millis(20));
    }
    // history: the list at the first revision still has the first value
    let (then, rev) = a.list("/registry/cm/", Some(x.rev)).unwrap();
    assert_eq!((then.len(), rev), (1, x.rev));
    assert_eq!(then[0].value["data"]["k"], "1");
    assert!(matches!(a.list("/registry/cm/", Some(x2.rev + 1000)), Err(StorageError::TooLarge { .. })));

    // a watch from the first revision replays the update, then sees the delete live
    let mut w = a.watch("/registry/cm/", Some(x.rev)).unwrap();
    assert_eq!(w.initial.iter().map(|e| (e.kind, e.rev)).collect::<Vec<_>>(), vec![(EventType::Modified, x2.rev)]);
    let gone = b.delete("/registry/cm/ns/x", Some(x2.rev)).unwrap();
    assert_eq!(gone.value["data"]["k"], "2", "a delete returns the last state");
    let ev = a.rt.block_on(async { tokio::time::timeout(TIMEOUT, w.rx.recv()).await }).unwrap().unwrap();
    assert_eq!((ev.kind, ev.rev, ev.value["data"]["k"].as_str()), (EventType::Deleted, gone.rev, Some("2")));
    assert_eq!(ev.prev.as_ref().map(|(_, r)| *r), Some(x2.rev));

    // a fresh replica loads what is there; watches from before it started are expired
    let c = EtcdStorage::connect(&servers, "/registry", 100).unwrap();
    let y = c.create("/registry/cm/ns/y", obj("y", "1")).unwrap();
    assert_eq!(c.list("/registry/cm/", None).unwrap().0.len(), 1);
    assert!(matches!(c.watch("/registry/cm/", Some(x.rev)), Err(StorageError::Expired { .. })));
    assert!(c.healthy().is_ok());
    assert!(y.rev > gone.rev);
}

#[test]
fn keys_live_under_the_etcd_prefix_and_a_dead_etcd_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let servers = vec![etcd.url.clone()];
    let a = EtcdStorage::connect(&servers, "/frontdoor-a/", 100).unwrap();
    let b = EtcdStorage::connect(&servers, "/frontdoor-b", 100).unwrap();
    a.create("/registry/cm/ns/x", obj("x", "1")).unwrap();
    assert!(b.get("/registry/cm/ns/x").is_none(), "separate prefixes are separate stores");
    let mut client = a.client.clone();
    let raw = a.rt.block_on(async move { client.get("/frontdoor-a/cm/ns/x", None).await }).unwrap();
    let stored: Value = serde_json::from_slice(raw.kvs()[0].value()).unwrap();
    assert_eq!(stored["data"]["k"], "1");
    assert!(stored["metadata"].get("resourceVersion").is_none(), "etcd's revision is the resourceVersion");
    drop(etcd);
    assert!(a.healthy().is_err());
    assert!(EtcdStorage::connect(&servers, "/registry", 100).is_err(), "no etcd: a startup error");
}
