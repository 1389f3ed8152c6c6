//! Long-running local responses (watches) leave pingora's per-request state.
//!
//! pingora keeps a request's state, sized for its whole proxy path (~15 KB), plus our handler
//! chain's state (~5 KB), for as long as the response lasts. An idle watch needs none of it:
//! only its stream, its context and what it watches. So once a watch's header is written, its
//! downstream session and context move out of pingora's request; pingora's request ends at
//! once (a placeholder session stands in for the moved one), and the moved response ends and
//! logs the request — metrics, audit ResponseComplete, the in-flight seat — when the stream
//! ends, as pingora's `logging` would have.
//!
//! - HTTP/2: the response runs in a task of its own (the connection carries many requests and
//!   the request owns only its stream).
//! - HTTP/1.x: the request owns its connection, which comes back for the next request after
//!   the response. The connection's loop (`crate::connection`) runs the request [`within`] a
//!   slot that takes the moved response, runs it once pingora's request has ended, and then
//!   reuses the connection as pingora would have. The body is written to the connection itself
//!   ([`Chunked`]): pingora's session, with the request's and the response's headers (~4.5 KB),
//!   is dropped once the header is out.

use super::request_log::{Outcome, RequestLog};
use crate::context::RequestContext;
use bytes::{Buf, Bytes};
use pingora::apps::{HttpPersistentSettings, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, OrErr};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The body of a long-running response, run to its end after its header was written.
pub trait Stream: Send + 'static {
    /// Writes the body, the end of stream included.
    fn run<'a, B: Body>(&'a mut self, body: &'a mut B) -> impl Future<Output = ()> + Send + 'a;
}

/// Where a long-running response's body goes: pingora's session (HTTP/2, or a response run in
/// place) or an HTTP/1.1 connection itself ([`Chunked`]).
pub trait Body: Send {
    /// Writes one piece of the body.
    fn write(&mut self, data: Bytes) -> impl Future<Output = pingora::Result<()>> + Send;
    /// Ends the body.
    fn end(&mut self) -> impl Future<Output = pingora::Result<()>> + Send;
    /// Resolves once the client is gone: it closed the connection, reset the stream, or sent
    /// what it may not send during the response.
    fn gone(&mut self) -> impl Future<Output = ()> + Send;
}

impl Body for ServerSession {
    async fn write(&mut self, data: Bytes) -> pingora::Result<()> {
        self.write_response_body(data, false).await
    }

    async fn end(&mut self) -> pingora::Result<()> {
        self.write_response_body(Bytes::new(), true).await
    }

    async fn gone(&mut self) {
        // request body data (HTTP/2) is read and dropped; anything else ends the response
        while let Ok(Some(_)) = self.read_body_or_idle(true).await {}
    }
}

/// An HTTP/1.1 response's body written to the connection itself, in chunks, as pingora's
/// chunked body writer frames them.
pub struct Chunked {
    stream: pingora::protocols::Stream,
    /// A HEAD request's response has no body (pingora frames it with a length of 0).
    head: bool,
    /// Whether the connection can serve the next request once the body has ended: pingora's
    /// keep-alive decision, cleared by a write that did not finish or a client that went away.
    reusable: bool,
    /// A write was cut short (an error, or dropped at a timeout): a chunk is half sent, and
    /// nothing more can be framed after it.
    broken: bool,
}

impl Body for Chunked {
    async fn write(&mut self, data: Bytes) -> pingora::Result<()> {
        if self.head || data.is_empty() {
            return Ok(());
        }
        // the chunk's size line on the stack: a watch writes one chunk per event
        let mut size = [0u8; 18];
        let n = {
            let mut w = &mut size[..];
            let _ = std::io::Write::write_fmt(&mut w, format_args!("{:X}\r\n", data.len()));
            18 - w.len()
        };
        self.send(Buf::chain(&size[..n], data).chain(&b"\r\n"[..])).await
    }

