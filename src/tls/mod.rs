//! TLS for the secure port: rustls under pingora's HTTP layer, TLS 1.2+ only, HTTP/2 and HTTP/1.1 by
//! ALPN. The serving cert and the client CAs sit behind `ArcSwap`s so both reload live.
//! Client certificates are optional, but one that is presented must verify against a client
//! CA or the handshake fails. The verified chain reaches the request as a [`PeerIdentity`].
//!
//! The secure port's accept loop is ours ([`SecureListener`]), not pingora's listening service:
//! pingora 0.9 bounds a downstream handshake by a fixed 60 s (`services/listening.rs`), allocates
//! the connection's 64 KiB L4 read buffer and spawns the whole session's task before the first
//! byte arrives. Here a connection that has not finished its TLS handshake within
//! `--tls-handshake-timeout` (10 s) is closed, and until its first byte arrives it holds only a
//! socket and a small task: no TLS state, no buffers (about 1 KB of RSS per silent connection
//! where pingora's listener took about 40-47 KB, 10,000 of them; `bench/idle_connections.sh`).

mod stream;
mod unbuffered;

pub use stream::{PeerIdentities, ServerStream};

use crate::authn::user::UserInfo;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The verified client certificate of a connection.
///
/// Verified at the handshake, and again for a request when the client CAs have changed since:
/// kube verifies each request's chain against the CAs and the time of that request, so a CA
/// removed from a bundle, or a certificate past its `notAfter`, no longer authenticates an
/// open connection (an HTTP/2 connection with a watch lives as long as the client likes).
#[derive(Debug)]
pub struct PeerIdentity {
    /// The certificate's subject as the x509 authenticator names its user: the CN, then the
    /// Os and `system:authenticated` as groups. Built once with the connection, and shared by
    /// its requests' contexts (an HTTP/1.1 watch's), which held a copy each.
    pub user: Arc<UserInfo>,
    /// The chain as presented, to verify again against changed CAs (none in unit tests' made-up
    /// identities, whose roles stand).
    chain: Box<[CertificateDer<'static>]>,
    /// The presented chain's validity (the latest notBefore, the earliest notAfter), in Unix
    /// seconds.
    not_before: i64,
    not_after: i64,
    /// Which CAs verified the chain (the low byte, a [`CaRoles`]) as of which generation of
    /// the [`ClientCas`] (the rest): one word, so a request never reads roles of one
    /// generation beside the number of another.
    verified: AtomicU64,
}

/// The roles a trusted client CA plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaRole {
    /// `--client-ca-file`: the x509 authenticator's CA.
    ClientCa,
    /// `--requestheader-client-ca-file`: the authenticating proxy's CA.
    RequestHeaderCa,
}

impl PeerIdentity {
    /// An identity with fixed roles, no chain and no expiry, for unit tests only: a real
    /// one comes from the handshake (`identity_of`) and is verified again when the CAs change.
    #[cfg(test)]
    pub fn new(common_name: String, organizations: Vec<String>, verified_by: CaRoles) -> Self {
        let user = UserInfo::new(common_name, organizations).with_authenticated_group();
        let verified = AtomicU64::new(verified_by.0 as u64);
        PeerIdentity {
            user: Arc::new(user),
            chain: Box::default(),
            not_before: i64::MIN,
            not_after: i64::MAX,
            verified,
        }
    }

    pub fn common_name(&self) -> &str {
        &self.user.username
    }

    /// The roles whose CAs verify the certificate now, or why it verifies for none: Go's
    /// x509 error for a certificate outside its validity (kube's x509 and request-header
    /// authenticators then fail the request, never take it for anonymous). The chain is
    /// verified again only when `cas` changed since it last was.
    pub fn verified_by(&self, cas: Option<&ClientCas>) -> Result<CaRoles, String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        if now < self.not_before || now > self.not_after {
            let at = |secs: i64| {
                chrono::DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            };
            let (word, bound) =
                if now > self.not_after { ("after", self.not_after) } else { ("before", self.not_before) };
            return Err(format!(
                "x509: certificate has expired or is not yet valid: current time {} is {word} {}",
                at(now).unwrap_or_default(),
                at(bound).unwrap_or_default()
            ));
        }
        let verified = self.verified.load(Ordering::Acquire);
        let Some(cas) = cas.filter(|c| !self.chain.is_empty() && c.generation() != verified >> 8) else {
            return Ok(CaRoles(verified as u8));
        };
        let generation = cas.generation();
        let roles = cas.roles_for(&self.chain);
        // the newest verification stays: generations only grow
        self.verified.fetch_max(generation << 8 | roles.0 as u64, Ordering::AcqRel);
        Ok(roles)
    }
}

