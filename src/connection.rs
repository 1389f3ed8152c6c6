//! The secure port's HTTP/1.x connections: pingora's per-connection loop
//! (`ServerApp::process_new`), with two changes that keep an idle connection small, and a
//! request line read here as the client sent it (the last bullet).
//!
//! - A connection waiting for its next request holds only its TLS stream. pingora builds a
//!   request's whole state before its first byte arrives: the proxy's request future (~15 KB,
//!   release build), its 4 KiB header buffer and the session, so an idle keep-alive connection
//!   held about 45 KB. Here the loop waits for one byte of the next request, then hands it to
//!   pingora as the start of its header buffer.
//! - A response that left its request (`filters::detach`, a watch) runs here once pingora's
//!   request has ended; the connection is then reused as pingora would have.
//! - A request's own state (pingora's session until `process_new_http` takes it, the request
//!   future) is boxed and freed when pingora's request ends: inline, it made the loop's future
//!   ~1.4 KB, held by every idle connection and every HTTP/1.1 watch.
//! - A request line Go's server cannot read (a raw space or control byte in the target, a bad
//!   escape in its path, a method that is no token, a malformed version) is answered here, as
//!   Go's server answers it (`framing::go_refuses_request_line`): pingora would percent-encode a
//!   space or control byte and serve the escape, and serves a bad escape as it stands.
//!
//! The header buffer holding a request's first read is cut to its size when the header is
//! complete in it: pingora keeps a request's header buffer for as long as the request lasts
//! (an hour for a watch), and a request header is a few hundred bytes of its 4 KiB.

use crate::filters::{detach, framing};
use bytes::BytesMut;
use futures::FutureExt;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// pingora's keep-alive for the secure port's HTTP/1.x connections (`ServerApp::process_new`),
/// which also bounds the wait for a connection's first request.
const KEEPALIVE_SECS: u64 = 60;

/// pingora's first read of a request header (`INIT_HEADER_BUF_SIZE`).
const HEADER_BUFFER: usize = 4096;

/// Serves an HTTP/1.x connection's requests until it closes, idles out or the server shuts down.
///
/// A function returning an async block, not an `async fn` (whose future keeps its arguments
/// twice, rust-lang/rust#62958): what the loop holds while a moved response (an HTTP/1.1 watch)
/// runs is every such connection's, for the response's life.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn serve_http1<A: HttpServerApp + Send + Sync + 'static>(
    app: Arc<A>,
    stream: Stream,
    shutdown: ShutdownWatch,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let mut next = ReusedHttpStream::new(stream, None);
        loop {
            let (mut stream, settings) = next.consume();
            // Boxed, as the request is: the wait (a timer, the shutdown's watch) is held only while
            // the connection waits, not beside a moved response (an HTTP/1.1 watch) for its life.
            let Some(head) = Box::pin(next_request(&mut stream, &shutdown)).await else { return };
            // Boxed: pingora's request (its session, ~700 bytes, and the request future's state) is
            // held only while pingora serves it, not while the connection waits for its next
            // request or a moved response (a watch) runs.
            let (reused, moved) = Box::pin(request(&app, stream, settings, head, &shutdown)).await;
            let reused = match moved {
                // pingora's request ended without its connection (it moved with the response):
                // nothing of it is kept while the response runs
                Some(moved) => {
                    drop(reused);
                    moved.await
                }
                None => reused,
            };
            let Some(reused) = reused else { return };
            next = reused;
        }
    }
}

