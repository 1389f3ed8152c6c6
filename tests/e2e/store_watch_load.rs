//! Watch load, run by hand (release, ignored):
//! `cargo test --release --test e2e store_watch_load -- --ignored --nocapture --test-threads 1`.
//! Opens idle watches over HTTP/2 (100 per connection, pingora's stream limit), prints the
//! server's RSS growth, then times a series of writes until every watcher had each one.
//! Prints figures; asserts only that every watcher got every event.
//!
//! `ten_thousand_idle_watches` is the memory target (10,000 watches), `thousand_watchers_fan_out`
//! the latency target (1,000 watchers). `WATCHES=n` and `EVENTS=n` override the counts, e.g. to
//! take the per-watch slope at 1k/5k/10k; `LOAD_PAUSE=1` waits for Enter after printing the
//! server's pid (to attach `heaptrack -p`) and again once the watches are open.

use crate::common::Frontdoor;
use serde_json::json;
use std::time::{Duration, Instant};

const PER_CONNECTION: usize = 100;

fn rss_mb(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn async_client(fd: &Frontdoor) -> reqwest::Client {
    let certs = fd.certs();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.crt")).unwrap()).unwrap();
    let mut pem = std::fs::read(certs.join("admin.crt")).unwrap();
    pem.extend(std::fs::read(certs.join("admin.key")).unwrap());
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pause(what: &str) {
    if std::env::var_os("LOAD_PAUSE").is_some() {
        println!("{what}; press Enter to go on");
        let _ = std::io::stdin().read_line(&mut String::new());
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[test]
#[ignore]
fn ten_thousand_idle_watches() {
    load(env_or("WATCHES", 10_000), env_or("EVENTS", 5));
}

#[test]
#[ignore]
fn thousand_watchers_fan_out() {
    load(env_or("WATCHES", 1_000), env_or("EVENTS", 20));
}

/// Opens `watches` idle watches, prints the RSS growth, then writes `events` times (one at a
/// time, each after every watcher had the previous) and prints the delivery latencies.
fn load(watches: usize, events: usize) {
    let fd = Frontdoor::start(&[]);
    let admin = fd.admin_client();
    let base = fd.url("/api/v1/namespaces/default/configmaps");
    let created: serde_json::Value =
        admin.post(&base).json(&json!({"metadata": {"name": "load"}})).send().unwrap().json().unwrap();
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let pid = fd.child.id();
    pause(&format!("server pid {pid}"));
    let before = rss_mb(pid);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = format!("{base}?watch=1&resourceVersion={rv}");
    // every watcher reports the time it saw each event line
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let t0 = Instant::now();
    let connections = watches.div_ceil(PER_CONNECTION);
    rt.block_on(async {
        for c in 0..connections {
            // one request first: until a client's HTTP/2 connection is up, each concurrent
            // request would open a connection of its own (hundreds, not one)
            let client = async_client(&fd);
            let version = client.get(fd.url("/version")).send().await.expect("version");
            assert_eq!(version.version(), reqwest::Version::HTTP_2);
            for _ in 0..PER_CONNECTION.min(watches - c * PER_CONNECTION) {
                let (client, url, tx, opened_tx) = (client.clone(), url.clone(), tx.clone(), opened_tx.clone());
                tokio::spawn(async move {
                    let mut resp = client.get(&url).send().await.expect("watch");
                    assert_eq!(resp.status(), 200);
                    let _ = opened_tx.send(());
                    while let Ok(Some(chunk)) = resp.chunk().await {
                        let now = Instant::now();
                        for _ in chunk.iter().filter(|b| **b == b'\n') {
                            let _ = tx.send(now);
                        }
                    }
                    std::future::pending::<()>().await;
                });
            }
            if c % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for _ in 0..watches {
            tokio::time::timeout(Duration::from_secs(120), opened_rx.recv()).await.expect("watches open");
        }
    });
    let opened = t0.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_mb(pid);
    println!(
        "{watches} watches open in {:.1}s over {connections} HTTP/2 connections; server RSS {before:.0} MB -> {after:.0} MB (+{:.0} MB, {:.1} KB per watch)",
        opened.as_secs_f64(),
        after - before,
        (after - before) * 1024.0 / watches as f64
    );
    pause("watches open");

    let mut all = Vec::new();
    let mut first = Vec::new();
    let mut writes = Vec::new();
    let mut spread = Vec::new();
    for i in 0..events {
        let sent = Instant::now();
        let put = admin
            .put(format!("{base}/load"))
            .json(&json!({"metadata": {"name": "load"}, "data": {"v": i.to_string()}}))
            .send()
            .unwrap();
        assert_eq!(put.status(), 200);
        writes.push(sent.elapsed().as_secs_f64() * 1000.0);
        let lat: Vec<f64> = rt.block_on(async {
            let mut v = Vec::new();
            while v.len() < watches {
                match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                    Ok(Some(t)) => v.push(t.duration_since(sent).as_secs_f64() * 1000.0),
                    _ => break,
                }
            }
            v
        });
        assert_eq!(lat.len(), watches, "event {i} reached every watcher");
        // the fan-out alone: after the first watcher had the event (the write's commit excluded)
        let first_seen = lat.iter().cloned().fold(f64::MAX, f64::min);
        spread.extend(lat.iter().map(|l| l - first_seen));
        if i == 0 {
            first = lat.clone();
        }
        all.extend(lat);
        std::thread::sleep(Duration::from_millis(100));
    }
    for v in [&mut all, &mut first, &mut writes, &mut spread] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    println!(
        "{events} events (write included) to {watches} watchers: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; first event p50 {:.1} ms, p99 {:.1} ms; the write alone: median {:.1} ms, max {:.1} ms; fan-out after the first receipt: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all[all.len() - 1],
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        percentile(&writes, 0.5),
        writes[writes.len() - 1],
        percentile(&spread, 0.5),
        percentile(&spread, 0.99),
    );
    rt.shutdown_background();
}