/// A set of [`CaRole`]s, in a byte: every connection with a client certificate holds one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaRoles(u8);

impl CaRoles {
    pub fn contains(&self, role: &CaRole) -> bool {
        self.0 & (1 << *role as u8) != 0
    }
}

impl FromIterator<CaRole> for CaRoles {
    fn from_iter<I: IntoIterator<Item = CaRole>>(roles: I) -> Self {
        CaRoles(roles.into_iter().fold(0, |set, role| set | 1 << role as u8))
    }
}

impl<const N: usize> From<[CaRole; N]> for CaRoles {
    fn from(roles: [CaRole; N]) -> Self {
        roles.into_iter().collect()
    }
}

fn provider() -> Arc<CryptoProvider> {
    pingora::tls::install_default_crypto_provider();
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Reads every certificate in a PEM file; an empty or unreadable file is an error.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let data = crate::reload::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: invalid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate found", path.display());
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let data = crate::reload::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| anyhow::anyhow!("{}: invalid PEM: {e}", path.display()))?
        .ok_or_else(|| anyhow::anyhow!("{}: no private key found", path.display()))
}

/// A root store from a CA bundle file.
pub fn load_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The serving certificate, swapped whole on reload.
#[derive(Debug)]
pub struct ServingCert {
    current: ArcSwap<CertifiedKey>,
}

impl ServingCert {
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        Ok(ServingCert { current: ArcSwap::from_pointee(Self::read(cert, key)?) })
    }

    fn read(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
        let chain = load_certs(cert)?;
        let key_der = load_key(key)?;
        let ck = CertifiedKey::from_der(chain, key_der, &provider())
            .map_err(|e| anyhow::anyhow!("{} / {}: {e}", cert.display(), key.display()))?;
        Ok(ck)
    }

    /// Replaces the serving cert; on error the old one stays.
    pub fn reload(&self, cert: &Path, key: &Path) -> anyhow::Result<()> {
        self.current.store(Arc::new(Self::read(cert, key)?));
        Ok(())
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The trusted client CAs, by role, each a webpki verifier.
#[derive(Default)]
pub struct ClientCas {
    pools: ArcSwap<Vec<(CaRole, Arc<dyn ClientCertVerifier>)>>,
    /// Counts the changes of `pools`: a connection's identity verified under an older count is
    /// verified again.
    generation: AtomicU64,
}

impl std::fmt::Debug for ClientCas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCas")
    }
}

