//! A small TLS backend apiserver for aggregation tests (tokio-rustls, hand-written HTTP/1.1):
//! requires a client certificate from a given CA, records every request's headers and the
//! presented client CN, serves discovery for wardle.example.com/v1alpha1, streams a watch
//! slowly (the second event only after `release()`), sends hop-by-hop headers on `/hop` and a redirect on `/redirect`, answers `/slow?delay=MS` late, trickles `/trickle?delay=MS&n=N` a chunk at a time, and
//! echoes bytes after an upgrade (websocket or SPDY), reads Content-Length and chunked request bodies. Can be stopped and restarted on the same port.
#![allow(dead_code)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub mod faults;

pub const GROUP: &str = "wardle.example.com";

/// A CA and a serving cert it signed, for `names`.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki(names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "backend-ca");
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "backend");
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    Pki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub client_cn: String,
}

impl Seen {
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
    }
}

struct State {
    seen: Mutex<Vec<Seen>>,
    release: Notify,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    accepted: std::sync::atomic::AtomicUsize,
}

pub struct TestBackend {
    pub port: u16,
    rt: tokio::runtime::Runtime,
    state: Arc<State>,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A backend's TLS: `pki`'s serving cert, client certs required and verified against `client_ca`.
pub fn server_config(pki: &Pki, client_ca: &Path) -> rustls::ServerConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(client_ca).unwrap().as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().unwrap();
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.cert_pem.as_bytes()).map(|c| c.unwrap()).collect();
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pki.key_pem.as_bytes()).unwrap().unwrap();
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap()
}

impl TestBackend {
    /// Serves with `pki`'s cert, requiring client certs signed by the CA in `client_ca`.
    pub fn start(pki: &Pki, client_ca: &Path) -> TestBackend {
        let config = server_config(pki, client_ca);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let b = TestBackend {
            port,
            rt,
            state: Arc::new(State {
                seen: Mutex::new(Vec::new()),
                release: Notify::new(),
                tasks: Mutex::new(Vec::new()),
                accepted: Default::default(),
            }),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        b.listen();
        b
    }

    fn listen(&self) {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let (state, acceptor) = (self.state.clone(), self.acceptor.clone());
        let listener = self.rt.block_on(async move { TcpListener::bind(addr).await.unwrap() });
        let st = state.clone();
        let task = self.rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, st2) = (acceptor.clone(), st.clone());
                let t = tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        st2.accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        serve_conn(tls, st2).await;
                    }
                });
                st.tasks.lock().unwrap().push(t);
            }
        });
        state.tasks.lock().unwrap().push(task);
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        for t in self.state.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    pub fn restart(&self) {
        self.listen();
    }

    /// Lets a slow watch send its second event.
    pub fn release(&self) {
        self.state.release.notify_waiters();
    }

    /// TLS connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The last request whose target starts with `prefix`.
    pub fn last(&self, prefix: &str) -> Option<Seen> {
        self.seen().into_iter().rev().find(|s| s.target.starts_with(prefix))
    }
}

fn client_cn<IO>(tls: &tokio_rustls::server::TlsStream<IO>) -> String {
    let Some(certs) = tls.get_ref().1.peer_certificates() else {
        return String::new();
    };
    let Some(leaf) = certs.first() else {
        return String::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return String::new();
    };
    let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or("").to_string();
    cn
}

/// The APIResourceList served for any `/apis/<group>/<version>`.
pub fn discovery(gv: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
        "resources": [
            {"name": "flunders", "singularName": "flunder", "namespaced": true, "kind": "Flunder", "verbs": ["create", "delete", "get", "list", "watch"], "shortNames": ["fl"]},
            {"name": "flunders/status", "singularName": "", "namespaced": true, "kind": "Flunder", "verbs": ["get", "patch"]},
            {"name": "fischers", "singularName": "fischer", "namespaced": false, "kind": "Fischer", "verbs": ["get", "list"]}
        ]
    })
}

/// `/version`, `/api`, `/api/v1` and `/apis` as an apiserver without aggregated discovery
/// answers them, whatever the Accept header asks for.
fn legacy_root(path: &str) -> Option<serde_json::Value> {
    Some(match path {
        "/version" => {
            serde_json::json!({"major": "1", "minor": "26", "gitVersion": "v1.26.15-legacy", "gitCommit": "", "gitTreeState": "clean", "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.21", "compiler": "gc", "platform": "linux/amd64"})
        }
        "/api" => serde_json::json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        "/api/v1" => serde_json::json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["get", "list"], "shortNames": ["po"]},
            {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}
        ]}),
        "/apis" => serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
            "name": GROUP,
            "versions": [{"groupVersion": format!("{GROUP}/v1alpha1"), "version": "v1alpha1"}],
            "preferredVersion": {"groupVersion": format!("{GROUP}/v1alpha1"), "version": "v1alpha1"}
        }]}),
        _ => return None,
    })
}

