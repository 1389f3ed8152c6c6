//! Requests frontdoor answers itself.

use crate::api::Status;
use crate::context::RequestContext;
use crate::filters::response::send;
use crate::filters::Reply;
use crate::server::Gateway;
use pingora::proxy::Session;

pub async fn serve(gw: &Gateway, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<()> {
    if let Some(r) = crate::authn::review::serve(gw, session, ctx).await {
        return r;
    }
    let info = ctx.request_info.clone();
    if let Some(r) = crate::authz::review::serve(gw, session, ctx).await {
        return r;
    }
    if info.is_resource_request {
        if gw.store.serves(&info.api_group, &info.api_version, &info.resource) {
            return crate::store::rest::serve(gw, session, ctx).await;
        }
        return send(gw, session, ctx, Status::path_not_found().into()).await;
    }
    if let Some(r) = crate::store::openapi::serve(gw, session, ctx).await {
        return r;
    }
    let reply = non_resource(gw, session, ctx, &info.path, &info.verb);
    send(gw, session, ctx, reply).await
}

fn non_resource(gw: &Gateway, session: &Session, ctx: &RequestContext, path: &str, verb: &str) -> Reply {
    if verb != "get" && verb != "head" {
        return Status::method_not_allowed(&verb.to_ascii_uppercase()).into();
    }
    if let Some((code, body)) = gw.health.serve(path, &ctx.query) {
        return Reply::text(code, body);
    }
    if let Some(reply) = super::discovery::serve(gw, session.req_header(), path) {
        return reply;
    }
    match path.trim_end_matches('/') {
        "/version" => Reply::json(200, &crate::endpoints::version::info()),
        "/metrics" => Reply::new(200, crate::metrics::CONTENT_TYPE, crate::metrics::render()),
        _ => Status::path_not_found().into(),
    }
}
