//! Store micro-benchmarks: durable create, get, list of 1,000 and 10,000 objects (with the
//! list encoded to JSON as a response would be), and one event delivered to 1,000 watchers.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use frontdoor::store::backend::Storage;
use frontdoor::store::redb::RedbStorage;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cm(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "bench", "uid": "00000000-0000-0000-0000-000000000000",
                        "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "bench"}},
           "data": {"key": "value", "other": "a somewhat longer value to look like real configuration"}})
}

fn filled(n: usize) -> (tempfile::TempDir, RedbStorage) {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStorage::open(dir.path(), 100_000).unwrap();
    for i in 0..n {
        s.create(&format!("/registry/configmaps/n{n}/cm-{i:06}"), cm(&format!("cm-{i}"))).unwrap();
    }
    (dir, s)
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStorage::open(dir.path(), 10_000).unwrap();
    let mut i = 0u64;
    c.bench_function("create (durable commit)", |b| {
        b.iter(|| {
            i += 1;
            s.create(&format!("/registry/configmaps/bench/c-{i}"), cm("c")).unwrap();
        })
    });
    c.bench_function("get", |b| b.iter(|| s.get("/registry/configmaps/bench/c-1").unwrap()));

    for n in [1_000usize, 10_000] {
        let (_d, s) = filled(n);
        let prefix = format!("/registry/configmaps/n{n}/");
        c.bench_function(&format!("list {n} (+ JSON encode)"), |b| {
            b.iter(|| {
                let (items, _) = s.list(&prefix, None).unwrap();
                let v: Vec<&serde_json::Value> = items.iter().map(|o| &*o.value).collect();
                serde_json::to_vec(&v).unwrap().len()
            })
        });
    }

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(RedbStorage::open(dir.path(), 10_000).unwrap());
    s.create("/registry/configmaps/w/x", cm("x")).unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    const WATCHERS: usize = 1_000;
    rt.block_on(async {
        for _ in 0..WATCHERS {
            let mut w = s.watch("/registry/configmaps/w/", Some(s.revision())).unwrap();
            let (received, done) = (received.clone(), done.clone());
            tokio::spawn(async move {
                while w.rx.recv().await.is_some() {
                    if received.fetch_add(1, Ordering::AcqRel) + 1 == WATCHERS {
                        done.notify_one();
                    }
                }
            });
        }
    });
    let mut group = c.benchmark_group("watch");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("one event to 1,000 watchers (commit + fan-out)", |b| {
        b.iter_batched(
            || received.store(0, Ordering::SeqCst),
            |_| {
                rt.block_on(async {
                    let t = Instant::now();
                    s.update("/registry/configmaps/w/x", cm("x"), None).unwrap();
                    done.notified().await;
                    t.elapsed()
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = store;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(store);
