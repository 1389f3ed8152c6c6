//! Requests frontdoor answers itself: the review APIs, the store's resources, OpenAPI,
//! discovery, health, version and metrics. Each handler gets only the handles it needs.

use super::Router;
use crate::api::{ApiResource, Status};
use crate::authn::Authentication;
use crate::authz::Authorization;
use crate::context::RequestContext;
use crate::endpoints::health::Health;
use crate::filters::response::Responder;
use crate::filters::Reply;
use crate::store::rest::Rest;
use pingora::proxy::Session;
use std::sync::Arc;

/// The local handlers and what they read.
pub struct Local {
    pub respond: Responder,
    pub rest: Rest,
    pub health: Arc<Health>,
    /// The authentication stage, for TokenReview.
    pub authn: Authentication,
    /// The authorization stage, for the access reviews.
    pub authz: Authorization,
    /// The APIService table, for discovery.
    pub router: Router,
    /// Flow control, for kube's /debug/api_priority_and_fairness dumps.
    pub flowcontrol: crate::flowcontrol::FlowControl,
    /// Where the secure port is served, as clients should address it.
    pub address: String,
    /// `/debug/pprof/` is served (kube's `--profiling`).
    pub profiling: bool,
}

/// Every resource `store` and the review APIs serve.
fn resources(store: &crate::store::Store) -> Vec<ApiResource> {
    let mut r = store.resources();
    r.extend(crate::authn::review::resources());
    r.extend(crate::authz::review::resources());
    r
}

impl Local {
    /// Every resource frontdoor serves itself (store resources and review APIs), for
    /// discovery and OpenAPI.
    pub fn resources(&self) -> Vec<ApiResource> {
        resources(&self.rest.store)
    }

    /// Tells the router what frontdoor serves itself, now and after every change of the
    /// custom resources (a CRD served or gone changes discovery and OpenAPI).
    pub fn publish(&self) {
        let (router, address) = (self.router.clone(), self.address.clone());
        let publish = move |store: &crate::store::Store| {
            router.set_local_resources(&resources(store), store.custom_schemas(), &address)
        };
        publish(&self.rest.store);
        self.rest.store.on_custom_change(publish);
    }

    /// What is served where, as the startup banner prints it: each group/version frontdoor
    /// serves itself with its resources, then each aggregated backend.
    pub fn served(&self) -> Vec<(String, String)> {
        let gv = |g: &str, v: &str| if g.is_empty() { v.to_string() } else { format!("{g}/{v}") };
        let mut local: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for r in self.resources().into_iter().filter(|r| !r.name.contains('/')) {
            local.entry(gv(&r.group, &r.version)).or_default().push(r.name);
        }
        let mut rows: Vec<(String, String)> =
            local.into_iter().map(|(k, names)| (k, format!("local: {}", names.join(", ")))).collect();
        for b in self.router.table().services.iter() {
            if let Some(svc) = &b.spec.service {
                rows.push((gv(&b.spec.group, &b.spec.version), format!("backend: {}", svc.key())));
            }
        }
        if let Some(d) = self.router.upstream() {
            let mode = match d.identity {
                super::upstream::UpstreamIdentity::RequestHeader => "request-header",
                super::upstream::UpstreamIdentity::Impersonation => "impersonation",
            };
            rows.push(("everything else".into(), format!("upstream apiserver: {} ({mode})", d.url)));
        }
        rows
    }

    pub async fn serve(&self, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<()> {
        if let Some(r) = crate::authn::review::serve(&self.authn, &self.respond, session, ctx).await {
            return r;
        }
        let info = ctx.request_info.clone();
        if let Some(r) = crate::authz::review::serve(&self.authz, &self.respond, session, ctx).await {
            return r;
        }
        if info.is_resource_request {
            if self.rest.store.serves(info.api_group(), info.api_version(), info.resource()) {
                return self.rest.serve(session, ctx).await;
            }
            return self.respond.send(session, ctx, Status::path_not_found().into()).await;
        }
        let reply = match info.path() {
            "/debug/pprof/profile" if self.profiling && info.verb() == "get" => {
                crate::endpoints::pprof::profile(&ctx.query).await
            }
            "/debug/pprof" | "/debug/pprof/" if self.profiling && info.verb() == "get" => {
                crate::endpoints::pprof::index()
            }
            path if self.profiling && info.verb() == "get" && path.starts_with("/debug/pprof/") => {
                crate::endpoints::pprof::named(&path["/debug/pprof/".len()..])
            }
            _ => self.non_resource(session, ctx),
        };
        self.respond.send(session, ctx, reply).await
    }

    /// `/version`: the upstream apiserver's (clients pick their version skew from it), from
    /// its last refresh; frontdoor's own otherwise. frontdoor's own version is always in the
    /// `X-Frontdoor-Version` header (and `frontdoor version`).
    fn version(&self) -> Reply {
        let own = crate::endpoints::version::info();
        let ours = own.git_version.clone();
        let reply = match self.router.upstream().and_then(|d| d.version.load_full()) {
            Some(body) => Reply::new(200, "application/json", (*body).clone()),
            None => Reply::json(200, &own),
        };
        reply.header("X-Frontdoor-Version", ours)
    }

    fn non_resource(&self, session: &Session, ctx: &RequestContext) -> Reply {
        let info = &ctx.request_info;
        let (path, verb) = (info.path(), info.verb());
        // kube's plain mux handlers (health checks, metrics, the debug dumps) answer any method
        if let Some((code, body)) = self.health.serve(path, &ctx.query) {
            return Reply::text(code, body);
        }
        if let Some(dump) = self.flowcontrol.debug(path, &ctx.query) {
            return Reply::text(200, dump);
        }
        let trimmed = path.trim_end_matches('/');
        if trimmed == "/metrics" {
            return Reply::new(200, crate::metrics::CONTENT_TYPE, crate::metrics::render());
        }
        let req = session.req_header();
        // its go-restful routes (version, discovery, OpenAPI) are GET only; no route is NotFound
        if verb != "get" && verb != "head" {
            let routed = trimmed == "/version"
                || path.starts_with("/openapi/")
                || self.router.discovery().value.serve(req, path).is_some();
            return match routed {
                true => Status::method_not_allowed(&verb.to_ascii_uppercase()).into(),
                false => Status::path_not_found().into(),
            };
        }
        if trimmed == "/version" {
            return self.version();
        }
        // discovery and OpenAPI: merged from every source once per change of them
        if path.starts_with("/openapi/") {
            if let Some(reply) = super::openapi::serve(&self.router.openapi().value, info, &ctx.query, req) {
                return reply;
            }
        }
        self.router.discovery().value.serve(req, path).unwrap_or_else(|| Status::path_not_found().into())
    }
}
