//! Local responses: a Status or a body, with the headers every response carries.

use super::cors::Cors;
use crate::api::Status;
use crate::audit::Audit;
use crate::context::RequestContext;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::sync::Arc;

/// A response written by frontdoor itself: its body whole, or (a large list) its first chunk
/// and the chunks that follow.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub headers: Vec<(&'static str, String)>,
    /// The body, or its first chunk when `rest` follows.
    pub body: Bytes,
    /// The body's further chunks, made as they are written (a large list is never held whole).
    pub rest: Option<Chunks>,
}

/// The chunks of a streamed body after the first, each made when the one before is written.
pub struct Chunks(pub Box<dyn Iterator<Item = Bytes> + Send>);

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chunks(..)")
    }
}

impl Reply {
    pub fn new(code: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Reply { code, headers: vec![("Content-Type", content_type.to_string())], body: body.into(), rest: None }
    }

    /// A body made chunk by chunk: whole (with a Content-Length) when it fits in one chunk,
    /// else streamed without a length (HTTP/1.1 chunked), as kube-apiserver streams a large list.
    pub fn chunked(code: u16, content_type: &str, mut chunks: impl Iterator<Item = Bytes> + Send + 'static) -> Self {
        let first = chunks.next().unwrap_or_default();
        let mut chunks = chunks.peekable();
        let mut r = Reply::new(code, content_type, first);
        if chunks.peek().is_some() {
            r.rest = Some(Chunks(Box::new(chunks)));
        }
        r
    }

    /// The whole body (a streamed one's chunks made and joined): for tests and small callers.
    pub fn into_body(self) -> Bytes {
        match self.rest {
            None => self.body,
            Some(Chunks(rest)) => {
                let mut b = self.body.to_vec();
                rest.for_each(|c| b.extend_from_slice(&c));
                b.into()
            }
        }
    }

    /// A response without a body or content headers (e.g. the 204 answering a CORS preflight).
    pub fn empty(code: u16) -> Self {
        Reply { code, headers: Vec::new(), body: Bytes::new(), rest: None }
    }

    pub fn status(s: &Status) -> Self {
        // a Success Status carries no code (kube omits it); it is sent as 200
        let code = if s.code == 0 { 200 } else { s.code };
        let mut r = Reply::new(code, "application/json", s.to_json());
        if let Some(d) = &s.details {
            if d.retry_after_seconds > 0 {
                r.headers.push(("Retry-After", d.retry_after_seconds.to_string()));
            }
        }
        r
    }

