//! kube-apiserver's generic REST handlers (k8s.io/apiserver/pkg/endpoints/handlers) over
//! the store: request parsing and dispatch here, the verbs in read.rs, write.rs, watch.rs.

mod apply;
pub mod continue_token;
mod list;
pub mod negotiate;
mod object;
mod query;
mod read;
mod token;
pub(crate) mod typed;
mod watch;
pub(crate) mod write;

pub use object::present_as;
pub use query::Options;
/// The PATCH verb (JSON, merge, strategic, apply), for the fuzz targets (fuzz/).
pub use write::patch;

use super::resources::ResourceDef;
use super::Store;
use crate::api::decode as api_decode;
use crate::api::Status;
use crate::context::RequestContext;
use crate::filters::request_body;
use crate::filters::request_log::RequestLog;
use crate::filters::response::Responder;
use crate::filters::Reply;
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
    /// How the object or list is written (the Accept header negotiated).
    pub output: negotiate::Output,
    pub content_type: String,
    pub user_agent: String,
    /// Checks the object about to be stored must pass (None: none).
    pub admit: Option<Admit>,
    /// Whether a write that finds no object creates it (kube's create on update, where the
    /// resource allows it, and server-side apply): None, it does not; else what the authorizer
    /// said about the writer's `create`, which a refusal is held to once the object is
    /// validated as a create (kube runs BeforeCreate first).
    pub create_right: Option<Result<(), Status>>,
    /// Warnings for the response (`Warning` headers), e.g. unknown fields under
    /// `fieldValidation=Warn`.
    pub warnings: std::sync::Mutex<Vec<String>>,
}

/// A check of an object about to be stored, resolved per request before the write and run
/// inside it with the stored object (on update) and the new one, which it may default, or
/// with the stored object alone before it is deleted: RBAC's validation and escalation
/// prevention, and its refusal to change what a policy file defines (authz/rbac/admission.rs).
pub type Admit = std::sync::Arc<dyn Fn(Option<&Value>, Option<&mut Value>) -> Result<(), Status> + Send + Sync>;