/// One request on the connection: pingora's `process_new_http` over a session that starts with
/// `head`, run [`detach::within`] so that a long-running response can move out of it.
async fn request<A: HttpServerApp + Send + Sync + 'static>(
    app: &Arc<A>,
    stream: Stream,
    settings: Option<HttpPersistentSettings>,
    head: BytesMut,
    shutdown: &ShutdownWatch,
) -> (Option<ReusedHttpStream>, Option<detach::Moved>) {
    let mut session = ServerSession::new_http1(stream);
    match settings {
        Some(settings) => settings.apply_to_session(&mut session),
        None => {
            // pingora's settings for a new connection
            session.set_keepalive_reuses_remaining(app.server_options().and_then(|o| o.keepalive_request_limit));
        }
    }
    // the time pingora gives the rest of this request's header, on a reused connection too:
    // the request before may have left pingora's own keep-alive for HTTP/1.1, which is no limit
    session.set_keepalive(if *shutdown.borrow() { None } else { Some(KEEPALIVE_SECS) });
    // pipelining stays off (pingora's default), so a reused connection carries no prefix of
    // its own: pingora asserts as much in debug builds
    session.set_pipelined_prefix(head);
    detach::within(app.process_new_http(session, shutdown)).await
}

/// Waits for the next request's first bytes (None: the client closed the connection, stayed
/// silent for the keep-alive time, or the server is shutting down), and returns them as the
/// start of the request's header buffer.
async fn next_request(stream: &mut Stream, shutdown: &ShutdownWatch) -> Option<BytesMut> {
    let mut first = [0u8; 1];
    let mut shutdown = shutdown.clone();
    tokio::select! {
        // biased, as pingora's: a request already sent is served before a shutdown
        biased;
        read = tokio::time::timeout(Duration::from_secs(KEEPALIVE_SECS), stream.read(&mut first)) => {
            if !matches!(read, Ok(Ok(1))) {
                return None;
            }
        }
        _ = shutdown.wait_for(|down| *down) => return None,
    }
    let mut head = BytesMut::with_capacity(HEADER_BUFFER);
    head.extend_from_slice(&first);
    // what else has arrived (the rest of the TLS record, usually the whole header); pingora
    // reads the rest
    let _ = stream.read_buf(&mut head).now_or_never();
    // but the request line is read whole here, to be checked as the client sent it, as Go's
    // server reads it: pingora percent-encodes the spaces and control bytes Go refuses
    // (`framing::go_refuses_request_line`)
    loop {
        let (line, whole) = request_line(&head);
        if whole {
            if framing::go_refuses_request_line(line) {
                refuse(stream).await;
                return None;
            }
            break;
        }
        if head.len() > MAX_HEADER {
            break;
        }
        let read = tokio::time::timeout(Duration::from_secs(KEEPALIVE_SECS), stream.read_buf(&mut head)).await;
        if !matches!(read, Ok(Ok(1..))) {
            return None;
        }
    }
    if header_complete(&head) {
        return Some(BytesMut::from(&head[..]));
    }
    Some(head)
}

/// pingora's bound on a request header (`MAX_HEADER_SIZE`): past it, pingora refuses the request.
const MAX_HEADER: usize = 1_048_575;

/// The request line in `head` so far (httparse skips empty lines before it), without its `\n`,
/// and whether it is whole.
fn request_line(head: &[u8]) -> (&[u8], bool) {
    let start = head.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(head.len());
    let line = &head[start..];
    match line.iter().position(|&b| b == b'\n') {
        Some(end) => (&line[..end], true),
        None => (line, false),
    }
}

/// Go's answer to a request line it cannot read, and the connection's end (`conn.serve`): no
/// handler, and so no audit event or request metric, sees the request.
async fn refuse(stream: &mut Stream) {
    let write = async {
        stream.write_all(framing::GO_BAD_REQUEST).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(KEEPALIVE_SECS), write).await;
}

