//! Watch load, run by hand: `cargo test --test store_watch_load -- --ignored --nocapture`.
//! Opens WATCHES idle watches over HTTP/2 (100 per connection, pingora's stream limit),
//! prints the server's RSS growth, then one write and how long until every watcher had it.
//! Prints figures; asserts only that every watcher got the event.

use crate::common::Frontdoor;
use serde_json::json;
use std::time::{Duration, Instant};

const WATCHES: usize = 10_000;
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

#[test]
#[ignore]
fn ten_thousand_idle_watches() {
    let fd = Frontdoor::start(&[]);
    let admin = fd.admin_client();
    let base = fd.url("/api/v1/namespaces/default/configmaps");
    let created: serde_json::Value =
        admin.post(&base).json(&json!({"metadata": {"name": "load"}})).send().unwrap().json().unwrap();
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let pid = fd.child.id();
    let before = rss_mb(pid);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = format!("{base}?watch=1&resourceVersion={rv}");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let t0 = Instant::now();
    rt.block_on(async {
        for c in 0..WATCHES / PER_CONNECTION {
            let client = async_client(&fd);
            for _ in 0..PER_CONNECTION {
                let (client, url, tx, opened_tx) = (client.clone(), url.clone(), tx.clone(), opened_tx.clone());
                tokio::spawn(async move {
                    let mut resp = client.get(&url).send().await.expect("watch");
                    assert_eq!(resp.status(), 200);
                    let _ = opened_tx.send(());
                    if let Ok(Some(_)) = resp.chunk().await {
                        let _ = tx.send(Instant::now());
                    }
                    std::future::pending::<()>().await;
                });
            }
            if c % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for _ in 0..WATCHES {
            tokio::time::timeout(Duration::from_secs(120), opened_rx.recv()).await.expect("watches open");
        }
    });
    let opened = t0.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_mb(pid);
    println!(
        "{WATCHES} watches open in {:.1}s over {} HTTP/2 connections; server RSS {before:.0} MB -> {after:.0} MB (+{:.0} MB, {:.1} KB per watch)",
        opened.as_secs_f64(),
        WATCHES / PER_CONNECTION,
        after - before,
        (after - before) * 1024.0 / WATCHES as f64
    );
    let sent = Instant::now();
    admin.put(format!("{base}/load")).json(&json!({"metadata": {"name": "load"}, "data": {"v": "1"}})).send().unwrap();
    let mut lat: Vec<f64> = rt.block_on(async {
        let mut v = Vec::new();
        while v.len() < WATCHES {
            match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Ok(Some(t)) => v.push(t.duration_since(sent).as_secs_f64() * 1000.0),
                _ => break,
            }
        }
        v
    });
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "event (write included) reached {}/{WATCHES} watchers: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
    assert_eq!(lat.len(), WATCHES);
    rt.shutdown_background();
}
