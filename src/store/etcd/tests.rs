//! Against a real etcd (Debian's etcd-server, which `.ci/setup` installs) on loopback ports.

use super::process::EtcdProcess;
use super::*;
use serde_json::json;

fn config(servers: &[String], prefix: &str) -> EtcdConfig {
    EtcdConfig { prefix: prefix.into(), window: 100, ..EtcdConfig::new(servers.to_vec()) }
}

fn obj(name: &str, v: &str) -> Value {
    json!({"metadata": {"name": name, "resourceVersion": "999"}, "data": {"k": v}})
}

#[test]
fn revisions_cas_lists_at_revisions_and_a_second_replica_sees_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let servers = vec![etcd.url.clone()];
    let a = EtcdStorage::connect(&config(&servers, "/registry")).unwrap();
    let b = EtcdStorage::connect(&config(&servers, "/registry")).unwrap();

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
    let ev = a.rt.block_on(async { tokio::time::timeout(TIMEOUT, w.rx.recv()).await }).unwrap().unwrap().event.clone();
    assert_eq!((ev.kind, ev.rev, ev.value["data"]["k"].as_str()), (EventType::Deleted, gone.rev, Some("2")));
    assert_eq!(ev.prev.as_ref().map(|(_, r)| *r), Some(x2.rev));

    // a fresh replica loads what is there; watches from before it started are expired
    let c = EtcdStorage::connect(&config(&servers, "/registry")).unwrap();
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
    let a = EtcdStorage::connect(&config(&servers, "/frontdoor-a/")).unwrap();
    let b = EtcdStorage::connect(&config(&servers, "/frontdoor-b")).unwrap();
    a.create("/registry/cm/ns/x", obj("x", "1")).unwrap();
    assert!(b.get("/registry/cm/ns/x").is_none(), "separate prefixes are separate stores");
    let mut client = a.client.clone();
    let raw = a.rt.block_on(async move { client.get("/frontdoor-a/cm/ns/x", None).await }).unwrap();
    let stored: Value = serde_json::from_slice(raw.kvs()[0].value()).unwrap();
    assert_eq!(stored["data"]["k"], "1");
    assert!(stored["metadata"].get("resourceVersion").is_none(), "etcd's revision is the resourceVersion");
    drop(etcd);
    assert!(a.healthy().is_err());
    assert!(EtcdStorage::connect(&config(&servers, "/registry")).is_err(), "no etcd: a startup error");
}

#[test]
fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    crate::certs::ensure_dev_pki(&pki, "https://127.0.0.1:6443").unwrap();
    let (server_cert, server_key, ca) = (pki.join("apiserver.crt"), pki.join("apiserver.key"), pki.join("ca.crt"));
    let etcd = EtcdProcess::start_tls(dir.path(), &server_cert, &server_key, &ca).unwrap();
    let servers = vec![etcd.url.clone()];
    let tls = EtcdConfig {
        ca_file: Some(ca.clone()),
        cert_file: Some(pki.join("admin.crt")),
        key_file: Some(pki.join("admin.key")),
        ..config(&servers, "/registry")
    };
    let s = EtcdStorage::connect(&tls).unwrap();
    assert_eq!(s.create("/registry/cm/ns/x", obj("x", "1")).unwrap().value["data"]["k"], "1");
    assert!(s.healthy().is_ok());

    let no_client_cert = EtcdConfig { cert_file: None, key_file: None, ..tls.clone() };
    assert!(EtcdStorage::connect(&no_client_cert).is_err(), "etcd requires a client certificate");
    let half = EtcdConfig { key_file: None, ..tls.clone() };
    let err = EtcdStorage::connect(&half).err().expect("a cert without its key");
    assert!(err.to_string().contains("--etcd-certfile and --etcd-keyfile go together"), "{err}");
    let missing = EtcdConfig { ca_file: Some(dir.path().join("nope.crt")), ..tls };
    assert!(format!("{:#}", EtcdStorage::connect(&missing).err().unwrap()).contains("nope.crt"));
}

