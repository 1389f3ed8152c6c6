//! The etcd backend against a real local etcd (Debian's etcd-server): a create (an etcd
//! transaction, then seen by the replica's own watch), a get and a list of 1,000 from the
//! mirror, and how long a write through one replica takes to reach a second replica.

use criterion::{criterion_group, criterion_main, Criterion};
use frontdoor::store::backend::Storage;
use frontdoor::store::etcd::process::EtcdProcess;
use frontdoor::store::etcd::{EtcdConfig, EtcdStorage};
use serde_json::json;
use std::time::{Duration, Instant};

fn cm(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "bench", "uid": "00000000-0000-0000-0000-000000000000",
                        "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "bench"}},
           "data": {"key": "value", "other": "a somewhat longer value to look like real configuration"}})
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    let config = EtcdConfig::new(vec![etcd.url.clone()]);
    let a = EtcdStorage::connect(&config).unwrap();
    let b = EtcdStorage::connect(&config).unwrap();

    let mut i = 0u64;
    c.bench_function("etcd create (txn + own watch)", |bench| {
        bench.iter(|| {
            i += 1;
            a.create(&format!("/registry/configmaps/bench/c-{i}"), cm("c")).unwrap();
        })
    });
    c.bench_function("etcd get (mirror)", |bench| bench.iter(|| a.get("/registry/configmaps/bench/c-1").unwrap()));
    for j in 0..1_000 {
        a.create(&format!("/registry/configmaps/l1000/cm-{j:06}"), cm("l")).unwrap();
    }
    c.bench_function("etcd list 1000 (mirror)", |bench| {
        bench.iter(|| a.list("/registry/configmaps/l1000/", None).unwrap().0.len())
    });

    a.create("/registry/configmaps/rep/x", cm("x")).unwrap();
    let mut group = c.benchmark_group("etcd replication");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("update on one replica seen by the other", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let rev = a.update("/registry/configmaps/rep/x", cm("x"), None).unwrap().rev;
                while b.get("/registry/configmaps/rep/x").map(|s| s.rev) != Some(rev) {
                    std::hint::spin_loop();
                }
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(store_etcd, benches);
criterion_main!(store_etcd);
