//! The secure port's TLS connection: rustls' unbuffered connection (`tls::unbuffered`) over the
//! buffered L4 stream, with what pingora reads of a connection (its TLS digest, ALPN, socket
//! digest).
//!
//! pingora's own rustls `TlsStream` keeps room for a client, a server and a mid-handshake
//! stream side by side, and a second copy of the peer's certificates, for the connection's
//! whole life: 4.8 KB of every idle connection and HTTP/1.1 watch (heaptrack, release build),
//! where this stream is its one server connection.
//!
//! pingora attaches a value of its user's to a connection's `SslDigest` only in its own
//! handshake, so the verified client identity ([`PeerIdentity`]) is found through
//! [`PeerIdentities`] by the connection's digest, for as long as the connection lasts. (An
//! HTTP/2 request whose chain starts after its connection has closed finds none, and is
//! anonymous: it fails closed, and its response has nowhere to go.)

use super::unbuffered::Unbuffered;
use super::PeerIdentity;
use crate::buffered::Buffered;
use crate::socket::Socket;
use async_trait::async_trait;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{GetProxyDigest, GetSocketDigest, GetTimingDigest, SocketDigest, UniqueID, ALPN};
use rustc_hash::FxHashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// An established TLS connection of the secure port.
pub struct ServerStream {
    tls: Unbuffered<Buffered>,
    /// Its `cert_digest` is set when [`PeerIdentities`] holds the connection's identity.
    digest: Arc<SslDigest>,
}

impl ServerStream {
    /// The stream of a finished handshake; `peer` is the verified identity of the client's
    /// certificate, if it presented one.
    pub fn new(tls: Unbuffered<Buffered>, peer: Option<Arc<PeerIdentity>>) -> Self {
        let conn = tls.connection();
        let cipher = conn.negotiated_cipher_suite().and_then(|s| s.suite().as_str()).unwrap_or_default();
        let version = conn.protocol_version().and_then(|v| v.as_str()).unwrap_or_default();
        // as pingora's: the leaf's SHA-256 (and here, the sign that an identity is registered)
        let leaf = conn.peer_certificates().and_then(|c| c.first());
        let peer = peer.zip(leaf).map(|(peer, leaf)| {
            use sha2::Digest as _;
            (peer, sha2::Sha256::digest(leaf.as_ref()).to_vec())
        });
        let (peer, cert_digest) = peer.unzip();
        let digest = Arc::new(SslDigest::new(cipher, version, None, None, cert_digest.unwrap_or_default()));
        if let Some(peer) = peer {
            PeerIdentities::insert(&digest, peer);
        }
        ServerStream { tls, digest }
    }
}

impl ServerStream {
    /// What pingora reads of the connection below TLS (its id and address; no timing) is the
    /// socket's.
    fn socket(&self) -> &Socket {
        self.tls.get_ref().get_ref()
    }
}

impl Drop for ServerStream {
    fn drop(&mut self) {
        if !self.digest.cert_digest.is_empty() {
            PeerIdentities::remove(&self.digest);
        }
    }
}

impl std::fmt::Debug for ServerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStream").field("io", self.tls.get_ref()).finish()
    }
}

/// The verified client identities of the live connections, by the address of their digest
/// (unique while the connection, which holds it, lives).
pub struct PeerIdentities;

/// Fx-hashed: its keys are our own digests' addresses, and every request looks one up.
static PEERS: once_cell::sync::Lazy<RwLock<FxHashMap<usize, Arc<PeerIdentity>>>> =
    once_cell::sync::Lazy::new(Default::default);

impl PeerIdentities {
    fn key(digest: &Arc<SslDigest>) -> usize {
        Arc::as_ptr(digest) as usize
    }

    fn insert(digest: &Arc<SslDigest>, peer: Arc<PeerIdentity>) {
        PEERS.write().unwrap_or_else(|e| e.into_inner()).insert(Self::key(digest), peer);
    }

    fn remove(digest: &Arc<SslDigest>) {
        let mut peers = PEERS.write().unwrap_or_else(|e| e.into_inner());
        peers.remove(&Self::key(digest));
        // the room a burst of connections took is given back once most of them have gone
        if peers.capacity() > 64 && peers.len() * 4 < peers.capacity() {
            let keep = peers.len() * 2;
            peers.shrink_to(keep);
        }
    }

    /// The identity of the connection whose digest this is: None without a verified client
    /// certificate, or once the connection has closed.
    pub fn of(digest: &Arc<SslDigest>) -> Option<Arc<PeerIdentity>> {
        if digest.cert_digest.is_empty() {
            return None;
        }
        PEERS.read().unwrap_or_else(|e| e.into_inner()).get(&Self::key(digest)).cloned()
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

#[async_trait]
impl pingora::protocols::Shutdown for ServerStream {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for ServerStream {
    fn id(&self) -> pingora::protocols::UniqueIDType {
        self.socket().id()
    }
}

impl pingora::protocols::Ssl for ServerStream {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.digest.clone())
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        // only what the listener offers can be selected (pingora's `from_wire_selected`)
        match self.tls.connection().alpn_protocol()? {
            b"h2" => Some(ALPN::H2),
            _ => Some(ALPN::H1),
        }
    }
}

#[async_trait]
impl pingora::protocols::Peek for ServerStream {}

impl GetTimingDigest for ServerStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.socket().get_timing_digest()
    }
}