/// What another stage checks on writes through the store (RBAC's escalation prevention),
/// given to the REST handlers at construction: asked per request, before the write, for the
/// check to run inside it.
#[async_trait::async_trait]
pub trait WriteAdmission: Send + Sync {
    async fn resolve(&self, store: &Store, ctx: &RequestContext, t: &Target<'_>, body: &[u8]) -> Option<Admit>;
    /// Whether the authorizer chain allows the request's writer to `create` what its PUT names
    /// (kube's create on update), as kube's Forbidden or internal error otherwise.
    async fn may_create(&self, ctx: &RequestContext) -> Result<(), Status>;
}

/// kube's REST handlers over the store, with the narrow handles they need from the chain.
pub struct Rest {
    pub store: Arc<Store>,
    pub respond: Responder,
    /// Finishes a watch that runs detached (`filters::detach`).
    pub log: Arc<RequestLog>,
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
    let Some(def) = rest.store.served_def(info.api_group(), info.api_version(), info.resource()) else {
        return rest.respond.send(session, ctx, Status::path_not_found().into()).await;
    };
    let def = &*def;
    let header = |n: &str| session.req_header().headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let accept = header("Accept");
    let query = match Options::decode(&ctx.query) {
        Ok(q) => q,
        Err(s) => return rest.respond.send(session, ctx, s.into()).await,
    };
    // only kube's routes: a cluster-scoped resource has no namespaced path (/namespaces/x is
    // the namespace itself; /namespaces/x/namespaces[/y], authorized in x, would act on the
    // namespaces), nothing follows a subresource, and the /watch/ prefix is only read (GET)
    let namespace = if def.namespaced { info.namespace().to_string() } else { String::new() };
    if (!def.namespaced && info.namespaced_path) || info.parts().count() > 3 {
        return rest.respond.send(session, ctx, Status::path_not_found().into()).await;
    }
    let method = session.req_header().method.as_str();
    if info.verb_from_prefix && method != "GET" {
        return rest.respond.send(session, ctx, Status::method_not_allowed(method).into()).await;
    }
    // an object's path takes no create (kube has no such route: what is authorized is the
    // URL's name, what a create stores is the body's), a collection's no update or patch (its
    // route has GET, POST and DELETE: a nameless update would create under a generated name,
    // authorized as an update), and a subresource needs its object
    let named_create = info.verb() == "create" && !info.name().is_empty() && info.subresource().is_empty();
    let nameless_update = matches!(info.verb(), "update" | "patch") && info.name().is_empty();
    if named_create || nameless_update {
        let s = Status::method_not_allowed(session.req_header().method.as_str());
        return rest.respond.send(session, ctx, s.into()).await;
    }
    if !info.subresource().is_empty() && info.name().is_empty() {
        return rest.respond.send(session, ctx, Status::path_not_found().into()).await;
    }
    // a namespaced resource outside a namespace is only listed and watched
    if def.namespaced && info.namespace().is_empty() && !matches!(info.verb(), "list" | "watch") {
        let s = if info.verb() == "create" || info.verb() == "deletecollection" {
            Status::method_not_allowed(session.req_header().method.as_str())
        } else {
            Status::path_not_found()
        };
        return rest.respond.send(session, ctx, s.into()).await;
    }
    let table = accept.contains("as=Table");
    // kube's asTable: an includeObject it does not know is the client's error
    if let Some(v) =
        query.include_object.as_deref().filter(|v| table && !matches!(*v, "" | "None" | "Metadata" | "Object"))
    {
        let s = Status::bad_request(format!("unrecognized includeObject value: {v:?}"));
        return rest.respond.send(session, ctx, s.into()).await;
    }
    let partial = !table && accept.contains("as=PartialObjectMetadata");
    // a Table or PartialObjectMetadata is JSON; an object or list as negotiated
    let output = if table || partial {
        Ok(negotiate::Output::Json)
    } else {
        // events.k8s.io's Event is another message than core's, which the tables know
        // and custom resources are JSON only, as in kube (whatever their kind is called)
        let protobuf = crate::store::protobuf::supports(&def.kind)
            && !crate::store::events::is_events_v1(def)
            && def.custom.is_none();
        negotiate::negotiate(&accept, protobuf, info.verb() == "watch")
    };
    let output = match output {
        Ok(o) => o,
        Err(s) => return rest.respond.send(session, ctx, s.into()).await,
    };
    let mut t = Target {
        def,
        namespace,
        name: info.name().to_string(),
        subresource: info.subresource().to_string(),
        query,
        table,
        partial,
        output,
        content_type: header("Content-Type"),
        user_agent: header("User-Agent"),
        admit: None,
        create_right: None,
        warnings: Default::default(),
    };
    if let Some(w) = def.custom.as_ref().and_then(|c| c.deprecation.clone()) {
        t.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(w);
    }
    let token = t.subresource == "token" && def.has_token();
    let finalize = t.subresource == "finalize" && crate::store::namespace::is_namespaces(def);
    let scale = t.subresource == "scale" && def.subresources.iter().any(|s| s == "scale");
    if !(t.subresource.is_empty() || (t.subresource == "status" && def.has_status()) || token || finalize || scale) {
        return rest.respond.send(session, ctx, Status::path_not_found().into()).await;
    }
    // a subresource has only its own routes in kube: none is watched, finalize is only
    // updated and token (TokenREST) only created; else a grant on the subresource would
    // read, watch or write the whole object
    if info.verb() == "watch" && !t.subresource.is_empty() {
        return rest.respond.send(session, ctx, Status::path_not_found().into()).await;
    }
    if (finalize && info.verb() != "update") || (token && info.verb() != "create") {
        let s = Status::method_not_allowed(session.req_header().method.as_str());
        return rest.respond.send(session, ctx, s.into()).await;
    }
    if info.verb() == "watch" {
        // a list's options (and a deletecollection's) are validated where the list is made
        if let Err(s) = t.query.validate_list(true) {
            return rest.respond.send(session, ctx, s.into()).await;
        }
        // the current state it asks for first must be at least that new (kube waits as for a list)
        if let (Some(true), Ok(Some(asked))) = (t.query.send_initial_events, t.query.revision()) {
            wait_fresh(&rest.store, asked).await;
        }
        return watch::serve(rest, session, ctx, &t).await;
    }
    let needs_body = matches!(info.verb(), "create" | "update" | "patch" | "delete" | "deletecollection");
    let body = if needs_body {
        match request_body::read(session, ctx, request_body::MAX_BODY).await {
            Ok(b) => b,
            Err(s) => return rest.respond.send(session, ctx, s.into()).await,
        }
    } else {
        Vec::new()
    };
    let valid = t.query.validate_write(info.verb()).and_then(|()| match info.verb() {
        "delete" | "deletecollection" => t.query.validate_delete(),
        _ => Ok(()),
    });
    if let Err(s) = valid {
        return rest.respond.send(session, ctx, s.into()).await;
    }
    // (a continue token carries its own version: with another given, the list is a 400 at once)
    if matches!(info.verb(), "get" | "list") && t.query.continue_.is_empty() {
        if let Ok(Some(asked)) = t.query.revision() {
            wait_fresh(&rest.store, asked).await;
        } else if t.query.resource_version.is_empty() && rest.store.storage.replicated() {
            // no resourceVersion: the latest, as a quorum read has it (with replicas on etcd,
            // another's acknowledged write)
            let store = rest.store.clone();
            let synced = tokio::task::spawn_blocking(move || store.storage.sync()).await;
            if let Ok(Err(e)) = synced {
                return rest.respond.send(session, ctx, Status::internal_error(e.to_string()).into()).await;
            }
        }
    }
    if let Some(a) = &rest.admission {
        t.admit = a.resolve(&rest.store, ctx, &t, &body).await;
        // kube asks about `create` only when the write would create
        let absent = || rest.store.storage.get(&def.key(&t.namespace, &t.name)).is_none();
        if write::may_create_missing(&t, info.verb()) && absent() {
            t.create_right = Some(a.may_create(ctx).await);
        }
    }
    let writes = writes(info.verb());
    let reply = if info.verb() == "create" && def.custom.as_ref().is_some_and(|c| c.terminating) {
        // kube's CRD handler: a terminating CRD's objects are no longer created
        let mut s = Status::method_not_allowed("POST");
        s.message = "create not allowed while custom resource definition is terminating".into();
        Err(s)
    } else if info.verb() == "create" && token {
        match rest.tokens.issuer() {
            Some(issuer) => token::create(&rest.store, &t, &body, issuer, rest.tokens.api_audiences()),
            None => Err(Status::path_not_found()),
        }
    } else if request_body::heavy(body.len(), &t.content_type) || writes {
        // the body is decoded, and the verb run, off this worker thread: a large body's
        // decoding, and any write (its commit waits for the disk; a deletecollection commits
        // once per object) would stall every connection this thread serves
        let (store, owned, verb) = (rest.store.clone(), Owned::from(&t), info.verb().to_string());
        let _write = match writes {
            true => Some(request_body::write_permits().acquire().await.expect("never closed")),
            false => None,
        };
        request_body::offload(body.len(), move || owned.run(|t| verb_of(&store, t, &verb, &body))).await
    } else {
        verb_of(&rest.store, &t, info.verb(), &body)
    };
    let reply = reply.unwrap_or_else(Reply::from);
    rest.respond.send(session, ctx, reply).await
}

/// The verbs that write the store.
fn writes(verb: &str) -> bool {
    matches!(verb, "create" | "update" | "patch" | "delete" | "deletecollection")
}

/// How long a read waits for the store to reach the version it asks for (kube's watch
/// cache's blockTimeout) before it is 504 Too large resource version.
const FRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits, at most `FRESH_WAIT`, for the store to reach `asked`: a version another replica
/// wrote may still be on its way to this one's mirror.
async fn wait_fresh(store: &Store, asked: u64) {
    let until = std::time::Instant::now() + FRESH_WAIT;
    while store.storage.revision() < asked && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Runs a store verb (all but the token subresource).
fn verb_of(store: &Store, t: &Target, verb: &str, body: &[u8]) -> Result<Reply, Status> {
    if t.subresource == "scale" {
        // (a custom resource's: the only scale the store serves; its writes validate the
        // object, CEL included, so they run off the worker thread as every write does)
        return crate::store::crd::scale::serve(store, t, verb, body);
    }
    let reply = match verb {
        "get" => read::get(store, t),
        "list" => read::list(store, t),
        "create" if t.subresource.is_empty() => write::create(store, t, body, ""),
        "update" => write::update(store, t, body),
        "patch" => write::patch(store, t, body),
        "delete" if t.subresource.is_empty() => write::delete(store, t, body),
        "deletecollection" if t.subresource.is_empty() => write::delete_collection(store, t, body),
        other => Err(Status::method_not_allowed(&other.to_ascii_uppercase())),
    };
    let warnings = std::mem::take(&mut *t.warnings.lock().unwrap_or_else(|e| e.into_inner()));
    let headers = typed::warning_headers(&warnings, typed::WARNING_TOTAL_RUNES, typed::WARNING_ITEM_RUNES);
    reply.map(|r| headers.into_iter().fold(r, |r, h| r.header("Warning", h)))
}

/// A `Target` that owns its resource, to move to another thread.
struct Owned {
    def: ResourceDef,
    namespace: String,
    name: String,
    subresource: String,
    query: Options,
    table: bool,
    partial: bool,
    output: negotiate::Output,
    content_type: String,
    user_agent: String,
    admit: Option<Admit>,
    create_right: Option<Result<(), Status>>,
}

impl Owned {
    fn from(t: &Target) -> Self {
        Owned {
            def: t.def.clone(),
            namespace: t.namespace.clone(),
            name: t.name.clone(),
            subresource: t.subresource.clone(),
            query: t.query.clone(),
            table: t.table,
            partial: t.partial,
            output: t.output,
            content_type: t.content_type.clone(),
            user_agent: t.user_agent.clone(),
            admit: t.admit.clone(),
            create_right: t.create_right.clone(),
        }
    }

    /// Runs `f` on the target, moved back out of this owned form (nothing cloned again).
    fn run<R>(self, f: impl FnOnce(&Target) -> R) -> R {
        let Owned {
            def,
            namespace,
            name,
            subresource,
            query,
            table,
            partial,
            output,
            content_type,
            user_agent,
            admit,
            create_right,
        } = self;
        f(&Target {
            def: &def,
            namespace,
            name,
            subresource,
            query,
            table,
            partial,
            output,
            content_type,
            user_agent,
            admit,
            create_right,
            warnings: Default::default(),
        })
    }
}

/// How a request body is read, by its Content-Type (parameters ignored): the one reading that
/// `decode` and `decode_typed` share.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Json,
    /// YAML, or JSON sent as YAML.
    Yaml,
    Protobuf,
    Unsupported,
}

impl BodyFormat {
    fn of(content_type: &str) -> Self {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/vnd.kubernetes.protobuf" => BodyFormat::Protobuf,
            ct if ct.ends_with("yaml") => BodyFormat::Yaml,
            "" | "application/json" => BodyFormat::Json,
            ct if ct.ends_with("+json") => BodyFormat::Json,
            _ => BodyFormat::Unsupported,
        }
    }
}

