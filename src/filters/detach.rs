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
        tokio::spawn(own_task(moved));
    } else {
        MOVED.with(|slot| slot.set(Some(Box::pin(moved))));
    }
}

/// The moved response: the body, then the request's log (boxed: an idle response's state
/// holds only its stream). An async block, not an `async fn`: an `async fn`'s future keeps
/// its arguments twice (as arguments and as the locals they move into; rust-lang/rust#62958),
/// which made every idle HTTP/2 watch ~4.5 KB larger.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn respond<S: Stream>(
    log: Arc<RequestLog>,
    mut downstream: Box<ServerSession>,
    mut ctx: RequestContext,
    mut stream: S,
) -> impl Future<Output = Box<ServerSession>> + Send {
    async move {
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
}

/// An HTTP/2 response's task: the moved response, then the end of its stream if the body did
/// not end it (a panic). Chained with `then`, not awaited in an async block: an async block
/// keeps a future it awaits in a second slot of its own beside the captured one.
fn own_task(moved: impl Future<Output = Box<ServerSession>> + Send) -> impl Future<Output = ()> + Send {
    use futures::FutureExt;
    moved.then(|downstream| async move {
        let _ = Box::pin(downstream.finish()).await;
    })
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
        async fn run(&mut self, _: &mut ServerSession) {
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
        // the body's future of a few references)
        let once = std::mem::size_of::<RequestContext>() + 4096 + 1024;
        let moved = respond(log, placeholder().await, RequestContext::default(), Sized([0u8; 4096]));
        let size = std::mem::size_of_val(&moved);
        assert!(size < once, "{size} bytes; the parts once and some room: {once}");
        // and so is an HTTP/2 response's task
        let task = own_task(moved);
        let size = std::mem::size_of_val(&task);
        assert!(size < once, "the task: {size} bytes; the parts once and some room: {once}");
    }
}