    async fn end(&mut self) -> pingora::Result<()> {
        if self.head {
            return Ok(());
        }
        self.send(&b"0\r\n\r\n"[..]).await
    }

    async fn gone(&mut self) {
        // pipelining is off: any byte before the response ends is as final as the close
        let mut probe = [0u8; 1];
        let _ = self.stream.read(&mut probe).await;
        self.reusable = false;
    }
}

impl Chunked {
    /// Writes and flushes framed bytes; after a write cut short the client is stalled or gone,
    /// and nothing more is written, or waited for.
    async fn send(&mut self, mut out: impl Buf + Send) -> pingora::Result<()> {
        if self.broken {
            return Error::e_explain(ErrorType::WriteError, "a chunk was cut short");
        }
        self.broken = true;
        self.stream.write_all_buf(&mut out).await.or_err(ErrorType::WriteError, "while writing body")?;
        self.stream.flush().await.or_err(ErrorType::WriteError, "flushing body")?;
        self.broken = false;
        Ok(())
    }

    /// The body of `session`'s response, whose header has been written: the session's
    /// connection, with pingora's keep-alive decision for it.
    async fn of(session: ServerSession) -> pingora::Result<(Chunked, HttpPersistentSettings)> {
        let settings = HttpPersistentSettings::for_session(&session);
        let ServerSession::H1(mut h1) = session else {
            return Error::e_explain(ErrorType::InternalError, "not an HTTP/1.x session");
        };
        let head = h1.req_header().method == http::Method::HEAD;
        let (mut stream, reusable) = if h1.will_keepalive() && h1.is_body_done() {
            // pingora's reuse hands the connection over with what it read past the request (a
            // pipelined request): a connection with such bytes is not reused, as pingora's own
            // reuse decides without pipelining
            h1.set_pipelining_enabled(true);
            match h1.reuse().await {
                Ok(Some(reusable)) => {
                    let (stream, read_ahead) = reusable.into_parts();
                    (stream, read_ahead.is_none())
                }
                _ => return Error::e_explain(ErrorType::WriteError, "the connection closed"),
            }
        } else {
            (h1.into_inner(), false)
        };
        // pingora leaves a streamed response's header in the stream's write buffer
        stream.flush().await.or_err(ErrorType::WriteError, "flushing response header")?;
        Ok((Chunked { stream, head, reusable, broken: false }, settings))
    }

    /// The connection once the body has ended: for the next request, or shut down.
    async fn finish(mut self, settings: HttpPersistentSettings) -> Option<ReusedHttpStream> {
        if self.reusable && !self.broken {
            return Some(ReusedHttpStream::new(self.stream, Some(settings)));
        }
        // bounded: a client that takes no more bytes would hold the connection's task forever
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, self.stream.shutdown()).await;
        None
    }
}

/// How long a connection that is not reused may take to close (TLS close_notify).
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// An HTTP/1.x response moved out of pingora's request: runs the body, logs the request and
/// gives the connection back for its next request (None: it closes).
pub type Moved = Pin<Box<dyn Future<Output = Option<ReusedHttpStream>> + Send>>;

tokio::task_local! {
    /// Where [`run`] leaves an HTTP/1.x response for the connection's loop (set only [`within`]).
    static MOVED: Cell<Option<Moved>>;
}

/// Runs `stream` to its end outside pingora's request: in a task of its own for an HTTP/2
/// request, after pingora's request for an HTTP/1.x one run [`within`] (returning at
/// once, the moved response finishing the request with `log`); else right here.
pub async fn run<S: Stream>(log: &Arc<RequestLog>, session: &mut Session, ctx: &mut RequestContext, stream: S) {
    let http2 = session.is_http2();
    if !http2 && MOVED.try_with(|_| ()).is_err() {
        let mut stream = stream;
        return stream.run(&mut *session.downstream_session).await;
    }
    let downstream = std::mem::replace(&mut session.downstream_session, placeholder().await);
    let ctx = std::mem::replace(ctx, RequestContext { not_logged_here: true, ..Default::default() });
    if http2 {
        tokio::spawn(respond(log.clone(), downstream, ctx, stream));
    } else {
        MOVED.with(|slot| slot.set(Some(Box::pin(respond_http1(log.clone(), downstream, ctx, stream)))));
    }
}

