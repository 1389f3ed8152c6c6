//! kube-apiserver's generic REST handlers (k8s.io/apiserver/pkg/endpoints/handlers) over
//! the store: request parsing and dispatch here, the verbs in read.rs, write.rs, watch.rs.

mod apply;
mod object;
mod query;
mod read;
mod token;
mod watch;
mod write;

pub use query::Options;

use super::resources::ResourceDef;
use crate::api::Status;
use crate::context::RequestContext;
use crate::filters::request_body;
use crate::filters::request_log::RequestLog;
use crate::filters::response::Responder;
use crate::filters::shutdown::Drain;
use crate::filters::Reply;
use crate::store::Store;
use pingora::proxy::Session;
use serde_json::Value;
use std::sync::Arc;

/// Now, as kube writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What a handler works on: the resource, the target (RequestInfo's namespace and name) and
/// the options decoded from the request's one parsed query.
pub struct Target<'a> {
    pub def: &'a ResourceDef,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
    pub query: Options,
    /// The Accept header asks for a meta.k8s.io Table.
    pub table: bool,
    /// The Accept header asks for metadata only (`as=PartialObjectMetadata[List]`).
    pub partial: bool,
    pub content_type: String,
    pub user_agent: String,
    /// Checks the object about to be stored must pass (None: none).
    pub admit: Option<Admit>,
}

/// A check of an object about to be stored, resolved per request before the write and run
/// inside it with the stored object (on update) and the new one, which it may default:
/// RBAC's validation and escalation prevention (authz/rbac/admission.rs).
pub type Admit = std::sync::Arc<dyn Fn(Option<&Value>, &mut Value) -> Result<(), Status> + Send + Sync>;

/// What another stage checks on writes through the store (RBAC's escalation prevention),
/// given to the REST handlers at construction: asked per request, before the write, for the
/// check to run inside it.
#[async_trait::async_trait]
pub trait WriteAdmission: Send + Sync {
    async fn resolve(&self, store: &Store, ctx: &RequestContext, t: &Target<'_>, body: &[u8]) -> Option<Admit>;
}

/// kube's REST handlers over the store, with the narrow handles they need from the chain.
pub struct Rest {
    pub store: Arc<Store>,
    pub respond: Responder,
    /// Finishes a watch that runs detached (`filters::detach`).
    pub log: Arc<RequestLog>,
    /// Ends watches when the server drains.
    pub drain: Arc<Drain>,
    /// The TokenRequest API's signer and audiences.
    pub tokens: crate::authn::TokenIssuing,
    /// Checks on writes (RBAC's), if any.
    pub admission: Option<Arc<dyn WriteAdmission>>,
}

impl Rest {
    /// Serves a resource request from the store.
    pub async fn serve(&self, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<()> {
        serve(self, session, ctx).await
    }
}

async fn serve(rest: &Rest, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<()> {
    let info = ctx.request_info.clone();
    let Some(def) = rest.store.def(&info.api_group, &info.resource) else {
        return rest.respond.send(session, ctx, Status::path_not_found().into()).await;
    };
    let header = |n: &str| session.req_header().headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let accept = header("Accept");
    let query = match Options::decode(&ctx.query) {
        Ok(q) => q,
        Err(s) => return rest.respond.send(session, ctx, s.into()).await,
    };
    // a cluster-scoped resource has no namespace; /namespaces/x is the namespace itself
    let namespace = if def.namespaced { info.namespace.clone() } else { String::new() };
    if !def.namespaced && !info.namespace.is_empty() && def.resource != "namespaces" {
        return rest.respond.send(session, ctx, Status::path_not_found().into()).await;
    }
    // a namespaced resource outside a namespace is only listed and watched
    if def.namespaced && info.namespace.is_empty() && !matches!(info.verb.as_str(), "list" | "watch") {
        let s = if info.verb == "create" || info.verb == "deletecollection" {
            Status::method_not_allowed(session.req_header().method.as_str())
        } else {
            Status::path_not_found()
        };
        return rest.respond.send(session, ctx, s.into()).await;
    }
    let mut t = Target {
        def,
        namespace,
        name: info.name.clone(),
        subresource: info.subresource.clone(),
        query,
        table: accept.contains("as=Table"),
        partial: !accept.contains("as=Table") && accept.contains("as=PartialObjectMetadata"),
        content_type: header("Content-Type"),
        user_agent: header("User-Agent"),
        admit: None,
    };
    let token = t.subresource == "token" && def.has_token();
    if !(t.subresource.is_empty() || (t.subresource == "status" && def.has_status()) || token) {
        return rest.respond.send(session, ctx, Status::path_not_found().into()).await;
    }
    if info.verb == "watch" {
        return watch::serve(rest, session, ctx, &t).await;
    }
    let needs_body = matches!(info.verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection");
    let body = if needs_body {
        match request_body::read(session, ctx, request_body::MAX_BODY).await {
            Ok(b) => b,
            Err(s) => return rest.respond.send(session, ctx, s.into()).await,
        }
    } else {
        Vec::new()
    };
    if matches!(info.verb.as_str(), "delete" | "deletecollection") {
        if let Err(s) = t.query.validate_delete() {
            return rest.respond.send(session, ctx, s.into()).await;
        }
    }
    if let Some(a) = &rest.admission {
        t.admit = a.resolve(&rest.store, ctx, &t, &body).await;
    }
    let user = ctx.effective_user().map(|u| u.username.clone()).unwrap_or_default();
    let reply = match info.verb.as_str() {
        "get" => read::get(&rest.store, &t),
        "list" => read::list(&rest.store, &t),
        "create" if t.subresource.is_empty() => write::create(&rest.store, &t, &body, &user),
        "create" if token => match rest.tokens.issuer() {
            Some(issuer) => token::create(&rest.store, &t, &body, issuer, rest.tokens.api_audiences()),
            None => Err(Status::path_not_found()),
        },
        "update" => write::update(&rest.store, &t, &body),
        "patch" => write::patch(&rest.store, &t, &body),
        "delete" if t.subresource.is_empty() => write::delete(&rest.store, &t, &body),
        "deletecollection" if t.subresource.is_empty() => write::delete_collection(&rest.store, &t, &body),
        other => Err(Status::method_not_allowed(&other.to_ascii_uppercase())),
    };
    let reply = reply.unwrap_or_else(Reply::from);
    rest.respond.send(session, ctx, reply).await
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