impl ClientCas {
    /// Sets (or with `None` removes) the CA bundle for a role; a bad bundle leaves the old one.
    pub fn set(&self, role: CaRole, bundle: Option<&Path>) -> anyhow::Result<()> {
        let verifier = match bundle {
            Some(path) => {
                let roots = load_roots(path)?;
                Some(
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        // read, modify and write as one (`rcu` retries if another role's reload stored in
        // between): each role's file has its own reload thread, and a plain load-then-store
        // lost one of two concurrent reloads, leaving a rotated CA's old bundle in force
        self.pools.rcu(|pools| {
            let mut pools: Vec<_> = pools.iter().filter(|(r, _)| *r != role).cloned().collect();
            if let Some(v) = &verifier {
                pools.push((role, v.clone()));
            }
            pools
        });
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a CA is set for `role`.
    pub fn has(&self, role: CaRole) -> bool {
        self.pools.load().iter().any(|(r, _)| *r == role)
    }

    /// The roles whose CA verifies this chain.
    pub fn roles_for(&self, chain: &[CertificateDer<'static>]) -> CaRoles {
        let Some((leaf, rest)) = chain.split_first() else { return CaRoles::default() };
        let now = UnixTime::now();
        self.pools
            .load()
            .iter()
            .filter(|(_, v)| v.verify_client_cert(leaf, rest, now).is_ok())
            .map(|(r, _)| *r)
            .collect()
    }
}

/// Verifies a presented client cert against every trusted CA; no cert is fine.
#[derive(Debug)]
pub struct ClientVerifier {
    pub cas: Arc<ClientCas>,
    provider: Arc<CryptoProvider>,
}

impl ClientVerifier {
    pub fn new(cas: Arc<ClientCas>) -> Self {
        ClientVerifier { cas, provider: provider() }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        !self.cas.pools.load().is_empty()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let pools = self.cas.pools.load();
        let mut last = rustls::Error::General("no client CA configured".into());
        for (_, v) in pools.iter() {
            match v.verify_client_cert(end_entity, intermediates, now) {
                Ok(ok) => return Ok(ok),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// CN and every O of a leaf certificate, as Go's `pkix.Name` reads them: of several CNs the
/// last (each overwrites the one before), every O in order.
pub fn subject_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> (String, Vec<String>) {
    let subject = cert.subject();
    let cn = subject.iter_common_name().filter_map(|a| a.as_str().ok()).last().unwrap_or("").to_string();
    let orgs = subject.iter_organization().filter_map(|a| a.as_str().ok().map(str::to_string)).collect();
    (cn, orgs)
}

/// The verified identity of a finished handshake's client certificate, if it presented one.
pub(crate) fn identity_of(cas: &ClientCas, conn: &rustls::CommonState) -> Option<Arc<PeerIdentity>> {
    let chain = conn.peer_certificates()?;
    let (_, leaf) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    let (common_name, organizations) = subject_of(&leaf);
    // the chain is valid while every certificate the client presented is (Go's Verify checks
    // each one of the chain it builds): an intermediate expiring before the leaf ends it too
    let (mut not_before, mut not_after) =
        (leaf.validity().not_before.timestamp(), leaf.validity().not_after.timestamp());
    for cert in &chain[1..] {
        if let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) {
            not_before = not_before.max(c.validity().not_before.timestamp());
            not_after = not_after.min(c.validity().not_after.timestamp());
        }
    }
    // the generation before the roles: a reload in between is seen at the first request
    let generation = cas.generation();
    let roles = cas.roles_for(chain);
    Some(Arc::new(PeerIdentity {
        user: Arc::new(UserInfo::new(common_name, organizations).with_authenticated_group()),
        chain: chain.into(),
        not_before,
        not_after,
        verified: AtomicU64::new(generation << 8 | roles.0 as u64),
    }))
}

/// The listener's TLS settings: TLS 1.2 and 1.3, our cert resolver and client verifier,
/// h2 preferred to http/1.1 (pingora's `TlsSettings` with `enable_h2`).
pub fn listener_settings(cert: Arc<ServingCert>, cas: Arc<ClientCas>) -> anyhow::Result<ListenerTls> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| anyhow::anyhow!("TLS settings: {e}"))?
        .with_client_cert_verifier(Arc::new(ClientVerifier::new(cas.clone())))
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Sessions resume from tickets that carry the session themselves, encrypted under a key
    // that rotates, one ticket per handshake, as Go's server (kube-apiserver's) sends them,
    // and nothing is kept by the server (Go has no session-ID cache either): rustls' default
    // keeps two tickets' sessions, the client's certificates among them, in a cache of 256.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| anyhow::anyhow!("TLS session tickets: {e}"))?;
    config.send_tls13_tickets = 1;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(ListenerTls { config: Arc::new(config), cas })
}

/// What the secure port's handshakes need: the rustls config, and the client CAs that name
/// a verified client's roles.
#[derive(Clone)]
pub struct ListenerTls {
    config: Arc<rustls::ServerConfig>,
    cas: Arc<ClientCas>,
}

/// The verified client identity of the request's connection.
pub fn peer_of(session: &pingora::proxy::Session) -> Option<Arc<PeerIdentity>> {
    PeerIdentities::of(session.digest()?.ssl_digest.as_ref()?)
}

/// The secure port: a pingora service running our own accept loop and TLS stream
/// ([`ServerStream`]) in front of pingora's HTTP application (pingora's documented custom-accept-loop integration,
/// `pingora_proxy::http_proxy`).
///
/// Each accepted connection gets one deadline, `handshake_timeout` from accept: its first byte
/// must arrive and its TLS handshake complete before it, or the connection is dropped (closed),
/// as Go's `net/http` bounds the handshake by a read/write deadline. Until the first byte the
/// connection's task holds the socket, the deadline and a few `Arc`s; the rustls state is built
/// when the ClientHello starts arriving, and the HTTP session's (large) future is boxed only
/// once the handshake is done.
///
/// The connection's socket (`crate::socket`) has pingora's 1460-byte write buffer (`crate::buffered`) but no read
/// buffer (pingora's own listener reads through 64 KiB): the TLS layer reads in steps of 4 KiB
/// (`tls::unbuffered`), so a small request takes the same single read and a response the same
/// single write, a large request body about three times the reads, and an established idle
/// connection holds no buffer at all (5.0 KB of RSS in all; `MODE=tls bench/idle_connections.sh`).
pub struct SecureListener<A> {
    name: String,
    listener: Option<std::net::TcpListener>,
    tls: ListenerTls,
    app: Arc<A>,
    handshake_timeout: Duration,
}

impl<A: HttpServerApp + Send + Sync + 'static> SecureListener<A> {
    /// A listener on `addr` (bound now, with SO_REUSEPORT so that one listener per worker
    /// thread shares the port and the kernel spreads connections), serving `app`.
    pub fn bind(
        name: &str,
        addr: SocketAddr,
        tls: ListenerTls,
        app: A,
        handshake_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let listener = bind_reuseport(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        // registered now, so /metrics shows it at 0 as kube does
        once_cell::sync::Lazy::force(&TLS_HANDSHAKE_ERRORS);
        Ok(SecureListener {
            name: name.to_string(),
            listener: Some(listener),
            tls,
            app: Arc::new(app),
            handshake_timeout,
        })
    }
}

/// kube-apiserver's `IdleTimeout` on the secure port (matching `http.DefaultTransport`'s
/// keep-alive), which Go's HTTP/2 server applies to a connection without open streams.
pub const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The secure port's HTTP server options: an HTTP/2 connection with no open stream for
/// [`H2_IDLE_TIMEOUT`] is closed (pingora's default keeps it forever; a watch is an open stream).
pub fn server_options() -> pingora::apps::HttpServerOptions {
    let mut o = pingora::apps::HttpServerOptions::default();
    o.h2_idle_timeout = Some(H2_IDLE_TIMEOUT);
    o
}

/// pingora's listen backlog (`LISTENER_BACKLOG`).
const BACKLOG: i32 = 65535;

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = if addr.is_ipv6() { tokio::net::TcpSocket::new_v6()? } else { tokio::net::TcpSocket::new_v4()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is the bound socket just released from `socket`; the listener owns it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    // SAFETY: listen(2) on a socket we own.
    if unsafe { libc::listen(fd, BACKLOG) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> pingora::services::Service for SecureListener<A> {
    async fn start_service(
        &mut self,
        #[cfg(unix)] _fds: Option<pingora::server::ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(std_listener) = self.listener.take() else { return };
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot register the secure listener");
                return;
            }
        };
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                changed = shutdown.changed() => match changed {
                    Ok(()) if !*shutdown.borrow() => continue,
                    _ => break,
                },
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let conn = Connection {
                        tls: self.tls.clone(),
                        app: self.app.clone(),
                        shutdown: shutdown.clone(),
                        // zero: no bound (Go's zero timeout); a year is as good as none
                        deadline: tokio::time::Instant::now()
                            + if self.handshake_timeout.is_zero() {
                                Duration::from_secs(365 * 24 * 3600)
                            } else {
                                self.handshake_timeout
                            },
                    };
                    tokio::spawn(conn.serve(tcp, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // out of file descriptors: accept() fails at once until some close
                    if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
        drop(listener);
        self.app.cleanup().await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}

/// One accepted connection, before its handshake.
struct Connection<A> {
    tls: ListenerTls,
    app: Arc<A>,
    shutdown: ShutdownWatch,
    deadline: tokio::time::Instant,
}

impl<A: HttpServerApp + Send + Sync + 'static> Connection<A> {
    /// The connection's task: its first byte and handshake, then its session, each boxed and
    /// freed when it ends. An established connection's task (an idle connection, an HTTP/1.1
    /// watch) so holds only this future's captures and the session's box: inline, the wait for
    /// the first byte (a timer and the socket's peek) kept its room in every connection's task
    /// for the connection's whole life (768 bytes of task, release build, under heaptrack). A
    /// function returning an async block, not an `async fn`, whose future keeps its arguments
    /// twice (rust-lang/rust#62958).
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    fn serve(self, tcp: tokio::net::TcpStream, peer: SocketAddr) -> impl std::future::Future<Output = ()> + Send {
        async move {
            let Some(stream) = Box::pin(self.accept(tcp, peer)).await else { return };
            // Boxed: the session's state is allocated only for connections past the handshake.
            Box::pin(serve_session(self.app, stream, self.shutdown)).await;
        }
    }

    /// Waits for the connection's first byte, then does its handshake.
    async fn accept(&self, tcp: tokio::net::TcpStream, peer: SocketAddr) -> Option<Stream> {
        // Nothing is built for a connection that sends nothing: wait for its first byte. (peek,
        // not `readable()`: measured, `readable()` returned at once for every silent connection,
        // which then built its TLS state, ~16 KB each.)
        let mut first = [0u8; 1];
        let silent = |reason: &str| {
            handshake_error(peer, reason);
            None
        };
        match tokio::time::timeout_at(self.deadline, tcp.peek(&mut first)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => return silent("EOF"),
            Ok(Err(e)) => return silent(&e.to_string()),
            Err(_) => return silent("timeout: nothing received"),
        }
        Box::pin(self.handshake(tcp, peer)).await
    }

    async fn handshake(&self, mut tcp: tokio::net::TcpStream, peer: SocketAddr) -> Option<Stream> {
        let _ = tcp.set_nodelay(true);
        // The first 5 bytes are a TLS record header, or plain HTTP sent to the HTTPS port, which
        // Go's net/http (and so kube-apiserver) answers with a 400 in plain text.
        let mut head = [0u8; crate::socket::HEAD];
        let mut got = 0;
        while got < head.len() {
            match tokio::time::timeout_at(self.deadline, tcp.read(&mut head[got..])).await {
                Ok(Ok(0)) => {
                    handshake_error(peer, "EOF");
                    return None;
                }
                Ok(Ok(n)) => got += n,
                Ok(Err(e)) => {
                    handshake_error(peer, &e.to_string());
                    return None;
                }
                Err(_) => {
                    handshake_error(peer, "timeout");
                    return None;
                }
            }
        }
        if looks_like_http(&head) {
            let _ = tokio::time::timeout_at(self.deadline, tcp.write_all(PLAIN_HTTP_RESPONSE)).await;
            handshake_error(peer, "client sent an HTTP request to an HTTPS server");
            return None;
        }
        let socket = crate::buffered::Buffered::new(crate::socket::Socket::new(tcp, peer, &head));
        match tokio::time::timeout_at(self.deadline, unbuffered::Unbuffered::accept(self.tls.config.clone(), socket))
            .await
        {
            Ok(Ok(tls)) => {
                let peer = identity_of(&self.tls.cas, tls.connection());
                Some(Box::new(ServerStream::new(tls, peer)))
            }
            Ok(Err(e)) => {
                handshake_error(peer, &e.to_string());
                None
            }
            Err(_) => {
                handshake_error(peer, "timeout");
                None
            }
        }
    }
}

/// Go's answer to plain HTTP on a TLS port (`net/http`'s `conn.serve`).
const PLAIN_HTTP_RESPONSE: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Go's `tlsRecordHeaderLooksLikeHTTP`.
fn looks_like_http(head: &[u8; 5]) -> bool {
    matches!(head, b"GET /" | b"HEAD " | b"POST " | b"PUT /" | b"OPTIO")
}

/// kube-apiserver's `apiserver_tls_handshake_errors_total`: every connection that ends before
/// its TLS handshake is done (Go logs each as "http: TLS handshake error from ...", which kube
/// counts), timeouts included.
static TLS_HANDSHAKE_ERRORS: once_cell::sync::Lazy<prometheus::IntCounter> = once_cell::sync::Lazy::new(|| {
    prometheus::register_int_counter!(
        "apiserver_tls_handshake_errors_total",
        "Number of requests dropped with 'TLS handshake error from' error"
    )
    .expect("register apiserver_tls_handshake_errors_total")
});

fn handshake_error(peer: SocketAddr, reason: &str) {
    TLS_HANDSHAKE_ERRORS.inc();
    tracing::debug!("http: TLS handshake error from {peer}: {reason}");
}

/// pingora's per-connection dispatch (`ServerApp::process_new`): HTTP/2 by ALPN to pingora's
/// HTTP/2 server, HTTP/1.x to our own loop (`crate::connection`).
async fn serve_session<A: HttpServerApp + Send + Sync + 'static>(app: Arc<A>, stream: Stream, shutdown: ShutdownWatch) {
    if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        app.process_new(stream, &shutdown).await;
    } else {
        crate::connection::serve_http1(app, stream, shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::tests::App;

    /// The size of the future `f` returns.
    fn future_size<F>(_: fn(Connection<App>, tokio::net::TcpStream, SocketAddr) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's verified roles are a set in a byte, and its identity is its shared user,
    /// the chain to verify again and those roles with their generation (48 bytes and the
    /// chain's).
    #[test]
    fn ca_roles_are_a_set() {
        let both: CaRoles = [CaRole::ClientCa, CaRole::RequestHeaderCa].into();
        assert!(both.contains(&CaRole::ClientCa) && both.contains(&CaRole::RequestHeaderCa));
        let proxy = CaRoles::from([CaRole::RequestHeaderCa]);
        assert!(!proxy.contains(&CaRole::ClientCa) && proxy.contains(&CaRole::RequestHeaderCa));
        assert!(!CaRoles::default().contains(&CaRole::ClientCa));
        assert_eq!(std::mem::size_of::<PeerIdentity>(), 48);
    }

    /// Of two CNs, the user is the last, as kube (Go's pkix.Name) reads it.
    #[test]
    fn the_last_common_name_is_the_user() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        p.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "system:admin");
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "dev");
        let mut der = p.self_signed(&key).unwrap().der().to_vec();
        let subject = |der: &[u8]| subject_of(&x509_parser::parse_x509_certificate(der).unwrap().1);
        assert_eq!(subject(&der), ("alice".to_string(), vec!["dev".to_string()]));
        // the OU's OID (2.5.4.11) made a second CN's (2.5.4.3), in the issuer and the subject
        let ou = [0x06, 0x03, 0x55, 0x04, 0x0b];
        while let Some(at) = der.windows(5).position(|w| w == ou) {
            der[at + 4] = 0x03;
        }
        assert_eq!(subject(&der), ("system:admin".to_string(), vec!["dev".to_string()]));
    }

    /// A CA written to `dir` as `<name>.crt`, and a client certificate it signed for
    /// `<name>-leaf`: (CA file, CA, its key, the leaf).
    fn ca_and_leaf(
        dir: &Path,
        name: &str,
    ) -> (std::path::PathBuf, rcgen::Certificate, rcgen::KeyPair, rcgen::Certificate) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca = p.self_signed(&key).unwrap();
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, ca.pem()).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut lp = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        lp.distinguished_name.push(rcgen::DnType::CommonName, format!("{name}-leaf"));
        lp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = lp.signed_by(&leaf_key, &ca, &key).unwrap();
        (path, ca, key, leaf)
    }

    /// A connection's identity is verified again once the CAs change (a removed CA takes its
    /// roles, a restored one gives them back), and a certificate outside its validity verifies
    /// for no role, with Go's x509 error.
    #[test]
    fn an_identity_is_verified_again_after_a_ca_change_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, _, _, leaf) = ca_and_leaf(dir.path(), "ours");
        let (other, ..) = ca_and_leaf(dir.path(), "other");
        let cas = ClientCas::default();
        cas.set(CaRole::ClientCa, Some(&ours)).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.der()).unwrap();
        let identity = |not_after: i64| PeerIdentity {
            user: Arc::new(UserInfo::new("alice".to_string(), Vec::new())),
            chain: vec![leaf.der().clone()].into(),
            not_before: parsed.validity().not_before.timestamp(),
            not_after,
            verified: AtomicU64::new(cas.generation() << 8 | cas.roles_for(&[leaf.der().clone()]).0 as u64),
        };
        let alice = identity(parsed.validity().not_after.timestamp());
        let client = CaRoles::from([CaRole::ClientCa]);
        assert_eq!(alice.verified_by(Some(&cas)), Ok(client));
        cas.set(CaRole::ClientCa, Some(&other)).unwrap();
        assert_eq!(alice.verified_by(Some(&cas)), Ok(CaRoles::default()));
        assert_eq!(alice.verified_by(Some(&cas)), Ok(CaRoles::default()), "kept until the next change");
        cas.set(CaRole::ClientCa, Some(&ours)).unwrap();
        assert_eq!(alice.verified_by(Some(&cas)), Ok(client));
        let expired = identity(1_700_000_000);
        let e = expired.verified_by(Some(&cas)).unwrap_err();
        assert!(e.starts_with("x509: certificate has expired or is not yet valid: current time 20"), "{e}");
        assert!(e.ends_with(" is after 2023-11-14T22:13:20Z"), "{e}");
    }

    /// Reloads of two roles' bundles at the same moment (each role's file has its own reload
    /// thread) both take effect: neither store undoes the other's.
    #[test]
    fn concurrent_reloads_of_two_roles_both_take_effect() {
        let dir = tempfile::tempdir().unwrap();
        // two bundles per role, a leaf from each
        let mut bundles = Vec::new();
        for name in ["c0", "c1", "r0", "r1"] {
            let (path, _, _, leaf) = ca_and_leaf(dir.path(), name);
            bundles.push((path, vec![leaf.der().clone()]));
        }
        let cas = Arc::new(ClientCas::default());
        let roles = [(CaRole::ClientCa, 0), (CaRole::RequestHeaderCa, 2)];
        for round in 0..300 {
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let threads: Vec<_> = roles
                .iter()
                .map(|&(role, first)| {
                    let (cas, barrier, path) = (cas.clone(), barrier.clone(), bundles[first + round % 2].0.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        cas.set(role, Some(&path)).unwrap();
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            for &(role, first) in &roles {
                let chain = &bundles[first + round % 2].1;
                assert_eq!(cas.roles_for(chain), CaRoles::from([role]), "round {round}: {role:?}'s latest bundle");
            }
        }
    }

    /// An established connection's task holds its captures and a box, not the room of the wait
    /// for its first byte (debug build: 136 bytes; 592 with the wait inline).
    #[test]
    fn an_established_connection_task_holds_its_captures_only() {
        let size = future_size(Connection::<App>::serve);
        let captures = std::mem::size_of::<(Connection<App>, tokio::net::TcpStream, SocketAddr)>();
        assert!(size <= captures + 64, "{size} bytes; its captures are {captures}");
    }

    #[test]
    fn listeners_share_a_port_with_each_other_only() {
        let first = bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        // one listener per worker thread on one port
        let second = bind_reuseport(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        // a plain bind (the startup check, another program) is refused
        assert!(std::net::TcpListener::bind(addr).is_err());
        drop((first, second));
        // and a port a plain listener holds is refused to us
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(bind_reuseport(plain.local_addr().unwrap()).is_err());
    }
}
