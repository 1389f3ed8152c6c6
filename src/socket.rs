//! The secure port's TCP connection, as the TLS stream above it and pingora read it.
//!
//! pingora's L4 `Stream` is 384 bytes with its socket digest another 408 on the heap, both held
//! for the connection's whole life (every idle connection and HTTP/1.1 watch); its read and
//! write buffering, timing and tracing are not used on this port (writes are buffered above it,
//! `crate::buffered`). This is the socket, the record header read to tell TLS from plain HTTP
//! (given back to the first reads), and what the digests report, the socket digest built when
//! pingora asks for it: once per HTTP/1.x request, once per HTTP/2 connection.

use pingora::protocols::{GetProxyDigest, GetSocketDigest, GetTimingDigest, SocketDigest, TimingDigest, UniqueID};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How many bytes may be read before the handshake and given back (a TLS record header).
pub const HEAD: usize = 5;

#[derive(Debug)]
pub struct Socket {
    tcp: TcpStream,
    peer: SocketAddr,
    /// The bytes read before the handshake; those from `head_at` on are not yet read again.
    head: [u8; HEAD],
    head_at: u8,
}

impl Socket {
    /// The connection `tcp` from `peer`, whose first bytes `head` (at most [`HEAD`]) were read
    /// already.
    pub fn new(tcp: TcpStream, peer: SocketAddr, head: &[u8]) -> Socket {
        assert!(head.len() <= HEAD, "{} bytes read before the handshake", head.len());
        let mut buf = [0u8; HEAD];
        let at = HEAD - head.len();
        buf[at..].copy_from_slice(head);
        Socket { tcp, peer, head: buf, head_at: at as u8 }
    }
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let at = this.head_at as usize;
        if at < HEAD {
            let n = (HEAD - at).min(buf.remaining());
            buf.put_slice(&this.head[at..at + n]);
            this.head_at += n as u8;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl UniqueID for Socket {
    fn id(&self) -> pingora::protocols::UniqueIDType {
        self.tcp.as_raw_fd()
    }
}

/// No timing layers: pingora only keeps them in a request's digest for the application, which
/// reads none (an established time was 16 bytes of every connection, and a `Vec` allocated for
/// every HTTP/1.x request).
impl GetTimingDigest for Socket {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for Socket {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Socket {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        let digest = SocketDigest::from_raw_fd(self.tcp.as_raw_fd());
        let _ = digest.peer_addr.set(Some(self.peer.into()));
        Some(Arc::new(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(head: &[u8]) -> (Socket, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        (Socket::new(tcp, peer, head), client)
    }

    /// The bytes read before the handshake come first, then the socket's, even one at a time.
    #[tokio::test]
    async fn the_head_is_read_again_first() {
        let (mut s, mut client) = pair(b"\x16\x03\x01\x02\x00").await;
        client.write_all(b"rest").await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        assert_eq!(one, [0x16]);
        let mut got = [0u8; 8];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x03\x01\x02\x00rest");

        let (mut s, mut client) = pair(b"").await;
        client.write_all(b"abc").await.unwrap();
        let mut got = [0u8; 3];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
    }

    /// pingora reads the client's address from the socket digest.
    #[tokio::test]
    async fn the_digest_names_the_peer() {
        let (s, client) = pair(b"").await;
        let digest = s.get_socket_digest().unwrap();
        let want: pingora::protocols::l4::socket::SocketAddr = client.local_addr().unwrap().into();
        assert_eq!(digest.peer_addr(), Some(&want));
        assert_eq!(s.id(), s.tcp.as_raw_fd());
    }
}
