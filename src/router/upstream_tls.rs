//! TLS to backends and the upstream apiserver: one rustls client config per distinct trust and
//! client certificate, built once, and a pingora connector that dials with it.
//!
//! Why not pingora's own upstream TLS: pingora 0.9 gives every peer with its own CA list
//! (`options.ca`, a backend's caBundle) a config without client auth unless the peer carries the
//! client cert itself (`client_cert_key`), and a peer carrying it pays on every request: the
//! connection pool keys connections by the peer's hash, and `HttpPeer`'s hash formats each
//! certificate's serial number (`get_serial`, a `String` per byte) on every pool get and release.
//! It also builds a fresh `ClientConfig`, root store and verifier on every new connection (so
//! no TLS session resumption), and its `ConnectorOptions` (one CA file and one client cert,
//! read once) have no per-backend trust, no custom verifier and no reload.
//!
//! What we do instead, without changing pingora: a proxied peer carries neither the client cert
//! nor the CA list. Its ALPN is a private `ALPN::Custom` naming the [`UpstreamTls`] it dials
//! with; that routes pingora's `get_http_session` to our [`UpstreamConnector`] (pingora's
//! custom-protocol hook), which connects and handshakes with the prebuilt config and hands the
//! TLS stream back as a plain stream: pingora runs HTTP/1.1 on it and pools it in its own h1
//! pool as before. The peer hash is then a few integers and a string; a caBundle or client
//! cert change builds a new `UpstreamTls` (found by content, so an unchanged one is reused
//! across the probers' rebuilds) whose id goes into the peer's `group_key`, so connections
//! made with the old one are never reused for it.
//!
//! Alternatives rejected: the connector-wide client cert (`ConnectorOptions::cert_key_file`) is
//! lost on every peer with a caBundle and cannot be reloaded; one proxy service per trust cannot
//! be chosen per request; rebuilding the services on reload leaves keep-alive clients on the
//! old ones.

use once_cell::sync::Lazy;
use pingora::connectors::http::custom::{Connection, Connector as CustomConnector};
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::protocols::tls::ALPN;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::upstreams::peer::Peer;
use pingora::utils::tls::CertKey;
use pingora::{Error, ErrorType, OrErr};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The private ALPN name prefix of peers dialled by [`UpstreamConnector`]; never on the wire.
const ALPN_PREFIX: &str = "frontdoor-upstream-tls/";

/// Whom a backend's serving certificate must chain to.
pub enum Trust<'a> {
    /// The caBundle (or `--upstream-apiserver-ca-file`), DER.
    Roots(&'a [Vec<u8>]),
    /// The platform's roots (an upstream apiserver without a CA file).
    System,
    /// `insecureSkipTLSVerify`: any certificate (handshake signatures are still checked).
    Insecure,
}

