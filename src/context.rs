//! The request context: one struct that travels the chain, each field filled once by the
//! filter that owns it and read by everything after (see DESIGN.md).

use crate::authn::user::UserInfo;
use crate::authz::decision::Decision;
use crate::filters::request_received::Incoming;
use crate::request_info::query::Query;
use crate::request_info::RequestInfo;
pub use crate::router::Route;
use crate::tls::PeerIdentity;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

#[derive(Default)]
pub struct RequestContext {
    // request received
    pub received: Option<Instant>,
    pub received_at: Option<SystemTime>,
    /// The audit ID, user agent, request URI and source IPs, one text.
    pub incoming: Incoming,
    /// The connection's peer address (the client, or the proxy in front of it).
    pub client_ip: Option<std::net::IpAddr>,
    // request_info: the query parsed once (Go's url.ParseQuery) and what the request is about;
    // every later stage and handler reads these, never the raw URI
    pub query: Query,
    pub request_info: Arc<RequestInfo>,
    /// framing: the body's announced length (`Content-Length`, checked once), if it has one
    pub content_length: Option<usize>,
    // timeout: the deadline of a non-long-running request
    pub deadline: Option<std::time::Duration>,
    // TLS
    pub peer: Option<Arc<PeerIdentity>>,
    // authentication: shared with where it came from (the connection's certificate, the token
    // cache) where that holds it already
    pub user: Option<Arc<UserInfo>>,
    // impersonation: `impersonated` is who the request acts as; `user` stays the original
    /// Boxed, as `audit` is: set for few requests, inline its room would be in every request's
    /// context and every idle watch.
    pub impersonated: Option<Box<UserInfo>>,
    // flow control
    pub inflight: Option<crate::flowcontrol::maxinflight::Permit>,
    /// Priority & fairness' classification, for the X-Kubernetes-PF-* response headers.
    pub flow: Option<crate::flowcontrol::classified::Classified>,
    // audit: boxed, held only for a request the audit policy records
    pub audit: Option<Box<crate::audit::state::AuditState>>,
    // authorization
    pub decision: Option<(Decision, Arc<str>)>,
    // router
    pub route: Route,
    /// Shuts the upstream connection down if its response head has not come by the deadline.
    pub head_deadline: Option<crate::router::head_deadline::HeadDeadline>,
    // outcome, for metrics, audit and the access log
    pub response_code: u16,
    /// Held while this request counts toward the graceful-shutdown drain.
    pub drain: Option<crate::filters::shutdown::DrainGuard>,
    /// pingora's `logging` hook does not log this request: its response went on in its own
    /// task (`filters::detach`), which logs it when it ends, or its HTTP/2 stream was reset
    /// before the chain, as Go's server resets a malformed one (`framing::h2_stream_refused`),
    /// and no handler saw it. (One flag: a second made every context 8 bytes larger.)
    pub not_logged_here: bool,
    /// When each stage of the chain finished, for the slow-request trace (`filters::trace`).
    pub steps: crate::filters::trace::Steps,
    /// The request's OpenTelemetry spans, with `--tracing-config-file` only (`otel`); boxed, so
    /// that a request (an idle watch) without them holds one word.
    pub spans: Option<Box<crate::otel::span::RequestSpans>>,
}

impl RequestContext {
    /// The user the request acts as: the impersonated one if any, else the authenticated one.
    pub fn effective_user(&self) -> Option<&UserInfo> {
        self.impersonated.as_deref().or(self.user.as_deref())
    }
}

#[cfg(test)]
mod tests {
    /// Every request's state and every idle watch holds a context: what few requests set is
    /// boxed (audit's state, an impersonated user; 856 bytes with both inline), the chain's
    /// step times are offsets (616 bytes as times), priority & fairness' headers one reference
    /// (480 bytes), the user a shared one (392 bytes), the request-received strings one text
    /// (328 bytes), the authorization reason a shared one (320 bytes), without the name of the
    /// authenticator, which nothing read (304 bytes now).
    #[test]
    fn a_context_holds_rare_parts_boxed() {
        let size = std::mem::size_of::<super::RequestContext>();
        assert!(size <= 304, "{size} bytes");
    }
}
