//! Local responses: a Status or a body, with the headers every response carries.

use crate::api::Status;
use crate::context::RequestContext;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// A whole response written by frontdoor itself.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(code: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Reply { code, headers: vec![("Content-Type", content_type.to_string())], body: body.into() }
    }

    pub fn status(s: &Status) -> Self {
        let mut r = Reply::new(s.code, "application/json", s.to_json());
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

impl From<Status> for Reply {
    fn from(s: Status) -> Self {
        Reply::status(&s)
    }
}

/// Headers on every response, local or proxied: the Audit-ID and kube's cache control.
pub fn add_common_headers(ctx: &RequestContext, h: &mut ResponseHeader) {
    if !ctx.audit_id.is_empty() {
        let _ = h.insert_header("Audit-Id", ctx.audit_id.as_str());
    }
    if h.headers.get("Cache-Control").is_none() {
        let _ = h.insert_header("Cache-Control", "no-cache, private");
    }
}

/// A response header for a local response of `code`, with the common and CORS headers,
/// for handlers that stream their body (watch).
pub fn start_header(
    gw: &crate::server::Gateway,
    session: &Session,
    ctx: &RequestContext,
    code: u16,
    content_type: &str,
) -> ResponseHeader {
    let mut h = ResponseHeader::build(code, Some(4)).expect("valid status code");
    let _ = h.insert_header("Content-Type", content_type);
    add_common_headers(ctx, &mut h);
    gw.cors.add_headers(session.req_header(), &mut h);
    h
}

/// Writes the header of a streamed local response (watch) and, for a long-running
/// request, emits the audit ResponseStarted event. The body follows with
/// `session.write_response_body`.
pub async fn start_stream(
    gw: &crate::server::Gateway,
    session: &mut Session,
    ctx: &mut RequestContext,
    code: u16,
    content_type: &str,
) -> pingora::Result<()> {
    let h = start_header(gw, session, ctx, code, content_type);
    ctx.response_code = code;
    session.write_response_header(Box::new(h), false).await?;
    if ctx.request_info.is_long_running() {
        crate::audit::response_started(gw, ctx, code).await;
    }
    Ok(())
}

/// Writes a whole local response.
pub async fn send(
    gw: &crate::server::Gateway,
    session: &mut Session,
    ctx: &mut RequestContext,
    reply: Reply,
) -> pingora::Result<()> {
    let mut h = ResponseHeader::build(reply.code, Some(reply.headers.len() + 4)).expect("valid status code");
    for (k, v) in &reply.headers {
        let _ = h.append_header(*k, v.as_str());
    }
    let _ = h.insert_header("Content-Length", reply.body.len().to_string());
    add_common_headers(ctx, &mut h);
    gw.cors.add_headers(session.req_header(), &mut h);
    ctx.response_code = reply.code;
    crate::audit::local_reply(ctx, &reply);
    session.set_keepalive(Some(60));
    session.write_response_header(Box::new(h), false).await?;
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_body(if head { None } else { Some(reply.body) }, true).await?;
    Ok(())
}
