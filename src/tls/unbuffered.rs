//! A server TLS connection over rustls' unbuffered API, holding buffers only while they hold
//! bytes.
//!
//! rustls' buffered connection (what tokio-rustls drives) keeps a 4 KiB read buffer from its
//! first read to its last: 4 KB of every idle connection and HTTP/1.1 watch. Here the bytes read
//! and not yet processed, the TLS bytes not yet sent and the plaintext not yet read each live in
//! a buffer kept while the connection is busy and given back when a read waits with nothing
//! pending, so an idle connection holds rustls' state alone.

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much is read from the socket at a time (rustls' own `READ_SIZE`).
const READ_SIZE: usize = 4096;

/// The most unprocessed TLS bytes held: a handshake message may take 64 KiB (rustls' bound),
/// a record 16 KiB and its framing.
const MAX_INCOMING: usize = 0x1_0000 + 0x4800;

/// At most this much plaintext goes into one write's records (as rustls' buffered writer takes
/// up to its 64 KiB buffer limit), so a large body leaves in a few large socket writes.
const WRITE_CHUNK: usize = 0x1_0000;

/// A TLS server connection over `io`.
pub struct Unbuffered<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    /// TLS bytes read and not yet processed.
    incoming: Vec<u8>,
    /// TLS bytes to send, from `sent` on.
    outgoing: Vec<u8>,
    sent: u32,
    /// Plaintext received and not yet read, from `taken` on.
    plaintext: Vec<u8>,
    taken: u32,
    /// The peer closed (close_notify): no more plaintext comes.
    peer_closed: bool,
    /// The connection is shutting down: a close_notify is to be sent.
    closing: bool,
    /// Our close_notify is encrypted (in `outgoing` or sent).
    close_queued: bool,
    /// A TLS error ended the connection: nothing more is processed.
    failed: bool,
}

/// What one round of rustls' processing asks for.
enum Step {
    /// It made progress (plaintext taken, a message encoded): process again.
    Again,
    /// It needs more bytes from the peer.
    Read,
    /// It can take application data, and has nothing else to do.
    Writable,
    /// The peer closed, or both did.
    Closed,
}

fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Appends to `out` what `write` puts in a buffer it is given: `hint` bytes first, then as
/// much as it asks for.
fn append<E>(out: &mut Vec<u8>, hint: usize, mut write: impl FnMut(&mut [u8]) -> Result<usize, E>) -> io::Result<()>
where
    E: std::fmt::Display + AsInsufficient,
{
    let start = out.len();
    let mut room = hint;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match e.insufficient() {
                Some(InsufficientSizeError { required_size }) if required_size > room => room = required_size,
                _ => {
                    out.truncate(start);
                    return Err(tls_error(e));
                }
            },
        }
    }
}

/// The encode and encrypt errors that say how much room they need.
trait AsInsufficient {
    fn insufficient(&self) -> Option<InsufficientSizeError>;
}

impl AsInsufficient for EncodeError {
    fn insufficient(&self) -> Option<InsufficientSizeError> {
        match self {
            EncodeError::InsufficientSize(e) => Some(*e),
            _ => None,
        }
    }
}

impl AsInsufficient for EncryptError {
    fn insufficient(&self) -> Option<InsufficientSizeError> {
        match self {
            EncryptError::InsufficientSize(e) => Some(*e),
            _ => None,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Unbuffered<IO> {
    /// Does the server's handshake on `io`.
    pub async fn accept(config: Arc<rustls::ServerConfig>, io: IO) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut tls = Unbuffered {
            io,
            conn,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            plaintext: Vec::new(),
            taken: 0,
            peer_closed: false,
            closing: false,
            close_queued: false,
            failed: false,
        };
        std::future::poll_fn(|cx| tls.poll_handshake(cx)).await?;
        Ok(tls)
    }

    /// The connection's TLS state (negotiated protocol, peer certificates).
    pub fn connection(&self) -> &UnbufferedServerConnection {
        &self.conn
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.step(None, None) {
                Ok((Step::Again, _)) => {}
                Ok((Step::Writable, _)) if !self.conn.is_handshaking() => {
                    // the server's last flight (its session ticket) goes out now
                    ready!(self.poll_send(cx))?;
                    return Pin::new(&mut self.io).poll_flush(cx);
                }
                // a TLS 1.3 server may write before the client's Finished; it is read first
                Ok((Step::Read | Step::Writable, _)) => {
                    // our flight goes out whole before we wait for the client's
                    ready!(self.poll_send(cx))?;
                    ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                    if ready!(self.poll_fill(cx))? == 0 {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof")));
                    }
                }
                Ok((Step::Closed, _)) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof")))
                }
                Err(e) => return self.poll_fail(cx, e),
            }
        }
    }