#[test]
fn history_is_compacted_one_interval_behind() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let servers = vec![etcd.url.clone()];
    let s = EtcdStorage::connect(&EtcdConfig {
        compaction_interval: Duration::from_millis(200),
        ..config(&servers, "/registry")
    })
    .unwrap();
    let first = s.create("/registry/cm/ns/x", obj("x", "1")).unwrap();
    s.update("/registry/cm/ns/x", obj("x", "2"), None).unwrap();
    assert!(s.list("/registry/cm/", Some(first.rev)).is_ok(), "history is there before a compaction");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !matches!(s.list("/registry/cm/", Some(first.rev)), Err(StorageError::Expired { .. })) {
        assert!(std::time::Instant::now() < deadline, "etcd was never compacted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.list("/registry/cm/", None).unwrap().0[0].value["data"]["k"], "2", "the present is intact");
}

/// A mirror that cannot resume its watch (etcd compacted past it) relists by a quorum read and
/// ends every watch, as kube's cacher does: resuming from a resourceVersion before the relist
/// is 410 Expired, a watch from the relist's revision gets what follows, nothing is made up.
#[test]
fn a_relist_after_compaction_ends_watches_and_expires_older_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let servers = vec![etcd.url.clone()];
    let a = EtcdStorage::connect(&config(&servers, "/registry")).unwrap();
    let x = a.create("/registry/cm/ns/x", obj("x", "1")).unwrap();
    let mut w = a.watch("/registry/cm/", Some(x.rev)).unwrap();
    // written behind the mirror's back, as another replica's writes while this one was cut off
    let mut client = a.client.clone();
    let (y_rev, gone_rev) = a.rt.block_on(async move {
        let y = client.put("/registry/cm/ns/y", serde_json::to_vec(&obj("y", "1")).unwrap(), None).await.unwrap();
        let d = client.delete("/registry/cm/ns/x", None).await.unwrap();
        (y.header().unwrap().revision() as u64, d.header().unwrap().revision() as u64)
    });
    let rev = a.rt.block_on(resync(&a.client, &a.prefix, &a.shared)).unwrap();
    assert!(rev >= gone_rev && gone_rev > y_rev);
    assert_eq!(a.get("/registry/cm/ns/y").map(|s| s.rev), Some(y_rev));
    assert!(a.get("/registry/cm/ns/x").is_none());
    // the open watch ends after what it had (the mirror may have applied the writes first)
    let ended = a.rt.block_on(async {
        loop {
            match tokio::time::timeout(TIMEOUT, w.rx.recv()).await.unwrap() {
                Some(d) => assert!(d.event.rev > x.rev),
                None => break true,
            }
        }
    });
    assert!(ended);
    assert_eq!(a.watchers(), 0);
    assert!(matches!(a.watch("/registry/cm/", Some(x.rev)), Err(StorageError::Expired { .. })));
    let mut w = a.watch("/registry/cm/", Some(rev)).unwrap();
    assert!(w.initial.is_empty());
    // an event the relist already holds, late from a stream opened before it, changes nothing
    let stale = obj("stale", "1");
    apply(
        &a.shared,
        Event {
            rev: y_rev,
            kind: EventType::Added,
            key: "/registry/cm/ns/stale".into(),
            value: Arc::new(stale),
            prev: None,
            raw: None,
        },
    );
    assert!(a.get("/registry/cm/ns/stale").is_none());
    let z = a.create("/registry/cm/ns/z", obj("z", "1")).unwrap();
    let ev = a.rt.block_on(async { tokio::time::timeout(TIMEOUT, w.rx.recv()).await }).unwrap().unwrap();
    assert_eq!((ev.event.kind, ev.event.rev), (EventType::Added, z.rev));
}

/// A listed member that is down costs no request: the client's balancer keeps picking it for a
/// while, and what never reached etcd is sent again (kube's client fails over the same way).
#[test]
fn a_dead_member_among_the_servers_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let servers = vec![format!("http://127.0.0.1:{closed}"), etcd.url.clone()];
    let s = EtcdStorage::connect(&config(&servers, "/registry")).unwrap();
    for i in 0..40 {
        let key = format!("/registry/cm/ns/x{i}");
        let x = s.create(&key, obj("x", "1")).unwrap();
        s.update(&key, obj("x", "2"), Some(x.rev)).unwrap();
        assert!(s.list("/registry/cm/", Some(x.rev)).is_ok());
        assert!(s.healthy().is_ok());
    }
}

/// A value another writer put into etcd that does not decode leaves the object gone from the
/// mirror, with a DELETED event for its watchers: it was kept as it was, and (a RoleBinding)
/// granted on with no way to delete it.
#[test]
fn an_undecodable_value_is_a_deletion_for_the_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let a = EtcdStorage::connect(&config(std::slice::from_ref(&etcd.url), "/registry")).unwrap();
    let x = a.create("/registry/cm/ns/x", obj("x", "1")).unwrap();
    let mut w = a.watch("/registry/cm/", Some(x.rev)).unwrap();
    let mut kv = a.client.kv_client();
    a.rt.block_on(kv.put("/registry/cm/ns/x", "not json{", None)).unwrap();
    let ev = a.rt.block_on(async { tokio::time::timeout(TIMEOUT, w.rx.recv()).await }).unwrap().unwrap().event.clone();
    assert_eq!((ev.kind, ev.value["data"]["k"].as_str()), (EventType::Deleted, Some("1")));
    assert!(ev.rev > x.rev);
    assert!(a.get("/registry/cm/ns/x").is_none(), "gone from the mirror");
}

/// A consistent read after writes outside the prefix (another frontdoor's, a kube-apiserver's
/// leases) is answered at once: a progress request moves the mirror to etcd's revision, where
/// it waited for a change under the prefix that never came (and failed after 10 s).
#[test]
fn a_consistent_read_is_not_held_up_by_writes_outside_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let a = EtcdStorage::connect(&config(std::slice::from_ref(&etcd.url), "/registry")).unwrap();
    a.create("/registry/cm/ns/x", obj("x", "1")).unwrap();
    let mut kv = a.client.kv_client();
    let outside = a.rt.block_on(kv.put("/elsewhere/lease", "renewed", None)).unwrap();
    let rev = outside.header().unwrap().revision() as u64;
    let started = std::time::Instant::now();
    a.sync().unwrap();
    assert!(started.elapsed() < SYNC_WAIT, "answered by the progress notification");
    assert!(a.revision() >= rev);
    assert!(a.get("/registry/cm/ns/x").is_some());
}
