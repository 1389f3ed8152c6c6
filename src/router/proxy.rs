//! The upstream proxy to backend apiservers (aggregation).

use crate::context::RequestContext;
use pingora::http::RequestHeader;

/// Headers a client must never get through to a backend: its credentials and anything
/// that claims an identity.
pub fn strip_identity_headers(req: &mut RequestHeader) {
    let names: Vec<String> = req
        .headers
        .keys()
        .map(|k| k.as_str().to_ascii_lowercase())
        .filter(|k| k == "authorization" || k.starts_with("impersonate-") || k.starts_with("x-remote-"))
        .collect();
    for n in names {
        req.remove_header(&n);
    }
}

/// Prepares the request for the backend: identity headers stripped, the user's set.
pub fn upstream_request(req: &mut RequestHeader, ctx: &RequestContext) {
    strip_identity_headers(req);
    if let Some(user) = ctx.effective_user() {
        let _ = req.insert_header("X-Remote-User", user.username.as_str());
        for g in &user.groups {
            let _ = req.append_header("X-Remote-Group", g.as_str());
        }
    }
}

/// The upstream peer for a backend route.
pub fn upstream_peer(_gw: &crate::server::Gateway, _ctx: &RequestContext) -> pingora::Result<Box<pingora::prelude::HttpPeer>> {
    Err(pingora::Error::new_str("no backend"))
}

/// The Status a client sees when the backend cannot be reached.
pub fn error_status(e: &pingora::Error, _ctx: &RequestContext) -> crate::api::Status {
    crate::api::Status::service_unavailable(format!("error trying to reach service: {e}"))
}
