//! pingora as a bare TLS reverse proxy, no chain: the engine's own ceiling for the proxy
//! benches (bench/proxy_vs_nginx.sh). Built from the project's crates and set up as frontdoor
//! sets up its listeners (one single-threaded service per worker, SO_REUSEPORT) and its
//! upstream (TLS verified with a per-peer CA, SNI, optionally the proxy client cert).
//!
//!   cargo run --release --example bare_pingora -- LISTEN CERT KEY BACKEND SNI CA [CLIENT_CERT CLIENT_KEY]
//!
//! WORKERS (env, default 2) sets the worker count.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::utils::tls::{CertKey, WrappedX509};
use std::sync::Arc;

/// frontdoor's allocator (src/main.rs), so that the two differ by the chain alone
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    backend: std::net::SocketAddr,
    sni: String,
    ca: Arc<[WrappedX509]>,
    client: Option<Arc<CertKey>>,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.backend, true, self.sni.clone());
        peer.options.ca = Some(self.ca.clone());
        peer.client_cert_key = self.client.clone();
        Ok(Box::new(peer))
    }
}

fn pem_ders(path: &str) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    rustls_pemfile::certs(&mut data.as_slice()).map(|c| c.expect("certificate").as_ref().to_vec()).collect()
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 6 && a.len() != 8 {
        eprintln!("usage: bare_pingora LISTEN CERT KEY BACKEND SNI CA [CLIENT_CERT CLIENT_KEY]");
        std::process::exit(2);
    }
    let workers: usize = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2);
    let ca: Arc<[WrappedX509]> = pem_ders(&a[5])
        .into_iter()
        .map(|d| WrappedX509::new(d, pingora::utils::tls::parse_x509))
        .collect::<Vec<_>>()
        .into();
    let client = (a.len() == 8).then(|| {
        let key = std::fs::read(&a[7]).expect("client key");
        let key = rustls_pemfile::private_key(&mut key.as_slice()).expect("client key").expect("no key");
        Arc::new(CertKey::new(pem_ders(&a[6]), key.secret_der().to_vec()))
    });
    // shut down as frontdoor does: at once on SIGTERM (the benches stop it so; a PGO-instrumented
    // build writes its profile as it exits)
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let bare = || Bare {
        backend: a[3].parse().expect("BACKEND host:port"),
        sni: a[4].clone(),
        ca: ca.clone(),
        client: client.clone(),
    };
    for _ in 0..workers {
        let mut svc = pingora::proxy::http_proxy_service(&server.configuration, bare());
        let mut tls = pingora::listeners::tls::TlsSettings::intermediate(&a[1], &a[2]).expect("serving cert");
        tls.enable_h2();
        let mut opts = pingora::listeners::TcpSocketOptions::default();
        opts.so_reuseport = Some(true);
        svc.add_tls_with_settings(&a[0], Some(opts), tls);
        server.add_service(svc);
    }
    server.run_forever();
}