/// Whether `buf` holds a whole request header (its blank line).
fn header_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An app whose session (pingora's HTTP/1 session, ~700 bytes) is all a request holds.
    pub struct App;

    #[async_trait::async_trait]
    impl HttpServerApp for App {
        async fn process_new_http(
            self: &Arc<Self>,
            session: ServerSession,
            _: &ShutdownWatch,
        ) -> Option<ReusedHttpStream> {
            drop(session);
            None
        }
    }

    /// An idle connection (and an HTTP/1.1 watch, which runs in this loop) holds the loop's
    /// state for as long as it lasts: its stream and the wait for a request, not a request's
    /// session (measured, release build: 1464 bytes with the session inline, N idle TLS
    /// connections under heaptrack).
    #[test]
    fn an_idle_connection_holds_no_request() {
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let stream: Stream = Box::new(std::io::Cursor::new(Vec::new()));
        let mut waiting: Stream = Box::new(std::io::Cursor::new(Vec::new()));
        let wait = std::mem::size_of_val(&next_request(&mut waiting, &shutdown));
        let session = std::mem::size_of::<ServerSession>();
        let idle = serve_http1(Arc::new(App), stream, shutdown.clone());
        let size = std::mem::size_of_val(&idle);
        // (debug build: 152 bytes; 312 as an `async fn`, which keeps its arguments twice, holding
        // pingora's reuse beside the moved response; 1416 with the session inline; a session is
        // 680, the wait 344)
        assert!(size < session + wait, "{size} bytes: the wait ({wait}) and a session ({session}) side by side");
        // nor the wait's room, which a moved response (a watch) would hold beside it
        assert!(size < wait, "{size} bytes: the wait ({wait}) is inline");
        // only its captures and the connection for the next request, once
        let once = std::mem::size_of::<(Arc<App>, ShutdownWatch, ReusedHttpStream)>();
        assert!(size <= once + 32, "{size} bytes; its captures and the next request's connection are {once}");
    }

    #[test]
    fn the_request_line_is_read_as_sent() {
        assert_eq!(request_line(b"GET /a HTTP/1.1\r\nHost: a\r\n"), (&b"GET /a HTTP/1.1\r"[..], true));
        // httparse skips empty lines before it
        assert_eq!(request_line(b"\r\n\nGET /a\x00 HTTP/1.1\n"), (&b"GET /a\x00 HTTP/1.1"[..], true));
        assert_eq!(request_line(b"GET /a"), (&b"GET /a"[..], false));
        assert_eq!(request_line(b"\r\n"), (&b""[..], false));
    }

    /// A control byte or a space in the target is refused with Go's text, wherever the line's
    /// pieces end; their escapes go on to pingora.
    #[tokio::test]
    async fn a_control_byte_in_the_target_gets_gos_400() {
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        for (sent, refused) in [
            (&b"GET /api/v1/namespaces/de\x00v/configmaps HTTP/1.1\r\nHost: a\r\n\r\n"[..], true),
            (b"GET /api/v1/namespaces/de%00v/configmaps HTTP/1.1\r\nHost: a\r\n\r\n", false),
            (b"GET /api/v1/namespaces/de v/configmaps HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"GET /api/v1/namespaces/de%20v/configmaps HTTP/1.1\r\nHost: a\r\n\r\n", false),
        ] {
            let (client, server) = tokio::io::duplex(4096);
            let (client, mut server): (tokio::io::DuplexStream, Stream) = (client, Box::new(server));
            let (mut reader, mut writer) = tokio::io::split(client);
            // the line comes in pieces, one read each, its control byte in a later one
            let pieces: Vec<Vec<u8>> = sent.chunks(9).map(<[u8]>::to_vec).collect();
            let sender = tokio::spawn(async move {
                for piece in pieces {
                    if writer.write_all(&piece).await.is_err() {
                        break; // refused: the server has gone
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                writer
            });
            let head = next_request(&mut server, &shutdown).await;
            assert_eq!(head.is_none(), refused, "{}", sent.escape_ascii());
            if refused {
                drop(server);
                let mut answer = Vec::new();
                reader.read_to_end(&mut answer).await.unwrap();
                assert_eq!(answer, framing::GO_BAD_REQUEST);
            }
            let _ = sender.await;
        }
    }

    #[test]
    fn a_header_is_complete_at_its_blank_line() {
        assert!(header_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(header_complete(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"));
        assert!(!header_complete(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!header_complete(b"G"));
    }
}