    /// After an error, sends what rustls had to say (its alert, queued by `step`) as far as
    /// the socket takes it at once, then fails with `e`.
    fn poll_fail(&mut self, cx: &mut Context<'_>, e: io::Error) -> Poll<io::Result<()>> {
        let _ = self.poll_send(cx);
        let _ = Pin::new(&mut self.io).poll_flush(cx);
        Poll::Ready(Err(e))
    }

    /// One round of rustls' processing of `incoming`, and what it asks for next. With `data`,
    /// as much of it as was encrypted (when it is writable); plaintext received goes into
    /// `read` as far as it has room, the rest is kept. After a failed round nothing is
    /// processed again: the round after a failure yields rustls' alert, which is queued, and a
    /// round past it would read the same bytes, fail and alert again.
    fn step(&mut self, data: Option<&[u8]>, read: Option<&mut ReadBuf<'_>>) -> io::Result<(Step, usize)> {
        if self.failed {
            return Err(tls_error("the connection failed"));
        }
        let step = self.process(data, read);
        if step.is_err() {
            self.failed = true;
            self.take_alert();
        }
        step
    }

    /// After a failed round, takes what rustls queued: its alert, and before it what it had
    /// not handed over yet (a TLS 1.3 server's ServerHello and ChangeCipherSpec when it fails
    /// on the ClientHello's extensions), a message a round. The alert is queued last and is
    /// the first record that is not a plaintext handshake message or ChangeCipherSpec: the
    /// rounds stop there, since a round past it would read the bytes that failed again, and
    /// fail and alert again (rustls asserts against a second alert).
    fn take_alert(&mut self) {
        for _ in 0..8 {
            let before = self.outgoing.len();
            let round = self.process(None, None);
            let queued = self.outgoing.get(before).copied();
            // 22: handshake, 20: ChangeCipherSpec (RFC 8446 5.1)
            if !matches!(round, Ok((Step::Again, _))) || !matches!(queued, Some(22 | 20)) {
                return;
            }
        }
    }

