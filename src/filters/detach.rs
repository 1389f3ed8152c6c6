//! Long-running local responses (watches) leave pingora's per-request task.
//!
//! pingora keeps every HTTP/2 stream in a task of its own whose state is sized for its whole
//! proxy path (~15 KB), plus our handler chain's state (~5 KB), for as long as the response
//! lasts. An idle watch needs none of it: only its stream, its context and what it watches.
//! So once a watch's header is written, its downstream session and context move into a
//! small task of their own; pingora's request ends at once (a placeholder session stands in
//! for the moved one), and the detached task ends the response and logs the request —
//! metrics, audit ResponseComplete, the in-flight seat — when the stream ends, as pingora's
//! `logging` would have.
//!
//! Only HTTP/2: there a connection carries many watches and the request owns only its
//! stream. An HTTP/1.x watch owns its connection, which pingora reuses after the response,
//! so it stays in pingora's task.

use super::request_log::RequestLog;
use crate::context::RequestContext;
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;
use std::future::Future;
use std::sync::Arc;

/// The body of a long-running response, run to its end after its header was written.
pub trait Stream: Send + 'static {
    /// Writes the body, the end of stream included.
    fn run<'a>(&'a mut self, session: &'a mut ServerSession) -> impl Future<Output = ()> + Send + 'a;
}

/// Runs `stream` to its end: in a task of its own for an HTTP/2 request (returning at once,
/// the task finishing the request with `log`), else right here.
pub async fn run<S: Stream>(log: &Arc<RequestLog>, session: &mut Session, ctx: &mut RequestContext, mut stream: S) {
    if !session.is_http2() {
        return stream.run(session).await;
    }
    let log = log.clone();
    let mut downstream = std::mem::replace(&mut session.downstream_session, placeholder().await);
    let mut ctx = std::mem::replace(ctx, RequestContext { detached: true, ..Default::default() });
    tokio::spawn(async move {
        if let Err(panic) = crate::filters::panic_recovery::catch(stream.run(&mut downstream)).await {
            let what = format!("{} {}", downstream.req_header().method, downstream.req_header().uri.path());
            crate::filters::panic_recovery::panicked(&what, &panic);
        }
        // boxed, like every await after the stream: an idle task's state holds only the stream
        Box::pin(log.finish(&downstream, &mut ctx)).await;
        // ends the stream if the body did not (a panic); nothing else for HTTP/2
        let _ = Box::pin(downstream.finish()).await;
    });
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
