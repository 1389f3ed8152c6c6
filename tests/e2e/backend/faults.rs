//! A misbehaving backend apiserver (TLS, client cert required, hand-written HTTP/1.1): it
//! serves discovery for faults.example.com/v1 correctly, so that it passes frontdoor's
//! availability probe, and misbehaves per path under `THINGS`:
//!
//! | path | what it does |
//! |---|---|
//! | `ok` | 200 with a small JSON object |
//! | `reset-before-headers` | reads the request, then resets the connection (RST) |
//! | `eof-before-headers` | reads the request, then closes the connection (FIN) |
//! | `reset-mid-body` | a head with `Content-Length: 1048576`, 64 KiB of it, then RST |
//! | `reset-mid-chunked` | a chunked head, the start of a list, then RST |
//! | `hang` | reads the request and never answers (until the peer closes) |
//! | `garbage` | bytes that are no HTTP, then closes |
//! | `switch` | a 101 to `h2c` that nobody asked for, then bytes of "that protocol" |
//! | `drip?n=N&delay=MS` | a chunked head, then N one-byte chunks `delay` ms apart |
//! | `status/CODE` | answers CODE with its own Status body and an `X-Backend` header |
//! | `big?mb=N` | N MiB of chunked body, 64 KiB a chunk |
//! | `?watch=true` (the collection) | a watch: one event, then the connection reset mid-stream |
//! | `?watch=true&hang=true` | a watch that never answers (until the peer closes) |
//!
//! Every request's path counts in `served`, so a test sees what reached the backend.
#![allow(dead_code)]

use super::Pki;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const GROUP: &str = "faults.example.com";
pub const THINGS: &str = "/apis/faults.example.com/v1/namespaces/default/things";

type Conn = BufReader<tokio_rustls::server::TlsStream<TcpStream>>;

pub struct FaultBackend {
    pub port: u16,
    rt: tokio::runtime::Runtime,
    served: Arc<Mutex<HashMap<String, usize>>>,
    /// New connections are accepted and then left without a TLS handshake.
    silent: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FaultBackend {
    pub fn start(pki: &Pki, client_ca: &Path) -> FaultBackend {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(super::server_config(pki, client_ca)));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let served = Arc::new(Mutex::new(HashMap::new()));
        let listener = rt.block_on(async { TcpListener::bind("127.0.0.1:0").await.unwrap() });
        let port = listener.local_addr().unwrap().port();
        let (silent, conns) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (s, quiet, cs) = (served.clone(), silent.clone(), conns.clone());
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if quiet.load(Ordering::SeqCst) {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(300)).await;
                        drop(tcp);
                    });
                    continue;
                }
                let (acceptor, served) = (acceptor.clone(), s.clone());
                cs.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve_conn(BufReader::new(tls), served).await;
                    }
                }));
            }
        });
        FaultBackend { port, rt, served, silent, conns }
    }

    /// From now on connections are accepted and never answered, not even with a TLS handshake;
    /// the open ones are closed (so that the next request dials).
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// How many requests for `THINGS/<fault>` (or `THINGS` itself for "") reached the backend.
    pub fn served(&self, fault: &str) -> usize {
        self.served.lock().unwrap().get(fault).copied().unwrap_or(0)
    }
}

/// Resets the connection: SO_LINGER 0, then close (the peer reads ECONNRESET).
fn reset(io: Conn) {
    let tls = io.into_inner();
    let _ = tls.get_ref().0.set_zero_linger();
    drop(tls);
}