/// A prebuilt rustls client config: one trust and one client certificate.
pub struct UpstreamTls {
    id: u64,
    config: Arc<ClientConfig>,
    alpn: ALPN,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Every live [`UpstreamTls`], by content (so rebuilding a peer with the same trust and cert
/// reuses it: same pool group, warm session cache) and by id (the connector's lookup). A config
/// lives while a peer holder (a backend's `Upstream`, the delegate) keeps it, and [`GRACE`]
/// after its last claim: a request that took a peer just before its holder was replaced (a
/// rotated cert, an edited caBundle) may still dial with it.
#[derive(Default)]
struct Registry {
    by_content: HashMap<Vec<u8>, u64>,
    by_id: HashMap<u64, (Arc<UpstreamTls>, Instant)>,
}

/// How long a config no holder keeps stays dialable.
const GRACE: Duration = Duration::from_secs(60);

impl Registry {
    fn prune(&mut self, now: Instant) {
        self.by_id.retain(|_, (t, claimed)| Arc::strong_count(t) > 1 || now.duration_since(*claimed) < GRACE);
        let by_id = &self.by_id;
        self.by_content.retain(|_, id| by_id.contains_key(id));
    }
}

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The exact content a config is built from: trust and client cert (chain and key).
fn content_key(trust: &Trust<'_>, client: Option<&CertKey>) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    }
    let mut k = Vec::new();
    match trust {
        Trust::Roots(cas) => {
            k.push(b'r');
            for c in *cas {
                put(&mut k, c);
            }
        }
        Trust::System => k.push(b's'),
        Trust::Insecure => k.push(b'i'),
    }
    if let Some(c) = client {
        k.push(b'c');
        put(&mut k, c.leaf().borrow_raw_cert());
        for i in c.intermediates() {
            put(&mut k, i.borrow_raw_cert());
        }
        put(&mut k, c.key());
    }
    k
}

impl UpstreamTls {
    /// The config for `trust` presenting `client`: the live one with this content, or a new one.
    pub fn get(trust: Trust<'_>, client: Option<&CertKey>) -> anyhow::Result<Arc<UpstreamTls>> {
        let key = content_key(&trust, client);
        let now = Instant::now();
        let mut reg = REGISTRY.lock().unwrap();
        reg.prune(now);
        if let Some(id) = reg.by_content.get(&key).copied() {
            let (t, claimed) = reg.by_id.get_mut(&id).expect("pruned together");
            *claimed = now;
            return Ok(t.clone());
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let t = Arc::new(UpstreamTls {
            id,
            config: Arc::new(build_config(trust, client)?),
            alpn: ALPN::Custom(pingora::protocols::tls::CustomALPN::new(format!("{ALPN_PREFIX}{id}").into_bytes())),
        });
        reg.by_content.insert(key, id);
        reg.by_id.insert(id, (t.clone(), now));
        Ok(t)
    }

    /// Makes `peer` dial with this config: no client cert or CA list of its own (nothing
    /// certificate-shaped in its hash), and `group` mixed with this config's id as its pool
    /// group, so a rotated cert or changed caBundle never reuses the old connections.
    pub fn apply(&self, peer: &mut pingora::prelude::HttpPeer, group: u64) {
        peer.client_cert_key = None;
        peer.options.ca = None;
        peer.options.alpn = self.alpn.clone();
        peer.group_key = group ^ self.id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn lookup(id: u64) -> Option<Arc<UpstreamTls>> {
        REGISTRY.lock().unwrap().by_id.get(&id).map(|(t, _)| t.clone())
    }
}

fn build_config(trust: Trust<'_>, client: Option<&CertKey>) -> anyhow::Result<ClientConfig> {
    pingora_rustls::install_default_crypto_provider();
    let builder = ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13]);
    let builder = match trust {
        Trust::Roots(cas) => {
            let mut roots = RootCertStore::empty();
            for c in cas {
                roots.add(CertificateDer::from(c.clone())).map_err(|e| anyhow::anyhow!("caBundle: {e}"))?;
            }
            builder.with_root_certificates(roots)
        }
        Trust::System => {
            let mut roots = RootCertStore::empty();
            pingora_rustls::load_platform_certs_incl_env_into_store(&mut roots)
                .map_err(|e| anyhow::anyhow!("platform CA certificates: {e}"))?;
            builder.with_root_certificates(roots)
        }
        Trust::Insecure => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert::new())),
    };
    let mut config = match client {
        Some(c) => {
            let mut chain = vec![CertificateDer::from(c.leaf().borrow_raw_cert().clone())];
            chain.extend(c.intermediates().into_iter().map(|i| CertificateDer::from(i.borrow_raw_cert().clone())));
            let key = PrivateKeyDer::try_from(c.key().clone()).map_err(|e| anyhow::anyhow!("client key: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| anyhow::anyhow!("client cert: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// `insecureSkipTLSVerify`: accepts any server certificate, still verifying the handshake
/// signatures made with its key.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl AnyServerCert {
    fn new() -> Self {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        AnyServerCert(provider)
    }
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The [`UpstreamTls`] a peer was marked with by [`UpstreamTls::apply`].
fn tls_of<P: Peer>(peer: &P) -> pingora::Result<Arc<UpstreamTls>> {
    let id = match peer.get_peer_options().map(|o| &o.alpn) {
        Some(ALPN::Custom(c)) => std::str::from_utf8(c.protocol())
            .ok()
            .and_then(|p| p.strip_prefix(ALPN_PREFIX))
            .and_then(|id| id.parse().ok()),
        _ => None,
    };
    id.and_then(UpstreamTls::lookup)
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream peer without a TLS config"))
}

/// Bounds `f` by the peer's connection timeout, as pingora bounds its TCP connect and its TLS
/// handshake each; running out is `timed_out` (a stalled handshake is Go's `TLS handshake
/// timeout`, not a dial's).
async fn bounded<T>(
    t: Option<Duration>,
    timed_out: ErrorType,
    what: &str,
    f: impl std::future::Future<Output = pingora::Result<T>>,
) -> pingora::Result<T> {
    match t {
        Some(t) => {
            tokio::time::timeout(t, f).await.map_err(|_| Error::explain(timed_out, format!("timeout {t:?} {what}")))?
        }
        None => f.await,
    }
}

/// pingora's upstream connector for peers marked by [`UpstreamTls::apply`]: TCP, then the TLS
/// handshake with the prebuilt config. Reuse stays pingora's: the stream comes back as a plain
/// stream, pingora speaks HTTP/1.1 on it and pools it in its h1 pool (looked up there first).
#[derive(Clone, Copy, Default)]
pub struct UpstreamConnector;

#[async_trait::async_trait]
impl CustomConnector for UpstreamConnector {
    type Session = ();

    async fn get_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> pingora::Result<(Connection<()>, bool)> {
        let tls = tls_of(peer)?;
        let PeerAddr::Inet(addr) = peer.address() else {
            return Error::e_explain(ErrorType::InternalError, "upstream peer is not an inet address");
        };
        let to = peer.connection_timeout();
        let connect = async {
            let dial = pingora::protocols::l4::ext::connect(addr, None);
            let tcp = bounded(to, ErrorType::ConnectTimedout, &format!("connecting to {addr}"), dial).await?;
            let mut stream = pingora::protocols::l4::stream::Stream::from(tcp);
            stream.set_nodelay().or_err(ErrorType::ConnectError, "TCP_NODELAY")?;
            // the connection's addresses, read from the socket once and kept with it (the head
            // deadline reads them on every request it carries). Not preset from the dialled
            // address, as pingora's own connector does: the head deadline compares them with
            // what the socket says, and for 0.0.0.0 or [::] that is another address
            let digest = SocketDigest::from_raw_fd(std::os::fd::AsRawFd::as_raw_fd(&stream));
            stream.set_socket_digest(digest);
            let connector = pingora_rustls::TlsConnector::from(tls.config.clone());
            let handshake = pingora::protocols::tls::client::handshake(&connector, peer.sni(), stream);
            bounded(to, ErrorType::TLSHandshakeTimedout, &format!("in the TLS handshake with {addr}"), handshake).await
        };
        // the whole of it within what is left of the request's deadline (the proxy sets it)
        let total = peer.total_connection_timeout();
        let tls_stream = bounded(total, ErrorType::ConnectTimedout, &format!("connecting to {addr}"), connect).await?;
        Ok((Connection::Stream(Box::new(tls_stream)), false))
    }

    async fn reused_http_session<P: Peer + Send + Sync + 'static>(&self, _peer: &P) -> Option<()> {
        None
    }

    async fn release_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        _session: (),
        _peer: &P,
        _idle_timeout: Option<Duration>,
    ) {
    }
}

/// pingora's HTTP proxy application for `inner`, dialling upstreams with [`UpstreamConnector`],
/// for frontdoor's own accept loop (`crate::tls::SecureListener`).
///
/// pingora 0.9 builds a proxy with a custom connector only inside a listening `Service`
/// (`ProxyServiceBuilder::custom(..).build()`; its constructor is private, and the plain
/// `http_proxy` fixes the connector to none): the application is moved out of that service,
/// which is then forgotten (a few bytes, once per worker).
pub fn http_proxy<SV>(
    conf: &Arc<pingora::server::configuration::ServerConf>,
    inner: SV,
    server_options: pingora::apps::HttpServerOptions,
) -> pingora::proxy::HttpProxy<SV, UpstreamConnector>
where
    SV: pingora::proxy::ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync + 'static,
{
    // frontdoor's listener never forces the custom protocol on a downstream connection
    let no_custom_downstream: pingora::proxy::ProcessCustomSession<SV, UpstreamConnector> =
        Arc::new(|_, _, _| Box::pin(async { None }));
    let service = pingora::proxy::ProxyServiceBuilder::new(conf, inner)
        .custom(UpstreamConnector, no_custom_downstream)
        .server_options(server_options)
        .build();
    let app: *const pingora::proxy::HttpProxy<SV, UpstreamConnector> =
        service.app_logic().expect("a built service holds its application");
    // SAFETY: `app` points at the service's live, initialised application; it is read out
    // (moved) once and the service is forgotten right after without being used again, so the
    // application is neither dropped nor used twice. Nothing in it points into the service.
    let proxy = unsafe { std::ptr::read(app) };
    std::mem::forget(service);
    proxy
}

/// The HTTP connector of frontdoor's own upstream calls (probes, refreshes).
pub fn http_connector() -> pingora::connectors::http::Connector<UpstreamConnector> {
    pingora::connectors::http::Connector::new_custom(None, UpstreamConnector)
}

/// The CA certificates of a PEM bundle (an APIService's caBundle, the upstream's CA file),
/// each checked to parse; `what` names the source in the error. At least one is required.
pub fn parse_cas(pem: &[u8], what: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut cas = Vec::new();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        let der = c.map_err(|e| anyhow::anyhow!("{what}: {e}"))?.as_ref().to_vec();
        x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        cas.push(der);
    }
    if cas.is_empty() {
        anyhow::bail!("{what}: no certificate found");
    }
    Ok(cas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cn: &str) -> (Vec<u8>, CertKey) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let leaf = p.signed_by(&key, &ca, &ca_key).unwrap();
        (ca.der().to_vec(), CertKey::new(vec![leaf.der().to_vec()], key.serialize_der()))
    }

    /// A CA, and a serving cert for `name` signed by it (PEM-free: DER and the key's DER).
    fn serving(name: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
        (ca.der().to_vec(), leaf.der().to_vec(), key.serialize_der())
    }

    /// Handshakes `tls` with SNI `sni` against a server presenting `leaf`; the client
    /// certificate the server saw, or the client's error.
    async fn handshake(tls: &UpstreamTls, sni: &str, leaf: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let server = rustls::ServerConfig::builder()
            .with_client_cert_verifier(Arc::new(AcceptAnyClient))
            .with_single_cert(vec![CertificateDer::from(leaf.to_vec())], PrivateKeyDer::try_from(key.to_vec()).unwrap())
            .unwrap();
        let (c, s) = tokio::io::duplex(64 << 10);
        let accept = tokio::spawn(async move {
            let mut s = tokio_rustls::TlsAcceptor::from(Arc::new(server)).accept(s).await.ok()?;
            let seen = s.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
            tokio::io::AsyncWriteExt::shutdown(&mut s).await.ok();
            Some(seen)
        });
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let connected = tokio_rustls::TlsConnector::from(tls.config.clone()).connect(name, c).await;
        match connected {
            Ok(_) => Ok(accept.await.unwrap().flatten()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[derive(Debug)]
    struct AcceptAnyClient;
    impl rustls::server::danger::ClientCertVerifier for AcceptAnyClient {
        fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
            &[]
        }
        fn verify_client_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: UnixTime,
        ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
            Ok(rustls::server::danger::ClientCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            AnyServerCert::new().verify_tls12_signature(m, c, d)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            AnyServerCert::new().verify_tls13_signature(m, c, d)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            AnyServerCert::new().supported_verify_schemes()
        }
    }

    /// A server that accepts the connection and never answers the handshake: Go's words for it.
    #[tokio::test]
    async fn a_stalled_handshake_is_a_tls_handshake_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let tls = UpstreamTls::get(Trust::Insecure, None).unwrap();
        let mut peer = pingora::prelude::HttpPeer::new(addr, true, "api.example.svc".to_string());
        peer.options.connection_timeout = Some(Duration::from_millis(200));
        tls.apply(&mut peer, 1);
        let e = UpstreamConnector.get_http_session(&peer).await.err().expect("no handshake");
        assert_eq!(e.etype, ErrorType::TLSHandshakeTimedout, "{e}");
        let s = crate::router::proxy::error_status(&e, Some(&addr.to_string()));
        assert_eq!(s.message, "error trying to reach service: net/http: TLS handshake timeout");
    }

    /// The head deadline reads a connection's addresses on every request it carries: they are
    /// the stream's, read once, and exactly what the socket says (which the head deadline
    /// compares them with before it cuts a connection), also when dialled as 0.0.0.0.
    #[tokio::test]
    async fn a_dialled_connection_carries_its_addresses() {
        pingora_rustls::install_default_crypto_provider();
        let (_, leaf, key) = serving("api.example.svc");
        let server = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![CertificateDer::from(leaf)], PrivateKeyDer::try_from(key).unwrap())
                .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(tokio_rustls::TlsAcceptor::from(server.clone()).accept(s).await.unwrap());
            }
        });
        let tls = UpstreamTls::get(Trust::Insecure, None).unwrap();
        for dialled in ["127.0.0.1", "0.0.0.0"] {
            let addr: std::net::SocketAddr = format!("{dialled}:{port}").parse().unwrap();
            let mut peer = pingora::prelude::HttpPeer::new(addr, true, "api.example.svc".to_string());
            tls.apply(&mut peer, 1);
            let (Connection::Stream(stream), _) = UpstreamConnector.get_http_session(&peer).await.unwrap() else {
                panic!("a stream")
            };
            let digest = stream.get_socket_digest().expect("a socket digest");
            let fd = stream.id();
            let (local, remote) = (PeerAddr::from_raw_fd(fd, false), PeerAddr::from_raw_fd(fd, true));
            assert_eq!(digest.peer_addr(), remote.as_ref(), "dialled {dialled}");
            assert_eq!(digest.local_addr(), local.as_ref(), "dialled {dialled}");
            assert_eq!(remote.and_then(|a| a.as_inet().copied()), Some(([127, 0, 0, 1], port).into()));
        }
        accepting.abort();
    }

    #[tokio::test]
    async fn verifies_the_backend_by_its_ca_bundle_and_name_and_presents_the_client_cert() {
        pingora_rustls::install_default_crypto_provider();
        let (ca, leaf, key) = serving("api.wardle.svc");
        let (other_ca, _, _) = serving("api.wardle.svc");
        let (_, client) = pair("front-proxy-client");
        let presented = Some(client.leaf().borrow_raw_cert().clone());
        let cas = vec![ca];
        let verified = UpstreamTls::get(Trust::Roots(&cas), Some(&client)).unwrap();
        assert_eq!(handshake(&verified, "api.wardle.svc", &leaf, &key).await, Ok(presented.clone()));
        let wrong_name = handshake(&verified, "other.wardle.svc", &leaf, &key).await.unwrap_err();
        assert!(wrong_name.contains("not valid for name"), "{wrong_name}");
        let others = vec![other_ca];
        let wrong_ca = UpstreamTls::get(Trust::Roots(&others), Some(&client)).unwrap();
        let err = handshake(&wrong_ca, "api.wardle.svc", &leaf, &key).await.unwrap_err();
        assert!(err.contains("invalid peer certificate"), "{err}");
        // insecureSkipTLSVerify: any certificate, any name; still the client cert
        let insecure = UpstreamTls::get(Trust::Insecure, Some(&client)).unwrap();
        assert_eq!(handshake(&insecure, "other.wardle.svc", &leaf, &key).await, Ok(presented));
        let anonymous = UpstreamTls::get(Trust::Insecure, None).unwrap();
        assert_eq!(handshake(&anonymous, "api.wardle.svc", &leaf, &key).await, Ok(None));
    }

    #[test]
    fn same_content_same_config_changed_content_new_one() {
        let (ca, client) = pair("a");
        let (ca2, rotated) = pair("b");
        let cas = vec![ca.clone()];
        let a = UpstreamTls::get(Trust::Roots(&cas), Some(&client)).unwrap();
        let copy = vec![ca.clone()]; // equal content, another allocation
        let again = UpstreamTls::get(Trust::Roots(&copy), Some(&client)).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let other_cert = UpstreamTls::get(Trust::Roots(&cas), Some(&rotated)).unwrap();
        let other_ca = UpstreamTls::get(Trust::Roots(&[ca2]), Some(&client)).unwrap();
        let insecure = UpstreamTls::get(Trust::Insecure, Some(&client)).unwrap();
        let ids = [a.id, other_cert.id, other_ca.id, insecure.id];
        assert!(ids.iter().enumerate().all(|(i, x)| ids[i + 1..].iter().all(|y| x != y)), "{ids:?}");
        // dropped by every holder: still dialable for the grace period, then gone
        let id = insecure.id;
        drop(insecure);
        assert!(UpstreamTls::lookup(id).is_some());
        REGISTRY.lock().unwrap().prune(Instant::now() + GRACE * 2);
        assert!(UpstreamTls::lookup(id).is_none());
        assert!(UpstreamTls::lookup(a.id).is_some(), "a holder keeps it past the grace period");
    }

    #[test]
    fn a_marked_peer_hashes_without_certificates_and_moves_pools_with_its_config() {
        let (ca, client) = pair("a");
        let (_, rotated) = pair("b");
        let cas = vec![ca];
        let tls = UpstreamTls::get(Trust::Roots(&cas), Some(&client)).unwrap();
        let addr: std::net::SocketAddr = "127.0.0.1:443".parse().unwrap();
        let mut peer = pingora::prelude::HttpPeer::new(addr, true, "api.ns.svc".into());
        peer.client_cert_key =
            Some(Arc::new(CertKey::new(vec![client.leaf().borrow_raw_cert().clone()], client.key().clone())));
        tls.apply(&mut peer, 7);
        assert!(peer.client_cert_key.is_none() && peer.options.ca.is_none());
        assert_eq!(tls_of(&peer).unwrap().id, tls.id);
        let rotated_tls = UpstreamTls::get(Trust::Roots(&cas), Some(&rotated)).unwrap();
        let mut after = peer.clone();
        rotated_tls.apply(&mut after, 7);
        assert_ne!(peer.reuse_hash(), after.reuse_hash(), "a rotated cert must not reuse old connections");
        let unmarked = pingora::prelude::HttpPeer::new(addr, true, "api.ns.svc".into());
        assert!(tls_of(&unmarked).is_err());
    }
}