/// Runs the body, recovering a panic (logged as the request `method` of `ctx`); false if it
/// panicked, which may have cut the body short.
async fn run_body<S: Stream, B: Body>(
    stream: &mut S,
    body: &mut B,
    method: &http::Method,
    ctx: &RequestContext,
) -> bool {
    match crate::filters::panic_recovery::catch(stream.run(body)).await {
        Ok(()) => true,
        Err(panic) => {
            crate::filters::panic_recovery::panicked(&format!("{method} {}", ctx.incoming.request_uri()), &panic);
            false
        }
    }
}

/// What the request's log reads at the response's end, read now: the request's query is not
/// kept for the response's life (an idle watch's); what the stream needs of it, it has.
fn read_outcome(session: &ServerSession, ctx: &mut RequestContext) -> Outcome {
    let outcome = Outcome::of(session, ctx);
    ctx.query = Default::default();
    outcome
}

/// An HTTP/2 response's task: the body, the request's log (boxed: an idle response's state
/// holds only its stream), then the end of its stream if the body did not end it (a panic).
/// An async block, not an `async fn`: an `async fn`'s future keeps its arguments twice (as
/// arguments and as the locals they move into; rust-lang/rust#62958), which made every idle
/// HTTP/2 watch ~4.5 KB larger.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn respond<S: Stream>(
    log: Arc<RequestLog>,
    mut downstream: Box<ServerSession>,
    mut ctx: RequestContext,
    mut stream: S,
) -> impl Future<Output = ()> + Send {
    async move {
        let outcome = read_outcome(&downstream, &mut ctx);
        let method = downstream.req_header().method.clone();
        // The request's headers (its credentials among them) are not read again: what is kept
        // for the response's life is its method and path.
        if let Ok(mut bare) = pingora::http::RequestHeader::build_no_case(method.clone(), b"/", Some(0)) {
            bare.set_uri(downstream.req_header().uri.clone());
            *downstream.req_header_mut() = bare;
        }
        if !run_body(&mut stream, &mut *downstream, &method, &ctx).await {
            downstream.set_keepalive(None);
        }
        drop(stream);
        Box::pin(log.finish_with(outcome, &mut ctx)).await;
        let _ = Box::pin(downstream.finish()).await;
    }
}

/// An HTTP/1.x response moved out of pingora's request: its body written to the connection
/// itself ([`Chunked`]) once pingora's session, and the headers it keeps, are dropped.
#[allow(clippy::manual_async_fn)] // on purpose: see `respond`
fn respond_http1<S: Stream>(
    log: Arc<RequestLog>,
    downstream: Box<ServerSession>,
    mut ctx: RequestContext,
    mut stream: S,
) -> impl Future<Output = Option<ReusedHttpStream>> + Send {
    async move {
        let outcome = read_outcome(&downstream, &mut ctx);
        let method = downstream.req_header().method.clone();
        // out of its box in a scope of its own: a box moved out of is freed only when its
        // scope ends, which for this block's captures is the response's end
        let session = {
            let boxed = downstream;
            *boxed
        };
        // let-else, not a match or an Option assigned later: either would keep a second slot
        // for the body and pingora's settings (~100 bytes) beside the ones the body runs with
        let Ok((mut body, settings)) = Box::pin(Chunked::of(session)).await else {
            drop(stream);
            Box::pin(log.finish_with(outcome, &mut ctx)).await;
            return None;
        };
        if !run_body(&mut stream, &mut body, &method, &ctx).await {
            body.reusable = false;
        }
        drop(stream);
        Box::pin(log.finish_with(outcome, &mut ctx)).await;
        Box::pin(body.finish(settings)).await
    }
}