fn param<T: std::str::FromStr>(query: &str, name: &str, default: T) -> T {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn write(io: &mut Conn, bytes: &[u8]) -> bool {
    io.write_all(bytes).await.is_ok() && io.flush().await.is_ok()
}

async fn respond(io: &mut Conn, code: u16, reason: &str, extra: &str, body: &str) -> bool {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    write(io, format!("{head}{body}").as_bytes()).await
}

/// Reads one request head (and ignores any body: the faults are all GETs); None at EOF.
async fn read_request(io: &mut Conn) -> Option<(String, String)> {
    let mut line = String::new();
    if io.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut it = line.split_whitespace();
    let (method, target) = (it.next()?.to_string(), it.next()?.to_string());
    loop {
        let mut h = String::new();
        if io.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        if h.trim_end().is_empty() {
            return Some((method, target));
        }
    }
}

/// Holds the connection, answering nothing, until the peer gives up; counts that in
/// `served("hang-closed")`.
async fn hang(mut io: Conn, served: &Mutex<HashMap<String, usize>>) {
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(300), async {
        while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    *served.lock().unwrap().entry("hang-closed".into()).or_default() += 1;
}

async fn serve_conn(mut io: Conn, served: Arc<Mutex<HashMap<String, usize>>>) {
    while let Some((_method, target)) = read_request(&mut io).await {
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path == format!("/apis/{GROUP}/v1") {
            let mut doc = super::discovery(&format!("{GROUP}/v1"));
            let things = serde_json::json!({"name": "things", "singularName": "thing", "namespaced": true, "kind": "Thing", "verbs": ["get", "list", "watch"]});
            doc["resources"].as_array_mut().unwrap().push(things);
            let doc = doc.to_string();
            if !respond(&mut io, 200, "OK", "", &doc).await {
                return;
            }
            continue;
        }
        let Some(fault) = path.strip_prefix(THINGS).map(|f| f.trim_start_matches('/').to_string()) else {
            if !respond(&mut io, 404, "Not Found", "", "{}").await {
                return;
            }
            continue;
        };
        *served.lock().unwrap().entry(fault.clone()).or_default() += 1;
        match fault.as_str() {
            "ok" => {
                if !respond(&mut io, 200, "OK", "", r#"{"kind":"Thing","metadata":{"name":"ok"}}"#).await {
                    return;
                }
            }
            "reset-before-headers" => return reset(io),
            "eof-before-headers" => return,
            "reset-mid-body" => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n";
                let _ = write(&mut io, head.as_bytes()).await && write(&mut io, &[b' '; 64 << 10]).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                return reset(io);
            }
            "reset-mid-chunked" => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                let part = r#"{"kind":"ThingList","items":["#;
                let _ = write(&mut io, format!("{head}{:x}\r\n{part}\r\n", part.len()).as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                return reset(io);
            }
            "hang" => return hang(io, &served).await,
            "" if query.contains("watch=true") && query.contains("hang=true") => return hang(io, &served).await,
            "switch" => {
                // switches protocols to a request that asked for none, then talks that protocol
                let head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
                let _ = write(&mut io, format!("{head}tunnelled bytes").as_bytes()).await;
                return;
            }
            "garbage" => {
                let _ = write(&mut io, b"\x00\x01\x02 this is not HTTP at all \xff\xfe\r\n\r\n{}").await;
                return;
            }
            "drip-head" => {
                // the head itself a line at a time: each read is quick, the head is slow
                let (n, delay) = (param(query, "n", 10usize), param(query, "delay", 100u64));
                if !write(&mut io, b"HTTP/1.1 200 OK\r\n").await {
                    return;
                }
                for i in 0..n {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    if !write(&mut io, format!("X-Line-{i}: {i}\r\n").as_bytes()).await {
                        return;
                    }
                }
                let _ = write(&mut io, b"Content-Length: 2\r\n\r\n{}").await;
            }
            "drip" => {
                let (n, delay) = (param(query, "n", 10usize), param(query, "delay", 100u64));
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
                if !write(&mut io, head.as_bytes()).await {
                    return;
                }
                for i in 0..n {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let c = b'a' + (i % 26) as u8;
                    if !write(&mut io, &[b'1', b'\r', b'\n', c, b'\r', b'\n']).await {
                        return;
                    }
                }
                if !write(&mut io, b"0\r\n\r\n").await {
                    return;
                }
            }
            f if f.starts_with("status/") => {
                let code: u16 = f["status/".len()..].parse().unwrap_or(500);
                let body = format!(
                    r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"the backend says {code}","reason":"InternalError","code":{code}}}"#
                );
                if !respond(&mut io, code, "Backend Error", "X-Backend: faults\r\nRetry-After: 7\r\n", &body).await {
                    return;
                }
            }
            "big" => {
                let mb: usize = param(query, "mb", 1);
                let head =
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                if io.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut chunk = format!("{:x}\r\n", 64 << 10).into_bytes();
                chunk.extend_from_slice(&[b'x'; 64 << 10]);
                chunk.extend_from_slice(b"\r\n");
                for _ in 0..mb * 16 {
                    if io.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                if !write(&mut io, b"0\r\n\r\n").await {
                    return;
                }
            }
            "" if query.contains("watch=true") => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                let ev = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Thing\",\"metadata\":{\"name\":\"t1\"}}}\n";
                let _ = write(&mut io, format!("{head}{:x}\r\n{ev}\r\n", ev.len()).as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(param(query, "dropAfterMs", 300))).await;
                return reset(io);
            }
            _ => {
                if !respond(&mut io, 404, "Not Found", "", "{}").await {
                    return;
                }
            }
        }
    }
}
