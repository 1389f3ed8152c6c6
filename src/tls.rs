//! TLS for the secure port: rustls through pingora, TLS 1.2+ only, HTTP/2 and HTTP/1.1 by
//! ALPN. The serving cert and the client CAs sit behind `ArcSwap`s so both reload live.
//! Client certificates are optional, but one that is presented must verify against a client
//! CA or the handshake fails. The verified chain reaches the request as a [`PeerIdentity`].

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{TlsAccept, TlsAcceptCallbacks};
use pingora::protocols::tls::TlsRef;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::any::Any;
use std::path::Path;
use std::sync::Arc;

/// The verified client certificate of a connection.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// Which client CAs verified the chain (e.g. [`CaRole::ClientCa`]).
    pub verified_by: Vec<CaRole>,
    /// The presented chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
}

/// The roles a trusted client CA plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaRole {
    /// `--client-ca-file`: the x509 authenticator's CA.
    ClientCa,
    /// `--requestheader-client-ca-file`: the authenticating proxy's CA.
    RequestHeaderCa,
}

fn provider() -> Arc<CryptoProvider> {
    pingora::tls::install_default_crypto_provider();
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Reads every certificate in a PEM file; an empty or unreadable file is an error.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: invalid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate found", path.display());
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
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
        let mut pools: Vec<_> = self.pools.load().iter().filter(|(r, _)| *r != role).cloned().collect();
        if let Some(v) = verifier {
            pools.push((role, v));
        }
        self.pools.store(Arc::new(pools));
        Ok(())
    }

    /// The roles whose CA verifies this chain.
    pub fn roles_for(&self, chain: &[CertificateDer<'static>]) -> Vec<CaRole> {
        let Some((leaf, rest)) = chain.split_first() else { return Vec::new() };
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

/// Parses CN and every O of a leaf certificate.
pub fn subject_of(leaf: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let subject = cert.subject();
    let cn = subject.iter_common_name().next().and_then(|a| a.as_str().ok()).unwrap_or("").to_string();
    let orgs = subject.iter_organization().filter_map(|a| a.as_str().ok().map(str::to_string)).collect();
    Some((cn, orgs))
}

/// Hands the verified peer chain to the HTTP layer after the handshake.
struct PeerCallback {
    cas: Arc<ClientCas>,
}

#[async_trait]
impl TlsAccept for PeerCallback {
    async fn handshake_complete_callback(&self, ssl: &TlsRef) -> Option<Arc<dyn Any + Send + Sync>> {
        let chain = ssl.peer_cert_chain_der()?.to_vec();
        let (common_name, organizations) = subject_of(chain.first()?.as_ref())?;
        let verified_by = self.cas.roles_for(&chain);
        let peer = Arc::new(PeerIdentity { common_name, organizations, verified_by, chain });
        Some(Arc::new(peer))
    }
}

/// The listener's TLS settings: our cert resolver and client verifier, h2 + http/1.1.
pub fn listener_settings(cert: Arc<ServingCert>, cas: Arc<ClientCas>) -> anyhow::Result<TlsSettings> {
    let callbacks: TlsAcceptCallbacks = Box::new(PeerCallback { cas: cas.clone() });
    let mut settings = TlsSettings::with_callbacks(callbacks).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.set_cert_resolver(cert);
    settings.set_client_cert_verifier(Arc::new(ClientVerifier::new(cas)));
    settings.enable_h2();
    Ok(settings)
}

/// Reads the peer identity pingora kept on the session's TLS digest.
pub fn peer_of(session: &pingora::proxy::Session) -> Option<Arc<PeerIdentity>> {
    let digest = session.digest()?;
    let ssl = digest.ssl_digest.as_ref()?;
    ssl.extension.get::<Arc<PeerIdentity>>().cloned()
}