impl GetProxyDigest for ServerStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.socket().get_proxy_digest()
    }
}

impl GetSocketDigest for ServerStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.socket().get_socket_digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{listener_settings, load_certs, load_key, load_roots, CaRole, ClientCas, ServingCert};
    use pingora::protocols::Ssl;
    use std::path::Path;

    /// A client of `port` over TLS, with ALPN `alpn`, presenting `cert` (a name in the dev PKI)
    /// if given.
    async fn client(
        dir: &Path,
        port: u16,
        alpn: &[u8],
        cert: Option<&str>,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let roots = Arc::new(load_roots(&dir.join("ca.crt")).unwrap());
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = match cert {
            Some(name) => builder
                .with_client_auth_cert(
                    load_certs(&dir.join(format!("{name}.crt"))).unwrap(),
                    load_key(&dir.join(format!("{name}.key"))).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
    }

    /// A connection's verified identity is found by its digest while the connection lasts, and
    /// its ALPN is what was selected.
    #[tokio::test]
    async fn a_connection_carries_its_identity_and_protocol_while_it_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path();
        crate::certs::ensure_dev_pki(pki, "https://127.0.0.1:1").unwrap();
        let cert = Arc::new(ServingCert::load(&pki.join("apiserver.crt"), &pki.join("apiserver.key")).unwrap());
        let cas = Arc::new(ClientCas::default());
        cas.set(CaRole::ClientCa, Some(&pki.join("ca.crt"))).unwrap();
        let tls = listener_settings(cert, cas.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        for (alpn, cert) in [(&b"h2"[..], Some("admin")), (b"http/1.1", Some("admin")), (b"http/1.1", None)] {
            let (accepted, client) = tokio::join!(
                async {
                    let (tcp, from) = listener.accept().await.unwrap();
                    let socket = Buffered::new(crate::socket::Socket::new(tcp, from, &[]));
                    let conn = Unbuffered::accept(tls.config.clone(), socket).await.unwrap();
                    let peer = crate::tls::identity_of(&cas, conn.connection());
                    ServerStream::new(conn, peer)
                },
                client(pki, port, alpn, cert)
            );
            let want = if alpn == b"h2" { ALPN::H2 } else { ALPN::H1 };
            assert_eq!(accepted.selected_alpn_proto(), Some(want));
            let digest = accepted.get_ssl_digest().unwrap();
            assert!(digest.version.starts_with("TLSv1_"), "{}", digest.version);
            match cert {
                Some(_) => {
                    let peer = PeerIdentities::of(&digest).expect("the verified client's identity");
                    assert_eq!(peer.common_name(), "admin");
                    assert_eq!(peer.user.groups, ["system:masters", "system:authenticated"]);
                    assert_eq!(peer.verified_by(Some(&cas)), Ok([CaRole::ClientCa].into()));
                }
                None => assert!(PeerIdentities::of(&digest).is_none()),
            }
            drop((accepted, client));
            assert!(PeerIdentities::of(&digest).is_none(), "forgotten with its connection");
        }
    }

    /// A burst of identified connections leaves no room behind once they have closed.
    #[test]
    fn the_registry_gives_back_the_room_of_a_burst() {
        let digests: Vec<_> = (0..2000).map(|_| Arc::new(SslDigest::new("", "", None, None, vec![1]))).collect();
        for d in &digests {
            PeerIdentities::insert(d, Arc::new(PeerIdentity::new(String::new(), Vec::new(), Default::default())));
        }
        assert!(PEERS.read().unwrap().capacity() >= 2000);
        for d in &digests {
            assert!(PeerIdentities::of(d).is_some());
            PeerIdentities::remove(d);
        }
        // (other tests' connections may hold a few entries meanwhile)
        let capacity = PEERS.read().unwrap().capacity();
        assert!(capacity < 256, "{capacity} slots kept");
    }

    /// The stream is one server connection: pingora's own keeps room for a client, a server
    /// and a mid-handshake stream side by side (held by every idle connection and watch).
    #[test]
    fn a_stream_is_one_server_connection() {
        let ours = std::mem::size_of::<ServerStream>();
        let pingoras = std::mem::size_of::<pingora::protocols::tls::TlsStream<Buffered>>();
        assert!(ours * 2 < pingoras, "{ours} bytes; pingora's TlsStream: {pingoras}");
        // and little beside rustls' connection (pingora's L4 stream under it was 384 bytes):
        // 200 bytes, which puts the release build's stream (1,280 bytes) in mimalloc's size
        // class of 1,280, not 1,536 (232 with an established time, the write buffer's count and
        // word-sized offsets into the TLS buffers)
        let rustls = std::mem::size_of::<rustls::server::UnbufferedServerConnection>();
        assert!(ours <= rustls + 200, "{ours} bytes; rustls' connection: {rustls}");
    }
}
