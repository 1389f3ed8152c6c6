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
//!   reuses the connection as pingora would have.

use super::request_log::RequestLog;
use crate::context::RequestContext;
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The body of a long-running response, run to its end after its header was written.
pub trait Stream: Send + 'static {
    /// Writes the body, the end of stream included.
    fn run<'a>(&'a mut self, session: &'a mut ServerSession) -> impl Future<Output = ()> + Send + 'a;
}

/// An HTTP/1.x response moved out of pingora's request: runs the body, logs the request and
/// gives the session back for the connection's reuse.
pub type Moved = Pin<Box<dyn Future<Output = Box<ServerSession>> + Send>>;

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
        return stream.run(session).await;
    }
    let downstream = std::mem::replace(&mut session.downstream_session, placeholder().await);
    let ctx = std::mem::replace(ctx, RequestContext { detached: true, ..Default::default() });
    let moved = respond(log.clone(), downstream, ctx, stream);
    if http2 {
        tokio::spawn(async move {
            // ends the stream if the body did not (a panic); nothing else for HTTP/2
            let _ = Box::pin(moved.await.finish()).await;
        });
    } else {
        MOVED.with(|slot| slot.set(Some(Box::pin(moved))));
    }
}

/// The moved response: the body, then the request's log (boxed: an idle response's state
/// holds only its stream).
async fn respond<S: Stream>(
    log: Arc<RequestLog>,
    mut downstream: Box<ServerSession>,
    mut ctx: RequestContext,
    mut stream: S,
) -> Box<ServerSession> {
    if let Err(panic) = crate::filters::panic_recovery::catch(stream.run(&mut downstream)).await {
        let what = format!("{} {}", downstream.req_header().method, downstream.req_header().uri.path());
        crate::filters::panic_recovery::panicked(&what, &panic);
        // the body may be cut short: the connection is not reused
        downstream.set_keepalive(None);
    }
    drop(stream);
    Box::pin(log.finish(&downstream, &mut ctx)).await;
    downstream
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
}
