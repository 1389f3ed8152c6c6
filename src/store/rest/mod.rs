//! kube-apiserver's generic REST handlers (k8s.io/apiserver/pkg/endpoints/handlers) over
//! the store: request parsing and dispatch here, the verbs in read.rs, write.rs, watch.rs.

mod apply;
mod object;
mod query;
mod read;
mod token;
mod watch;
pub(crate) mod write;

pub use query::Query;

use super::resources::ResourceDef;
use crate::api::Status;
use crate::context::RequestContext;
use crate::filters::request_body;
use crate::filters::response::send;
use crate::filters::Reply;
use crate::server::Gateway;
use pingora::proxy::Session;
use serde_json::Value;

/// Now, as kube writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What a handler works on: the resource, the target and the parsed query.
pub struct Target<'a> {
    pub def: &'a ResourceDef,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
    pub query: Query,
    /// The Accept header asks for a meta.k8s.io Table.
    pub table: bool,
    /// The Accept header asks for metadata only (`as=PartialObjectMetadata[List]`).
    pub partial: bool,
    pub content_type: String,
    pub user_agent: String,
}

/// Serves a resource request from the store.
pub async fn serve(gw: &Gateway, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<()> {
    let info = ctx.request_info.clone();
    let Some(def) = gw.store.def(&info.api_group, &info.resource) else {
        return send(gw, session, ctx, Status::path_not_found().into()).await;
    };
    let header = |n: &str| session.req_header().headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let accept = header("Accept");
    let query = match Query::parse(session.req_header().uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(s) => return send(gw, session, ctx, s.into()).await,
    };
    // a cluster-scoped resource has no namespace; /namespaces/x is the namespace itself
    let namespace = if def.namespaced { info.namespace.clone() } else { String::new() };
    if !def.namespaced && !info.namespace.is_empty() && def.resource != "namespaces" {
        return send(gw, session, ctx, Status::path_not_found().into()).await;
    }
    // a namespaced resource outside a namespace is only listed and watched
    if def.namespaced && info.namespace.is_empty() && !matches!(info.verb.as_str(), "list" | "watch") {
        let s = if info.verb == "create" || info.verb == "deletecollection" {
            Status::method_not_allowed(session.req_header().method.as_str())
        } else {
            Status::path_not_found()
        };
        return send(gw, session, ctx, s.into()).await;
    }
    let t = Target {
        def,
        namespace,
        name: info.name.clone(),
        subresource: info.subresource.clone(),
        query,
        table: accept.contains("as=Table"),
        partial: !accept.contains("as=Table") && accept.contains("as=PartialObjectMetadata"),
        content_type: header("Content-Type"),
        user_agent: header("User-Agent"),
    };
    let token = t.subresource == "token" && def.has_token();
    let finalize = t.subresource == "finalize" && crate::store::namespace::is_namespaces(def);
    if !(t.subresource.is_empty() || (t.subresource == "status" && def.has_status()) || token || finalize) {
        return send(gw, session, ctx, Status::path_not_found().into()).await;
    }
    if finalize && info.verb != "update" {
        let s = Status::method_not_allowed(session.req_header().method.as_str());
        return send(gw, session, ctx, s.into()).await;
    }
    if info.verb == "watch" || (info.verb == "list" && t.query.watch) {
        return watch::serve(gw, session, ctx, &t).await;
    }
    let needs_body = matches!(info.verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection");
    let body = if needs_body {
        match request_body::read(session, ctx, request_body::MAX_BODY).await {
            Ok(b) => b,
            Err(s) => return send(gw, session, ctx, s.into()).await,
        }
    } else {
        Vec::new()
    };
    let user = ctx.effective_user().map(|u| u.username.clone()).unwrap_or_default();
    let reply = match info.verb.as_str() {
        "get" => read::get(&gw.store, &t),
        "list" => read::list(&gw.store, &t),
        "create" if t.subresource.is_empty() => write::create(&gw.store, &t, &body, &user),
        "create" if token => match gw.authn.token_issuer() {
            Some(issuer) => token::create(&gw.store, &t, &body, issuer, gw.authn.api_audiences()),
            None => Err(Status::path_not_found()),
        },
        "update" => write::update(&gw.store, &t, &body),
        "patch" => write::patch(&gw.store, &t, &body),
        "delete" if t.subresource.is_empty() => write::delete(&gw.store, &t, &body),
        "deletecollection" if t.subresource.is_empty() => write::delete_collection(&gw.store, &t, &body),
        other => Err(Status::method_not_allowed(&other.to_ascii_uppercase())),
    };
    let reply = reply.unwrap_or_else(Reply::from);
    send(gw, session, ctx, reply).await
}

/// Decodes a JSON or YAML body.
pub fn decode(body: &[u8], content_type: &str) -> Result<Value, Status> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if ct == "application/vnd.kubernetes.protobuf" {
        return crate::store::protobuf::decode(body).map_err(|e| {
            if e.starts_with("protobuf is not supported") {
                Status::unsupported_media_type(content_type)
            } else {
                Status::bad_request(format!("error decoding request body: {e}"))
            }
        });
    }
    if !(ct.is_empty() || ct == "application/json" || ct.ends_with("yaml") || ct.ends_with("+json")) {
        return Err(Status::unsupported_media_type(content_type));
    }
    let yaml = ct.ends_with("yaml");
    let parsed: Result<Value, String> = if yaml {
        serde_yaml::from_slice(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| Status::bad_request(format!("error decoding request body: {e}")))
}

#[cfg(test)]
mod tests;