/// Runs an HTTP/1.x request (pingora's `process_new_http`) where [`run`] can move its response
/// out; returns the request's outcome and the moved response, which the caller awaits to end
/// the response and log the request, and which gives the session back.
pub async fn within<F: Future>(request: F) -> (F::Output, Option<Moved>) {
    MOVED
        .scope(Cell::new(None), async {
            let outcome = request.await;
            (outcome, MOVED.with(Cell::take))
        })
        .await
}

/// What pingora's request holds once its session moved out: an HTTP/1.1 session over an
/// in-memory request, which pingora finishes without keep-alive (no I/O).
async fn placeholder() -> Box<ServerSession> {
    let io = std::io::Cursor::new(b"GET / HTTP/1.1\r\nHost: detached\r\nConnection: close\r\n\r\n".to_vec());
    let mut s = ServerSession::new_http1(Box::new(io));
    let _ = s.read_request().await;
    Box::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn placeholder_is_a_finished_request() {
        let p = placeholder().await;
        assert_eq!(p.req_header().uri.path(), "/");
        assert!(p.response_written().is_none());
        assert!(p.finish().await.unwrap().is_none(), "never reused");
    }

    /// A body that holds `N` bytes while it runs.
    struct Sized<const N: usize>([u8; N]);

    impl<const N: usize> Stream for Sized<N> {
        async fn run<B: Body>(&mut self, _: &mut B) {
            std::future::pending::<()>().await;
            let _ = self.0[0];
        }
    }

    /// A moved response is its context, its stream and its body's state once each: what an
    /// idle watch costs beyond its stream.
    #[tokio::test]
    async fn a_moved_response_holds_its_state_once() {
        let audit = crate::audit::Audit::new(&crate::audit::AuditArgs::default()).unwrap();
        let log = Arc::new(RequestLog::new(Arc::new(audit), std::time::Duration::from_secs(1)));
        // the context and the stream once, and room for the rest (the log, the session's box,
        // the body's future of a few references, the body and pingora's settings once; debug
        // build: 296 bytes, 504 with a second slot for the body and settings)
        let once = std::mem::size_of::<RequestContext>() + 4096 + 384;
        let task = respond(log.clone(), placeholder().await, RequestContext::default(), Sized([0u8; 4096]));
        let size = std::mem::size_of_val(&task);
        assert!(size < once, "an HTTP/2 response's task: {size} bytes; the parts once and some room: {once}");
        let moved = respond_http1(log, placeholder().await, RequestContext::default(), Sized([0u8; 4096]));
        let size = std::mem::size_of_val(&moved);
        assert!(size < once, "an HTTP/1.x response: {size} bytes; the parts once and some room: {once}");
    }

    /// An HTTP/1.1 session over one end of an in-memory connection, its request read and a
    /// streamed response's header written; the client's end.
    async fn streaming(request: &str) -> (ServerSession, tokio::io::DuplexStream) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(request.as_bytes()).await.unwrap();
        let mut session = ServerSession::new_http1(Box::new(server));
        assert!(session.read_request().await.unwrap());
        let mut h = pingora::http::ResponseHeader::build(200, None).unwrap();
        h.insert_header("Transfer-Encoding", "chunked").unwrap();
        session.write_response_header(Box::new(h)).await.unwrap();
        (session, client)
    }

    /// What the client has received so far, up to its end of the connection or `until`.
    async fn received(client: &mut tokio::io::DuplexStream, until: &str) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(until) {
            match tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn an_http1_body_is_chunked_on_the_connection_which_is_then_reused() {
        let (session, mut client) = streaming("GET /w HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let (mut body, settings) = Chunked::of(session).await.unwrap();
        // the header is out before any of the body
        let head = received(&mut client, "\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked\r\n"), "{head}");
        body.write(Bytes::from_static(b"{\"type\":\"ADDED\"}\n")).await.unwrap();
        body.write(Bytes::new()).await.unwrap();
        body.write(Bytes::from(vec![b'x'; 300])).await.unwrap();
        body.end().await.unwrap();
        let want = format!("11\r\n{{\"type\":\"ADDED\"}}\n\r\n12C\r\n{}\r\n0\r\n\r\n", "x".repeat(300));
        assert_eq!(received(&mut client, "0\r\n\r\n").await, want);
        // the connection serves the next request
        let reused = body.finish(settings).await.expect("kept alive");
        let (stream, _) = reused.consume();
        let mut next = ServerSession::new_http1(stream);
        client.write_all(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        assert!(next.read_request().await.unwrap());
        assert_eq!(next.req_header().uri.path(), "/next");
    }

    #[tokio::test]
    async fn an_http1_connection_is_not_reused_after_close_a_client_gone_or_a_head() {
        // the client asked for the connection's close
        let (session, mut client) = streaming("GET /w HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        let (mut body, settings) = Chunked::of(session).await.unwrap();
        body.write(Bytes::from_static(b"a")).await.unwrap();
        body.end().await.unwrap();
        assert!(body.finish(settings).await.is_none());
        assert!(received(&mut client, "never").await.ends_with("1\r\na\r\n0\r\n\r\n"));

        // the client sent bytes during the response (no pipelining): gone, and not reused
        let (session, mut client) = streaming("GET /w HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let (mut body, settings) = Chunked::of(session).await.unwrap();
        client.write_all(b"G").await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), body.gone()).await.expect("gone");
        body.end().await.unwrap();
        assert!(body.finish(settings).await.is_none());

        // a HEAD response has no body
        let (session, mut client) = streaming("HEAD /w HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let (mut body, settings) = Chunked::of(session).await.unwrap();
        body.write(Bytes::from_static(b"a")).await.unwrap();
        body.end().await.unwrap();
        assert!(body.finish(settings).await.is_some());
        drop(client.shutdown().await);
        assert!(received(&mut client, "never").await.ends_with("\r\n\r\n"));
    }

    /// A request sent behind the watch's (pipelined) is not lost on a reused connection:
    /// the connection is not reused, as pingora's own reuse decides.
    #[tokio::test]
    async fn a_pipelined_request_behind_a_watch_closes_the_connection_after_it() {
        let (session, mut client) =
            streaming("GET /w HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let (mut body, settings) = Chunked::of(session).await.unwrap();
        body.write(Bytes::from_static(b"a")).await.unwrap();
        body.end().await.unwrap();
        assert!(body.finish(settings).await.is_none(), "not reused: /next was read with the watch's request");
        assert!(received(&mut client, "never").await.ends_with("1\r\na\r\n0\r\n\r\n"));
    }

    /// A write cut short (the client stalled) leaves the body unframed: its end neither writes
    /// nor waits, and the connection is not reused.
    #[tokio::test]
    async fn the_end_after_a_cut_write_neither_writes_nor_waits() {
        let (mut client, server) = tokio::io::duplex(256);
        client.write_all(b"GET /w HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        let mut session = ServerSession::new_http1(Box::new(server));
        assert!(session.read_request().await.unwrap());
        let mut h = pingora::http::ResponseHeader::build(200, None).unwrap();
        h.insert_header("Transfer-Encoding", "chunked").unwrap();
        session.write_response_header(Box::new(h)).await.unwrap();
        let (mut body, settings) = Chunked::of(session).await.unwrap();
        let cut =
            tokio::time::timeout(std::time::Duration::from_millis(200), body.write(Bytes::from(vec![b'x'; 4096])));
        assert!(cut.await.is_err(), "the client reads nothing: the write is cut");
        let end = tokio::time::timeout(std::time::Duration::from_secs(2), body.end()).await;
        assert!(matches!(end, Ok(Err(_))), "ends at once, with an error");
        assert!(body.finish(settings).await.is_none());
        drop(client);
    }
}