    pub fn json<T: serde::Serialize>(code: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(b) => Reply::new(code, "application/json", b),
            Err(e) => Reply::status(&Status::internal_error(e)),
        }
    }

    pub fn text(code: u16, body: impl Into<String>) -> Self {
        let mut r = Reply::new(code, "text/plain; charset=utf-8", body.into());
        r.headers.push(("X-Content-Type-Options", "nosniff".into()));
        r
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// kube's `responsewriters.InternalError` (a path the chain cannot resolve, impersonation
/// headers it cannot read, an authorizer's error, an audit event it cannot store): kube writes
/// this text as plain text; we carry the same text in a 500 Status, as every error a client
/// sees is a Status here.
pub fn internal_error(request_uri: &str, err: &str) -> Status {
    let msg = format!("Internal Server Error: {}: {err}", crate::api::field::quote(request_uri));
    Status::failure(500, "InternalError", sanitize(&msg))
}

/// kube's `responsewriters` sanitizer: its error texts are HTML-escaped, as browsers may show
/// them.
pub fn sanitize(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl From<Status> for Reply {
    fn from(s: Status) -> Self {
        Reply::status(&s)
    }
}

/// kube's default cache control, a static value: setting it copies and checks nothing.
static NO_CACHE: http::HeaderValue = http::HeaderValue::from_static("no-cache, private");

/// Headers on every response, local or proxied: the Audit-ID and kube's cache control.
pub fn add_common_headers(ctx: &RequestContext, h: &mut ResponseHeader) {
    if !ctx.incoming.audit_id().is_empty() {
        let _ = h.insert_header("Audit-Id", ctx.incoming.audit_id());
    }
    // the constant name: a `&str` key is parsed on every lookup
    if !h.headers.contains_key(http::header::CACHE_CONTROL) {
        let _ = h.insert_header("Cache-Control", NO_CACHE.clone());
    }
    if let Some(flow) = &ctx.flow {
        flow.add_headers(h);
    }
}

/// Writes frontdoor's own responses: the common and CORS headers, the audit stage's record of
/// the reply, ResponseStarted for a streamed long-running one. Every local handler is given
/// one (a cheap clone) instead of the stages behind it.
#[derive(Clone)]
pub struct Responder {
    cors: Arc<Cors>,
    audit: Arc<Audit>,
}

impl Responder {
    pub fn new(cors: Arc<Cors>, audit: Arc<Audit>) -> Self {
        Responder { cors, audit }
    }

    /// A response header for a local response of `code`, with the common and CORS headers,
    /// for handlers that stream their body (watch).
    pub fn start_header(
        &self,
        session: &Session,
        ctx: &RequestContext,
        code: u16,
        content_type: &str,
    ) -> ResponseHeader {
        // HTTP/2 sends names in lower case anyway; a case map would be held for the whole stream
        let h = if session.is_http2() {
            ResponseHeader::build_no_case(code, Some(4))
        } else {
            ResponseHeader::build(code, Some(4))
        };
        let mut h = h.expect("valid status code");
        let _ = h.insert_header("Content-Type", content_type);
        add_common_headers(ctx, &mut h);
        self.cors.add_headers(session.req_header(), &mut h);
        h
    }

    /// Writes the header of a streamed local response (watch) and, for a long-running
    /// request, emits the audit ResponseStarted event. The body follows with
    /// `session.write_response_body`.
    pub async fn start_stream(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        code: u16,
        content_type: &str,
    ) -> pingora::Result<()> {
        let mut h = self.start_header(session, ctx, code, content_type);
        if !session.is_http2() {
            // no length is known ahead: HTTP/1.1 streams chunk by chunk
            let _ = h.insert_header("Transfer-Encoding", "chunked");
        }
        ctx.response_code = code;
        session.write_response_header(Box::new(h), false).await?;
        if ctx.request_info.is_long_running() {
            self.audit.response_started(ctx, code).await;
        }
        Ok(())
    }

    /// Writes a local response: whole, or its chunks one after another (each made once the
    /// one before is written). Once the first chunk is out, the status is sent: a failure to
    /// write a later one ends the connection mid-body, as kube's streaming list encoder does.
    pub async fn send(&self, session: &mut Session, ctx: &mut RequestContext, reply: Reply) -> pingora::Result<()> {
        let mut h = ResponseHeader::build(reply.code, Some(reply.headers.len() + 4)).expect("valid status code");
        for (k, v) in &reply.headers {
            let _ = h.append_header(*k, v.as_str());
        }
        // a 204 or 304 carries no body, so no Content-Length either (RFC 9110 8.6)
        let bodiless = matches!(reply.code, 204 | 304);
        if reply.rest.is_some() {
            if !session.is_http2() {
                let _ = h.insert_header("Transfer-Encoding", "chunked");
            }
        } else if !bodiless {
            let _ = h.insert_header("Content-Length", reply.body.len().to_string());
        }
        add_common_headers(ctx, &mut h);
        self.cors.add_headers(session.req_header(), &mut h);
        ctx.response_code = reply.code;
        let code = reply.code;
        crate::audit::local_reply(ctx, &reply);
        session.write_response_header(Box::new(h), false).await?;
        let head = session.req_header().method == http::Method::HEAD;
        let Reply { body, rest, .. } = reply;
        match rest {
            Some(Chunks(rest)) if !head => {
                session.write_response_body(Some(body), false).await?;
                for chunk in rest {
                    crate::audit::response_body(ctx, &chunk);
                    session.write_response_body(Some(chunk), false).await?;
                }
                session.write_response_body(None, true).await?;
            }
            _ => session.write_response_body(if head || bodiless { None } else { Some(body) }, true).await?,
        }
        if code >= 400 {
            // an error may come before the body was read (a success has read what it needed);
            // the seat is free once the reply is written, not held while the rest comes
            ctx.inflight = None;
            super::request_body::discard(session, super::request_body::DISCARD_LIMIT).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_error_is_a_status_with_kubes_text() {
        let r = Reply::from(internal_error("/api/v1/watch?a=<b>&c", "failed to create RequestInfo: x"));
        assert_eq!(r.code, 500);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "InternalError");
        assert_eq!(
            v["message"],
            "Internal Server Error: \"/api/v1/watch?a=&lt;b&gt;&amp;c\": failed to create RequestInfo: x"
        );
    }
}
