//! Memory per idle watch on a running frontdoor (bench/idle_watches.sh): opens N watches of
//! configmaps that then stay idle, over HTTP/1.1 (one TLS connection each) or HTTP/2 (up to 100
//! streams per connection, pingora's stream limit, as client-go multiplexes watches), and
//! prints the server's RSS growth per watch.
//!
//!   cargo run --example idle_watches -- PID PORT CERT_DIR h1|h2 N

use std::time::Duration;

fn rss_kb(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn client(certs: &str, h2: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(format!("{certs}/ca.crt")).unwrap()).unwrap();
    let mut pem = std::fs::read(format!("{certs}/admin.crt")).unwrap();
    pem.extend(std::fs::read(format!("{certs}/admin.key")).unwrap());
    let b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .pool_max_idle_per_host(usize::MAX);
    let b = if h2 { b.http2_prior_knowledge() } else { b.http1_only() };
    b.build().unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [pid, port, certs, mode, n] = &a[..] else {
        eprintln!("usage: idle_watches PID PORT CERT_DIR h1|h2 N");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N");
    let h2 = mode == "h2";
    let url = format!("https://127.0.0.1:{port}/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=3600");
    // one client per 100 streams over HTTP/2 (each client holds one connection); one for HTTP/1.1
    let clients: Vec<reqwest::Client> = (0..if h2 { n.div_ceil(100) } else { 1 }).map(|_| client(certs, h2)).collect();
    // a first request per client: TLS and HTTP/2 set up before the baseline
    for c in &clients {
        let r = c.get(format!("https://127.0.0.1:{port}/readyz")).send().await.expect("readyz");
        assert!(r.status().is_success(), "{}", r.status());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kb(pid);
    let mut watches = Vec::with_capacity(n);
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for i in 0..n {
        let c = clients[if h2 { i / 100 } else { 0 }].clone();
        let u = url.clone();
        pending.push(async move { c.get(u).send().await });
        if pending.len() >= 200 {
            watches.push(pending.next().await.unwrap().expect("watch"));
        }
    }
    while let Some(r) = pending.next().await {
        watches.push(r.expect("watch"));
    }
    assert!(watches.iter().all(|w| w.status().is_success()), "a watch was refused");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kb(pid);
    println!(
        "{mode}: {n} idle watches on {} connections: server RSS {before} KB -> {after} KB, {:.1} KB per watch",
        if h2 { clients.len() } else { n },
        (after as f64 - before as f64) / n as f64
    );
    drop(watches);
}