    /// [`Self::step`]'s round itself.
    fn process(&mut self, data: Option<&[u8]>, mut read: Option<&mut ReadBuf<'_>>) -> io::Result<(Step, usize)> {
        let close = self.closing && !self.close_queued;
        let status = self.conn.process_tls_records(&mut self.incoming);
        let mut discard = status.discard;
        let mut wrote = 0;
        let step = match status.state {
            Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                let mut step = Ok(Step::Again);
                while let Some(record) = traffic.next_record() {
                    let record = match record {
                        Ok(record) => record,
                        Err(e) => {
                            step = Err(tls_error(e));
                            break;
                        }
                    };
                    discard += record.discard;
                    let mut payload = record.payload;
                    // straight into the reader's buffer when nothing is kept ahead of it
                    if let Some(read) = read.as_deref_mut().filter(|_| self.taken as usize == self.plaintext.len()) {
                        let n = read.remaining().min(payload.len());
                        read.put_slice(&payload[..n]);
                        payload = &payload[n..];
                    }
                    if !payload.is_empty() {
                        if self.taken as usize == self.plaintext.len() {
                            self.plaintext.clear();
                            self.taken = 0;
                        }
                        self.plaintext.extend_from_slice(payload);
                    }
                }
                step
            }
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                append(&mut self.outgoing, 0, |buf| encode.encode(buf)).map(|()| Step::Again)
            }
            // what was encoded is in `outgoing`, in order, and is sent with what follows it
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                transmit.done();
                Ok(Step::Again)
            }
            Ok(ConnectionState::WriteTraffic(mut write)) => match data.filter(|d| !d.is_empty()) {
                Some(data) => {
                    let data = &data[..data.len().min(WRITE_CHUNK)];
                    // a record's framing is at most 29 bytes (TLS 1.2's explicit nonce and tag)
                    let framed = data.len() + (data.len() / 0x4000 + 1) * 32;
                    wrote = data.len();
                    append(&mut self.outgoing, framed, |buf| write.encrypt(data, buf)).map(|()| Step::Writable)
                }
                None if close => {
                    self.close_queued = true;
                    append(&mut self.outgoing, 0, |buf| write.queue_close_notify(buf)).map(|()| Step::Writable)
                }
                None => Ok(Step::Writable),
            },
            Ok(ConnectionState::BlockedHandshake) => Ok(Step::Read),
            Ok(ConnectionState::PeerClosed) => {
                self.peer_closed = true;
                Ok(Step::Again)
            }
            Ok(ConnectionState::Closed) => {
                self.peer_closed = true;
                Ok(Step::Closed)
            }
            Ok(ConnectionState::ReadEarlyData(_)) => Err(tls_error("early data is not accepted")),
            Ok(_) => Err(tls_error("unexpected TLS state")),
            Err(e) => Err(tls_error(e)),
        };
        // before any other round, whatever this one's outcome (rustls' rule)
        self.incoming.drain(..discard);
        step.map(|s| (s, wrote))
    }

    /// Sends the outgoing bytes (their buffer is kept for the next write until the connection
    /// idles, see [`Self::poll_fill`]).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unsent().is_empty() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.sent as usize..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                // at most what is unsent: one write's records, far below 4 GiB
                Ok(n) => self.sent += n as u32,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.outgoing.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads more TLS bytes (0: the socket's end).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.incoming.len() >= MAX_INCOMING {
            return Poll::Ready(Err(tls_error("message buffer full")));
        }
        if self.incoming.is_empty() {
            // nothing pending: the read waits with a buffer on the stack, and the buffers
            // emptied are given back, so that an idle connection holds none; what arrives is
            // copied into a buffer sized to it
            self.incoming = Vec::new();
            if self.outgoing.is_empty() {
                self.outgoing = Vec::new();
            }
            if self.kept().is_empty() {
                self.plaintext = Vec::new();
                self.taken = 0;
            }
            let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); READ_SIZE];
            let mut buf = ReadBuf::uninit(&mut stack);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            self.incoming.extend_from_slice(buf.filled());
            return Poll::Ready(Ok(buf.filled().len()));
        }
        self.incoming.reserve(READ_SIZE);
        let filled = self.incoming.len();
        let spare = self.incoming.spare_capacity_mut();
        let room = READ_SIZE.min(spare.len());
        let mut buf = ReadBuf::uninit(&mut spare[..room]);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                // SAFETY: `n` bytes past `filled` were initialized by the read
                unsafe { self.incoming.set_len(filled + n) };
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The TLS bytes encoded and not yet sent.
    fn unsent(&self) -> &[u8] {
        &self.outgoing[self.sent as usize..]
    }

    /// The plaintext received and not yet read.
    fn kept(&self) -> &[u8] {
        &self.plaintext[self.taken as usize..]
    }

    /// Moves kept plaintext into `buf`.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.kept().len());
        buf.put_slice(&self.kept()[..n]);
        self.taken += n as u32;
    }

    /// Encrypts as much of `data` as one round takes, after sending what is still unsent.
    fn poll_write_data(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.poll_send(cx))?;
        loop {
            match self.step(Some(data), None)? {
                (Step::Again, _) => {}
                (Step::Writable, n) if n > 0 => {
                    // started, not awaited: the next write or flush waits for it
                    let _ = self.poll_send(cx)?;
                    return Poll::Ready(Ok(n));
                }
                (Step::Writable, _) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                (Step::Read, _) => return Poll::Ready(Err(tls_error("handshake not complete"))),
                (Step::Closed, _) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Unbuffered<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.kept().is_empty() {
                this.take_plaintext(buf);
                return Poll::Ready(Ok(()));
            }
            if this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            // what is unsent (a reply to a key update, a write's tail) goes on, without
            // holding the read up
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            let before = buf.filled().len();
            match this.step(None, Some(buf)) {
                Ok((Step::Again, _)) if buf.filled().len() > before => return Poll::Ready(Ok(())),
                Ok((Step::Again, _)) => {}
                Ok((Step::Read | Step::Writable, _)) => {
                    if ready!(this.poll_fill(cx))? == 0 {
                        // a close mid-record as well, as rustls reports both
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "peer closed connection without sending TLS close_notify",
                        )));
                    }
                }
                Ok((Step::Closed, _)) => return Poll::Ready(Ok(())),
                Err(e) => return this.poll_fail(cx, e),
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Unbuffered<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_data(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // The slices (a chunk's size line, its data and CRLF; an HTTP/2 frame's header and
        // payload) are encrypted as one, as rustls' buffered writer takes them: into full
        // records and one socket write, not a record (and a write) for each.
        let Some(first) = bufs.iter().find(|b| !b.is_empty()) else { return Poll::Ready(Ok(0)) };
        if first.len() >= WRITE_CHUNK || bufs.iter().filter(|b| !b.is_empty()).count() == 1 {
            let first: &[u8] = first;
            return self.poll_write_data(cx, first);
        }
        let mut gathered = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum::<usize>().min(WRITE_CHUNK));
        for b in bufs {
            let room = WRITE_CHUNK - gathered.len();
            gathered.extend_from_slice(&b[..b.len().min(room)]);
            if gathered.len() == WRITE_CHUNK {
                break;
            }
        }
        self.poll_write_data(cx, &gathered)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.closing = true;
        if !this.close_queued {
            ready!(this.poll_send(cx))?;
            while let (Step::Again, _) = this.step(None, None)? {}
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{listener_settings, load_certs, load_key, load_roots, CaRole, ClientCas, ServingCert};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server config from a fresh dev PKI (its client CA trusted) and a client config that
    /// trusts it, presenting the admin cert if `cert` and restricted to `versions`.
    fn configs(
        dir: &std::path::Path,
        cert: bool,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        crate::certs::ensure_dev_pki(dir, "https://127.0.0.1:1").unwrap();
        let serving = Arc::new(ServingCert::load(&dir.join("apiserver.crt"), &dir.join("apiserver.key")).unwrap());
        let cas = Arc::new(ClientCas::default());
        cas.set(CaRole::ClientCa, Some(&dir.join("ca.crt"))).unwrap();
        let server = listener_settings(serving, cas).unwrap().config;
        let roots = Arc::new(load_roots(&dir.join("ca.crt")).unwrap());
        let builder = rustls::ClientConfig::builder_with_protocol_versions(versions).with_root_certificates(roots);
        let client = match cert {
            true => builder
                .with_client_auth_cert(
                    load_certs(&dir.join("admin.crt")).unwrap(),
                    load_key(&dir.join("admin.key")).unwrap(),
                )
                .unwrap(),
            false => builder.with_no_client_auth(),
        };
        (server, Arc::new(client))
    }

    async fn connect(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    ) -> (
        io::Result<Unbuffered<tokio::io::DuplexStream>>,
        io::Result<tokio_rustls::client::TlsStream<tokio::io::DuplexStream>>,
    ) {
        // a small pipe: writes and reads take many rounds
        let (near, far) = tokio::io::duplex(1000);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio::join!(Unbuffered::accept(server, near), tokio_rustls::TlsConnector::from(client).connect(name, far))
    }

    /// A handshake the server refuses: what the client was told.
    async fn refused(server: Arc<rustls::ServerConfig>, client: Arc<rustls::ClientConfig>) -> String {
        let (server, client) = connect(server, client).await;
        assert!(server.is_err());
        client.expect_err("the client fails too").to_string()
    }

    fn idle<IO>(tls: &Unbuffered<IO>) -> bool {
        tls.incoming.capacity() == 0 && tls.outgoing.capacity() == 0 && tls.plaintext.capacity() == 0
    }

    /// Both ways, in both versions: small and large writes, plain and vectored, arrive whole
    /// and in order, an idle connection holds no buffer, and a close_notify ends the stream.
    #[tokio::test]
    async fn data_crosses_both_ways_and_an_idle_connection_holds_no_buffer() {
        for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12]] {
            let dir = tempfile::tempdir().unwrap();
            let (server, client) = configs(dir.path(), true, versions);
            let (server, client) = connect(server, client).await;
            let (mut server, mut client) = (server.unwrap(), client.unwrap());
            assert_eq!(server.connection().peer_certificates().map(|c| c.len()), Some(1));
            let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            for data in [&b"GET / HTTP/1.1\r\n\r\n"[..], &big] {
                let (sent, got) = tokio::join!(
                    async {
                        client.write_all(data).await.unwrap();
                        client.flush().await.unwrap();
                    },
                    async {
                        let mut got = vec![0u8; data.len()];
                        server.read_exact(&mut got).await.unwrap();
                        got
                    }
                );
                let () = sent;
                assert_eq!(got, data);
                // and back, part of it as small vectored slices
                let (sent, got) = tokio::join!(
                    async {
                        let mut bufs =
                            [io::IoSlice::new(b"5\r\n"), io::IoSlice::new(b"hello"), io::IoSlice::new(b"\r\n")];
                        let mut slices = &mut bufs[..];
                        while !slices.is_empty() {
                            let n = server.write_vectored(slices).await.unwrap();
                            io::IoSlice::advance_slices(&mut slices, n);
                        }
                        server.write_all(data).await.unwrap();
                        server.flush().await.unwrap();
                    },
                    async {
                        let mut got = vec![0u8; data.len() + 10];
                        client.read_exact(&mut got).await.unwrap();
                        got
                    }
                );
                let () = sent;
                assert_eq!(&got[..10], b"5\r\nhello\r\n");
                assert_eq!(&got[10..], data);
                // waiting for the next request: nothing held
                let mut one = [0u8; 1];
                assert!(futures::FutureExt::now_or_never(server.read(&mut one)).is_none());
                assert!(idle(&server), "in {:?}", versions[0].version);
            }
            // the client's close_notify is the end of the stream; ours reaches the client
            client.shutdown().await.unwrap();
            let mut rest = Vec::new();
            assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
            server.shutdown().await.unwrap();
            assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
        }
    }

    /// A client that closes without a close_notify ends the stream with an error, as rustls'
    /// buffered connection reports it.
    #[tokio::test]
    async fn a_close_without_close_notify_is_an_unexpected_eof() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = configs(dir.path(), false, &[&rustls::version::TLS13]);
        let (server, client) = connect(server, client).await;
        let mut server = server.unwrap();
        let (io, _) = client.unwrap().into_inner();
        drop(io);
        let mut buf = [0u8; 10];
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A client cert from an unknown CA fails the handshake, and the client is told why by
    /// rustls' alert (not a bare close).
    #[tokio::test]
    async fn a_refused_handshake_sends_its_alert() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = configs(dir.path(), false, &[&rustls::version::TLS12]);
        let other = tempfile::tempdir().unwrap();
        // another PKI, whose admin cert the server does not trust
        let _ = configs(other.path(), true, &[&rustls::version::TLS12]);
        // the client trusts the server's CA, but presents the other PKI's admin cert
        let roots = Arc::new(load_roots(&dir.path().join("ca.crt")).unwrap());
        let client = Arc::new(
            rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
                .with_root_certificates(roots)
                .with_client_auth_cert(
                    load_certs(&other.path().join("admin.crt")).unwrap(),
                    load_key(&other.path().join("admin.key")).unwrap(),
                )
                .unwrap(),
        );
        let err = refused(server, client).await;
        assert!(err.contains("alert"), "{err}");
    }

    /// A client that announces a handshake message larger than any is refused early, not read
    /// on without end (rustls refuses it at its header, before `MAX_INCOMING`, our own bound,
    /// is reached); garbage after a handshake is an error, after which nothing is processed
    /// (a second round would alert again).
    #[tokio::test]
    async fn oversized_and_garbled_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = configs(dir.path(), false, &[&rustls::version::TLS13]);
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let accepting = tokio::spawn(Unbuffered::accept(server.clone(), near));
        // a ClientHello of 16 MiB, in full records
        let mut first = vec![1u8, 0xff, 0xff, 0xff];
        first.resize(0x4000, 0);
        let mut sent = 0;
        let writer = async {
            for i in 0..1000 {
                let payload = if i == 0 { first.clone() } else { vec![0u8; 0x4000] };
                let mut record = vec![22u8, 3, 1, 0x40, 0x00];
                record.extend_from_slice(&payload);
                if far.write_all(&record).await.is_err() {
                    break;
                }
                sent += record.len();
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), accepting).await.unwrap().unwrap();
        assert!(refused.is_err());
        assert!(sent < 4 * MAX_INCOMING, "{sent} bytes taken before the refusal");

        // garbage where a record is due
        let (server, client) = connect(server, client).await;
        let mut server = server.unwrap();
        let (mut io, _) = client.unwrap().into_inner();
        io.write_all(b"\x17\x03\x03\x00\x05hello").await.unwrap();
        let mut buf = [0u8; 10];
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // and again: the failed connection is not processed a second time (rustls would
        // decrypt the same record and alert again)
        assert!(server.read(&mut buf).await.is_err());
        assert!(server.write_all(b"x").await.is_err());
    }

    /// A client resumes its session with the ticket the server sent (stateless: nothing is
    /// kept by the server), and the resumed connection still has the client's certificates.
    #[tokio::test]
    async fn a_session_resumes_from_its_ticket_with_the_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = configs(dir.path(), true, &[&rustls::version::TLS13]);
        let (first, peer) = connect(server.clone(), client.clone()).await;
        let (mut first, mut peer) = (first.unwrap(), peer.unwrap());
        // the ticket follows the handshake: the client takes it with the first bytes it reads
        first.write_all(b"x").await.unwrap();
        first.flush().await.unwrap();
        let mut one = [0u8; 1];
        peer.read_exact(&mut one).await.unwrap();
        assert_eq!(peer.get_ref().1.handshake_kind(), Some(rustls::HandshakeKind::Full));
        let (second, peer) = connect(server, client).await;
        let (second, peer) = (second.unwrap(), peer.unwrap());
        assert_eq!(peer.get_ref().1.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        assert_eq!(second.connection().handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        assert_eq!(second.connection().peer_certificates(), first.connection().peer_certificates());
    }

    /// A TLS 1.3 handshake refused after the ServerHello (no protocol in common) tells the
    /// client why: the ServerHello and then the alert, each handed over in a round of its own.
    #[tokio::test]
    async fn a_handshake_refused_after_the_server_hello_sends_its_alert() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = configs(dir.path(), false, &[&rustls::version::TLS13]);
        let mut client = (*client).clone();
        client.alpn_protocols = vec![b"foo".to_vec()];
        let err = refused(server, Arc::new(client)).await;
        assert!(err.contains("NoApplicationProtocol"), "{err}");
    }

    /// An HTTP/2 frame (a 9-byte header and a 16 KiB payload, one vectored write) leaves in
    /// one socket write, as rustls' buffered writer sends it, not a write per slice.
    #[tokio::test]
    async fn a_vectored_write_leaves_in_one_socket_write() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = configs(dir.path(), false, &[&rustls::version::TLS13]);
        let (server, client) = connect(server, client).await;
        let (mut server, mut client) = (server.unwrap(), client.unwrap());
        let header = [0u8; 9];
        let payload = vec![7u8; 0x4000];
        let bufs = [io::IoSlice::new(&header), io::IoSlice::new(&payload)];
        let n = std::future::poll_fn(|cx| Pin::new(&mut server).poll_write_vectored(cx, &bufs)).await.unwrap();
        assert_eq!(n, header.len() + payload.len(), "taken whole");
        let mut got = vec![0u8; n];
        let (flushed, read) = tokio::join!(server.flush(), client.read_exact(&mut got));
        flushed.unwrap();
        read.unwrap();
        assert_eq!(&got[9..], &payload[..]);
    }
}