/// kube's BadRequest for a JSON or YAML body that does not decode as a `kind` (its create and
/// update handlers' transformDecodeError; a JSON error with its serializer's prefix).
fn undecodable(format: BodyFormat, kind: &str, err: &str, body: &[u8]) -> Status {
    let err = match format {
        BodyFormat::Json => format!("couldn't get version/kind; json parse error: {err}"),
        _ => err.to_string(),
    };
    Status::bad_request(api_decode::unrecognized(kind, &err, body))
}

/// Decodes a JSON, YAML or protobuf body meant to be a `kind`, within api::decode's bounds.
pub fn decode(body: &[u8], content_type: &str, kind: &str) -> Result<Value, Status> {
    let format = BodyFormat::of(content_type);
    let parsed = match format {
        BodyFormat::Protobuf => {
            return crate::store::protobuf::decode(body).map_err(|e| {
                if e.starts_with("protobuf is not supported") {
                    Status::unsupported_media_type(content_type)
                } else {
                    Status::bad_request(format!("error decoding request body: {e}"))
                }
            })
        }
        BodyFormat::Unsupported => return Err(Status::unsupported_media_type(content_type)),
        BodyFormat::Yaml => api_decode::yaml(body),
        BodyFormat::Json => api_decode::json(body),
    };
    parsed.map_err(|e| undecodable(format, kind, &e, body))
}

/// Decodes a create or update body as `t`'s kind (`decode`, then `typed::check`: the
/// schema's types, unknown and duplicate fields as `fieldValidation` says).
pub fn decode_typed(t: &Target, body: &[u8]) -> Result<Value, Status> {
    let format = BodyFormat::of(&t.content_type);
    let kind = &t.def.kind;
    let (mut obj, dups) = match format {
        BodyFormat::Json | BodyFormat::Yaml => {
            if api_decode::is_json_array(body) {
                return Err(write::not_an_object());
            }
            let strict =
                if format == BodyFormat::Yaml { api_decode::yaml_strict(body) } else { api_decode::json_strict(body) };
            let s = strict.map_err(|e| undecodable(format, kind, &e, body))?;
            (s.value, s.duplicates)
        }
        BodyFormat::Protobuf | BodyFormat::Unsupported => (decode(body, &t.content_type, kind)?, Vec::new()),
    };
    let yaml = format == BodyFormat::Yaml && !api_decode::looks_like_json(body);
    typed::check(t, &mut obj, dups, typed::Source::Body { yaml })?;
    Ok(obj)
}

#[cfg(test)]
mod tests;