async fn serve_conn<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    tls: tokio_rustls::server::TlsStream<IO>,
    st: Arc<State>,
) {
    let cn = client_cn(&tls);
    let mut io = BufReader::new(tls);
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut it = line.split_whitespace();
        let (method, target) = (it.next().unwrap_or("").to_string(), it.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if io.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default();
        let body = if get("transfer-encoding").eq_ignore_ascii_case("chunked") {
            // a chunked body, so that what follows it is read as the next request
            let mut body = Vec::new();
            loop {
                let mut size = String::new();
                if io.read_line(&mut size).await.unwrap_or(0) == 0 {
                    return;
                }
                let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16) else { return };
                let mut chunk = vec![0; n + 2];
                if io.read_exact(&mut chunk).await.is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body
        } else {
            let len: usize = get("content-length").parse().unwrap_or(0);
            let mut body = vec![0; len];
            if io.read_exact(&mut body).await.is_err() {
                return;
            }
            body
        };
        let seen =
            Seen { method: method.clone(), target: target.clone(), headers: headers.clone(), client_cn: cn.clone() };
        st.seen.lock().unwrap().push(seen);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let flunders = format!("/apis/{GROUP}/v1alpha1/namespaces/default/flunders");
        let upgrade = get("upgrade");
        if !upgrade.is_empty() {
            // websocket, or SPDY/3.1 as kubectl exec/attach/port-forward ask for
            let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\n\r\n");
            let _ = io.write_all(head.as_bytes()).await;
            let _ = io.flush().await;
            let mut buf = [0u8; 4096];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() || io.flush().await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let delay = query.split('&').find_map(|kv| kv.strip_prefix("delay=")).and_then(|v| v.parse::<u64>().ok());
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let ok = if let Some(doc) = legacy_root(path) {
            // an old apiserver's discovery (no aggregated discovery), for an upstream test
            respond(&mut io, 200, &doc.to_string()).await
        } else if segs.len() == 3 && segs[0] == "apis" {
            respond(&mut io, 200, &discovery(&format!("{}/{}", segs[1], segs[2])).to_string()).await
        } else if path == flunders && query.contains("watch=true") {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let ev = |n: u32| {
                let e = format!(
                    "{{\"type\":\"ADDED\",\"object\":{{\"kind\":\"Flunder\",\"metadata\":{{\"name\":\"f{n}\"}}}}}}\n"
                );
                format!("{:x}\r\n{e}\r\n", e.len())
            };
            let mut ok = io.write_all(head.as_bytes()).await.is_ok()
                && io.write_all(ev(1).as_bytes()).await.is_ok()
                && io.flush().await.is_ok();
            match delay {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => {
                    let _ = tokio::time::timeout(Duration::from_secs(20), st.release.notified()).await;
                }
            }
            ok = ok
                && io.write_all(ev(2).as_bytes()).await.is_ok()
                && io.write_all(b"0\r\n\r\n").await.is_ok()
                && io.flush().await.is_ok();
            ok
        } else if path == format!("{flunders}/big") {
            // `mb` MiB of body, chunked, 64 KiB at a time
            let mb: usize =
                query.split('&').find_map(|kv| kv.strip_prefix("mb=")).and_then(|v| v.parse().ok()).unwrap_or(1);
            let mut ok = io
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
                )
                .await
                .is_ok();
            let chunk = vec![b'x'; 64 << 10];
            for _ in 0..mb * 16 {
                if !ok {
                    break;
                }
                ok = io.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_ok()
                    && io.write_all(&chunk).await.is_ok()
                    && io.write_all(b"\r\n").await.is_ok();
            }
            ok && io.write_all(b"0\r\n\r\n").await.is_ok() && io.flush().await.is_ok()
        } else if path == format!("{flunders}/trickle") {
            // `n` small chunks, one every `delay` ms: each read is quick, the whole is slow
            let n: usize =
                query.split('&').find_map(|kv| kv.strip_prefix("n=")).and_then(|v| v.parse().ok()).unwrap_or(10);
            let mut ok = io
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .is_ok()
                && io.flush().await.is_ok();
            for i in 0..n {
                tokio::time::sleep(Duration::from_millis(delay.unwrap_or(300))).await;
                let piece = if i + 1 == n { "done\n".to_string() } else { format!("{i} ") };
                ok = ok
                    && io.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes()).await.is_ok()
                    && io.flush().await.is_ok();
            }
            ok && io.write_all(b"0\r\n\r\n").await.is_ok() && io.flush().await.is_ok()
        } else if method == "POST" && path == format!("{flunders}/upload") {
            respond(&mut io, 200, &format!("{{\"received\":{}}}", body.len())).await
        } else if path == format!("{flunders}/slow") {
            tokio::time::sleep(Duration::from_millis(delay.unwrap_or(3000))).await;
            respond(&mut io, 200, "{\"kind\":\"Flunder\",\"metadata\":{\"name\":\"slow\"}}").await
        } else if path == format!("{flunders}/redirect") {
            // a redirect to where the client's credentials should not go
            let msg = "HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1:1/api/v1/secrets\r\nContent-Length: 0\r\n\r\n";
            io.write_all(msg.as_bytes()).await.is_ok() && io.flush().await.is_ok()
        } else if path == format!("{flunders}/hop") {
            // hop-by-hop headers of its own, some nominated by its Connection header
            let body = "{}";
            let msg = format!(
                "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: backend-private\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            io.write_all(msg.as_bytes()).await.is_ok() && io.flush().await.is_ok()
        } else if path.starts_with(&flunders) {
            let body = serde_json::json!({"kind": "FlunderList", "apiVersion": format!("{GROUP}/v1alpha1"), "items": [], "seen": {"cn": cn, "headers": headers}});
            respond(&mut io, 200, &body.to_string()).await
        } else {
            respond(&mut io, 404, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"NotFound\",\"code\":404}").await
        };
        if !ok {
            return;
        }
    }
}

async fn respond<W: AsyncWriteExt + Unpin>(w: &mut W, code: u16, body: &str) -> bool {
    let reason = if code == 200 { "OK" } else { "Not Found" };
    let msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(msg.as_bytes()).await.is_ok() && w.flush().await.is_ok()
}
