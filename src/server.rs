//! The gateway: pingora's proxy service running kube-apiserver's handler chain.

use crate::api::Status;
use crate::audit::Audit;
use crate::authn::Authentication;
use crate::authz::Authorization;
use crate::config::ServeArgs;
use crate::context::RequestContext;
use crate::endpoints::health::Health;
use crate::filters::cors::Cors;
use crate::filters::request_log::RequestLog;
use crate::filters::response::{add_common_headers, internal_error, Responder};
use crate::filters::shutdown::{Drain, SignalWatch};
use crate::filters::trace::Step;
use crate::filters::{framing, panic_recovery, request_received, timeout, Reply};
use crate::flowcontrol::FlowControl;
use crate::impersonation::Impersonation;
use crate::otel::Tracing;
use crate::request_info::query::Query;
use crate::request_info::RequestInfo;
use crate::router::local::Local;
use crate::router::{self, Router};
use crate::store::rest::Rest;
use crate::store::Store;
use crate::tls::{CaRole, ClientCas, ServingCert};
use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use std::path::PathBuf;
use std::sync::Arc;

/// The chain: every stage, built once at startup from its own flag group, and the one place
/// that knows them all. Policies inside the stages are swapped atomically on reload; a
/// request reads each snapshot once.
pub struct Gateway {
    pub args: Arc<ServeArgs>,
    pub health: Arc<Health>,
    pub cors: Arc<Cors>,
    pub drain: Arc<Drain>,
    pub serving_cert: Arc<ServingCert>,
    pub client_cas: Arc<ClientCas>,
    pub authn: Authentication,
    pub audit: Arc<Audit>,
    pub impersonation: Impersonation,
    pub flowcontrol: FlowControl,
    pub authz: Authorization,
    pub router: Router,
    pub store: Arc<Store>,
    /// The local handlers (store, reviews, discovery, health, ...).
    pub local: Local,
    pub respond: Responder,
    pub log: Arc<RequestLog>,
    /// OpenTelemetry tracing (`--tracing-config-file`); None costs a request nothing.
    pub tracing: Option<Tracing>,
}

impl Gateway {
    /// The whole chain, up to the router, in kube-apiserver's order
    /// (`DefaultBuildHandlerChain`). Returns true when the response was written here.
    async fn handle(&self, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<bool> {
        if framing::h2_stream_refused(session.req_header()) {
            session.shutdown_with_reason(h2::Reason::PROTOCOL_ERROR);
            ctx.not_logged_here = true;
            return Ok(true);
        }
        let client = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        request_received::run(session.req_header(), client, ctx);
        ctx.drain = self.drain.track();
        ctx.peer = crate::tls::peer_of(session);
        match framing::check(session.req_header()) {
            Ok(length) => ctx.content_length = length,
            Err(reply) => {
                self.reject(session, ctx, reply).await?;
                // the rest of the connection cannot be trusted to be read as we read this request
                session.set_keepalive(None);
                return Ok(true);
            }
        }
        let req = session.req_header();
        if req.method == http::Method::OPTIONS && req.uri.path() == "*" {
            // Go's server answers `OPTIONS *` itself (its globalOptionsHandler), before any
            // handler: no credential is asked for and nothing is sent on
            return self.reject(session, ctx, Reply::empty(200)).await;
        }
        router::proxy::forget_header_case(session.req_header_mut());

        // the one reading of the request target: every later stage and handler uses these
        let req = session.req_header();
        ctx.query = Query::parse(req.uri.query().unwrap_or(""));
        match RequestInfo::resolve_parsed(req.method.as_str(), req.uri.path(), req.uri.query(), &ctx.query) {
            Ok(info) => ctx.request_info = Arc::new(info),
            Err(e) => {
                let reply =
                    internal_error(ctx.incoming.request_uri(), &format!("failed to create RequestInfo: {e}")).into();
                return self.reject(session, ctx, reply).await;
            }
        }
        match timeout::resolve(&ctx.request_info, &ctx.query, self.args.request_timeout) {
            Ok(deadline) => ctx.deadline = deadline,
            Err(status) => return self.reject(session, ctx, (*status).into()).await,
        }
        if self.cors.is_preflight(session.req_header()) {
            return self.reject(session, ctx, Reply::empty(204)).await;
        }
        let authenticated = self.authn.authenticate(session.req_header_mut(), ctx).await;
        ctx.steps.mark(Step::Authenticated, ctx.received);
        // kube's WithTracing sits inside WithAuthentication: authenticated requests are traced
        if let (Some(t), true) = (&self.tracing, authenticated.is_ok()) {
            t.start(session.req_header(), ctx);
        }
        if let Err(reply) = self.audit.request_received(session.req_header(), ctx).await {
            return self.reject(session, ctx, reply).await;
        }
        ctx.steps.mark(Step::Audited, ctx.received);
        if let Err(status) = authenticated {
            return self.reject(session, ctx, status.into()).await;
        }
        if let Err(reply) = self.impersonation.impersonate(session.req_header_mut(), ctx).await {
            return self.reject(session, ctx, reply).await;
        }
        if let Err(reply) = self.flowcontrol.admit(ctx, || client_gone(session)).await {
            return self.reject(session, ctx, reply).await;
        }
        ctx.steps.mark(Step::Admitted, ctx.received);
        if let Err(status) = self.authz.authorize(ctx).await {
            return self.reject(session, ctx, status.into()).await;
        }
        ctx.steps.mark(Step::Authorized, ctx.received);
        ctx.route = self.router.route(&ctx.request_info);
        ctx.steps.mark(Step::Routed, ctx.received);
        if ctx.route.is_proxied() {
            // kube-aggregator's RequestDelegated: a watch handed to another server holds no
            // priority & fairness seats while that server works on it (a hung backend would
            // otherwise hold them for as long as the client waits)
            if ctx.request_info.is_long_running() {
                ctx.inflight = None;
            }
            return Ok(false);
        }
        // boxed: the local handlers' state (~5 KB) would otherwise be room in every request's
        // future, proxied ones too, and be copied with it
        Box::pin(self.serve_local(session, ctx)).await?;
        Ok(true)
    }

    async fn reject(&self, session: &mut Session, ctx: &mut RequestContext, reply: Reply) -> pingora::Result<bool> {
        self.respond.send(session, ctx, reply).await?;
        Ok(true)
    }

    /// Runs the local handler under the non-long-running timeout.
    async fn serve_local(&self, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<()> {
        let Some(limit) = ctx.deadline else {
            return self.local.serve(session, ctx).await;
        };
        match tokio::time::timeout(limit, self.local.serve(session, ctx)).await {
            Ok(r) => r,
            Err(_) if session.response_written().is_none() => {
                self.respond.send(session, ctx, timeout::status().into()).await
            }
            Err(_) => {
                ctx.response_code = 504;
                Err(pingora::Error::new_str("request timed out mid-response"))
            }
        }
    }
}

/// pingora's view of the gateway.
pub struct Frontdoor(pub Arc<Gateway>);

#[async_trait]
impl ProxyHttp for Frontdoor {
    /// Boxed: pingora keeps the context in its request future, which it boxes and copies
    /// whole (and moves the context between its phases), once per request; inline, the
    /// context's ~640 bytes were three times that future's room and copies.
    type CTX = Box<RequestContext>;

    fn new_ctx(&self) -> Box<RequestContext> {
        Box::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<RequestContext>) -> pingora::Result<bool> {
        match panic_recovery::catch(self.0.handle(session, ctx)).await {
            // a local handler's I/O error is the client's (it went away, or stalled): pingora
            // does not say so, and would log it as an error of ours
            Ok(r) => r.map_err(|mut e| {
                use pingora::ErrorType::*;
                let io = matches!(
                    e.etype,
                    ReadError | WriteError | ReadTimedout | WriteTimedout | ConnectionClosed | H2Error
                );
                if io && *e.esource() == pingora::ErrorSource::Unset {
                    e.as_down();
                }
                e
            }),
            Err(panic) => {
                // method and path are as received: the chain changes only headers
                let what = format!("{} {}", session.req_header().method, session.req_header().uri.path());
                let status = panic_recovery::panicked(&what, &panic);
                self.0.audit.response_complete(ctx, 500, true).await;
                if session.response_written().is_none() {
                    self.0.respond.send(session, ctx, status.into()).await?;
                }
                ctx.response_code = 500;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestContext>,
    ) -> pingora::Result<Box<HttpPeer>> {
        router::proxy::upstream_peer(ctx, session.is_upgrade_req())
    }

    /// The response head must come by the request's deadline (`router::head_deadline`).
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Box<RequestContext>,
    ) -> pingora::Result<()> {
        router::proxy::arm_head_deadline(ctx, fd, digest);
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut Box<RequestContext>,
    ) -> pingora::Result<()> {
        if let Err(e) = router::proxy::upstream_request(upstream_request, ctx) {
            return Err(pingora::Error::explain(router::proxy::INVALID_IDENTITY, e));
        }
        router::proxy::keep_trailers(session.req_header(), upstream_request);
        if let Some(t) = &self.0.tracing {
            t.proxy(upstream_request, ctx, session.is_upgrade_req());
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Box<RequestContext>,
    ) -> pingora::Result<()> {
        ctx.head_deadline = None; // the head came
        router::proxy::refuse_redirect(ctx, upstream_response)?;
        router::proxy::refuse_unasked_switch(session.req_header(), upstream_response)?;
        router::proxy::strip_hop_by_hop(upstream_response);
        router::proxy::check_deadline(ctx)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Box<RequestContext>,
    ) -> pingora::Result<Option<std::time::Duration>> {
        router::proxy::check_deadline(ctx)?;
        Ok(None)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Box<RequestContext>,
    ) -> pingora::Result<()> {
        add_common_headers(ctx, upstream_response);
        self.0.cors.add_headers(session.req_header(), upstream_response);
        ctx.response_code = upstream_response.status.as_u16();
        crate::audit::response_header(ctx, upstream_response);
        if ctx.request_info.is_long_running() {
            self.0.audit.response_started(ctx, ctx.response_code).await;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Box<RequestContext>,
    ) -> pingora::Result<()> {
        if let Some(b) = body {
            crate::audit::request_body(ctx, b);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Box<RequestContext>,
    ) -> pingora::Result<Option<std::time::Duration>> {
        if let Some(b) = body {
            crate::audit::response_body(ctx, b);
        }
        Ok(None)
    }

    /// pingora retries an idempotent request whose reused upstream connection failed; a
    /// request cut by the timeout is answered 504, never sent again.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<pingora::Error>,
        ctx: &mut Box<RequestContext>,
        client_reused: bool,
    ) -> Box<pingora::Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        // a connection shut at the deadline (`router::head_deadline`) reads as closed
        let timed_out = matches!(e.etype, pingora::ErrorType::ReadTimedout | pingora::ErrorType::WriteTimedout)
            || router::proxy::check_deadline(ctx).is_err();
        if timed_out || !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    /// A client that went away mid-stream (a watch or `logs -f` ended by the user) is a debug
    /// line, not an error; so is each 503 of a backend or upstream known to be unavailable (its
    /// availability change is logged once, by its prober).
    fn suppress_error_log(&self, session: &Session, _ctx: &Box<RequestContext>, e: &pingora::Error) -> bool {
        if *e.esource() == pingora::ErrorSource::Downstream {
            tracing::debug!(error = %e, path = %session.req_header().uri.path(), "client went away mid-response");
            return true;
        }
        if router::proxy::is_known_unavailable(e) {
            tracing::debug!(path = %session.req_header().uri.path(), "503: service unavailable");
            return true;
        }
        false
    }

    /// A server that cannot be reached: an upstream apiserver is marked unavailable at once.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<RequestContext>,
        e: Box<pingora::Error>,
    ) -> Box<pingora::Error> {
        router::proxy::connect_failed(ctx, &e);
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut Box<RequestContext>,
    ) -> FailToProxy {
        let reply = router::proxy::failure_reply(ctx, e);
        let code = reply.code;
        if session.response_written().is_none() {
            let _ = self.0.respond.send(session, ctx, reply).await;
        }
        ctx.response_code = code;
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&pingora::Error>, ctx: &mut Box<RequestContext>) {
        if !ctx.not_logged_here {
            self.0.log.finish(session, ctx).await;
        }
    }
}

/// The metrics-only plain HTTP listener (`--metrics-bind-address`).
struct MetricsApp;

#[async_trait]
impl pingora::apps::http_app::ServeHttp for MetricsApp {
    async fn response(&self, session: &mut pingora::protocols::http::ServerSession) -> http::Response<Vec<u8>> {
        let (code, ctype, body) = if session.req_header().uri.path() == "/metrics" {
            (200, crate::metrics::CONTENT_TYPE, crate::metrics::render())
        } else {
            (404, "application/json", Status::path_not_found().to_json())
        };
        http::Response::builder()
            .status(code)
            .header("Content-Type", ctype)
            .header("Content-Length", body.len())
            .body(body)
            .expect("valid response")
    }
}

/// Builds the gateway from the flags (generating the dev PKI on embedded defaults).
pub fn build(args: ServeArgs) -> anyhow::Result<(Arc<Gateway>, Option<PathBuf>)> {
    let host = match args.bind_address {
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let address = format!("{host}:{}", args.secure_port);
    let mut args = args;
    let mut kubeconfig = None;
    if args.embedded_defaults() {
        kubeconfig = Some(crate::certs::ensure_dev_pki(&args.cert_dir, &format!("https://{address}"))?);
    }
    args.complete();
    let cert_file = args.tls_cert_file.clone().expect("set above");
    let key_file = args
        .tls_private_key_file
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--tls-private-key-file is required with --tls-cert-file"))?;
    let serving_cert = Arc::new(ServingCert::load(&cert_file, &key_file)?);
    let client_cas = Arc::new(ClientCas::default());
    client_cas.set(CaRole::ClientCa, args.client_ca_file.as_deref())?;

    // the serving cert and client CA reload live
    {
        let sc = serving_cert.clone();
        let (c, k) = (cert_file.clone(), key_file.clone());
        crate::reload::watch("serving-cert", vec![c.clone(), k.clone()], move || sc.reload(&c, &k));
    }
    if let Some(ca) = args.client_ca_file.clone() {
        let cas = client_cas.clone();
        crate::reload::watch("client-ca", vec![ca.clone()], move || cas.set(CaRole::ClientCa, Some(&ca)));
    }

    // the upstream apiserver's reviews, for authentication (TokenReview) and mode Upstream
    let proxy_cert = args.proxy.proxy_client_cert_file.as_deref().zip(args.proxy.proxy_client_key_file.as_deref());
    let review = crate::router::upstream::review_client(&args.proxy.upstream, proxy_cert)?;
    args.authn.upstream = review.clone().filter(|_| args.proxy.upstream.upstream_apiserver_token_review);
    args.authz.upstream = review;
    let health = Arc::new(Health::new());
    let store = Arc::new(Store::open(&args.store, &args.data_dir)?);
    store.register_health(&health);
    let cors = Arc::new(Cors::new(&args.cors_allowed_origins)?);
    let authn = Authentication::new(&args.authn, &client_cas)?;
    let authz = Authorization::new(&args.authz)?;
    let audit = Arc::new(Audit::new(&args.audit)?);
    let flowcontrol = FlowControl::new(&args.flowcontrol)?;
    let router = Router::new(&args.proxy)?;
    let impersonation = Impersonation::new(Arc::new(authz.clone()));
    let respond = Responder::new(cors.clone(), audit.clone());
    let known = {
        let router = router.clone();
        Arc::new(move |info: &crate::request_info::RequestInfo| router.lists(info))
    };
    let log =
        Arc::new(RequestLog::new(audit.clone(), args.logging.request_trace_threshold).with_known_resources(known));
    let drain = Arc::new(Drain::default());
    {
        // the drain ends the store's watches, so that their clients watch again elsewhere
        let store = store.clone();
        drain.on_close(move || store.storage.close_watches());
    }
    let tracing = Tracing::new(&args.tracing)?;
    connect_store(&store, &authn, &authz, &router, args.authn.service_account_lookup);
    connect_flowcontrol(&store, &flowcontrol);
    let local = Local {
        respond: respond.clone(),
        rest: Rest {
            store: store.clone(),
            respond: respond.clone(),
            log: log.clone(),
            tokens: authn.token_issuing(),
            admission: Some(Arc::new(crate::authz::rbac::admission::RbacAdmission::new(authz.clone()))),
        },
        health: health.clone(),
        authn: authn.clone(),
        authz: authz.clone(),
        router: router.clone(),
        flowcontrol: flowcontrol.clone(),
        address,
        profiling: args.profiling,
    };
    local.publish();
    if let Some(d) = router.upstream() {
        let d = d.clone();
        health.add("upstream-apiserver", crate::endpoints::health::Scope::Ready, Arc::new(move || d.check()));
    }
    let gw = Arc::new(Gateway {
        args: Arc::new(args),
        health,
        cors,
        drain,
        serving_cert,
        client_cas,
        authn,
        audit,
        impersonation,
        flowcontrol,
        authz,
        router,
        store,
        local,
        respond,
        log,
        tracing,
    });
    Ok((gw, kubeconfig))
}

/// Resolves when the client has left while its request waits (its HTTP/2 stream reset or
/// closed, its HTTP/1.1 connection closed), as Go's server cancels a request's context; never
/// while a body is still to come (its bytes are the handler's to read).
async fn client_gone(session: &mut Session) {
    if let Some(closed) = session.watch_h2_stream_close() {
        let _ = closed.await;
        return;
    }
    if !session.is_body_done() {
        return std::future::pending().await;
    }
    // an HTTP/1.1 request without a body: until its response the connection has nothing to
    // say, so a read that finds it closed means the client left; bytes of a pipelined next
    // request are no leaving (Go keeps waiting too)
    match session.read_body_or_idle(true).await {
        // (pingora's word for bytes after the request: a pipelined next one)
        Err(e) if e.etype() == &pingora::ErrorType::ConnectError => std::future::pending().await,
        _ => {}
    }
}

/// Feeds the store's RBAC objects to the authorizer and its APIServices to the router, so a
/// `kubectl apply` of either takes effect at once; lays the router's availability over
/// stored APIServices' status; gives authentication its service-account lookup. The hooks
/// hold the stages' handles; no stage holds the store back, so nothing is cyclic.
fn connect_store(store: &Arc<Store>, authn: &Authentication, authz: &Authorization, router: &Router, sa_lookup: bool) {
    crate::authz::rbac::controller::seed(store, authz);
    for resource in ["roles", "clusterroles", "rolebindings", "clusterrolebindings"] {
        let authz = authz.clone();
        store.on_change(
            "rbac.authorization.k8s.io",
            resource,
            Box::new(move |objects| {
                crate::reload::report_store("rbac-store", &authz.set_dynamic_rbac_resource(resource, objects));
            }),
        );
    }
    crate::authz::rbac::controller::start(store, authz);
    let r = router.clone();
    store.on_change(
        "apiregistration.k8s.io",
        "apiservices",
        Box::new(move |objects| {
            for (name, error) in r.set_dynamic_apiservices(objects) {
                tracing::error!(policy = "apiservices-store", object = %name, %error, "stored APIService left out of the routing table; the rest applies");
                crate::metrics::POLICY_RELOAD_TOTAL.with_label_values(&["apiservices-store", "failure"]).inc();
            }
        }),
    );
    if sa_lookup && store.def("", "serviceaccounts").is_some() {
        let weak = Arc::downgrade(store);
        authn.set_service_account_lookup(Box::new(move |resource, ns, name| {
            let object = weak.upgrade()?.core_object(resource, ns, name)?;
            Some(crate::authn::CoreObject::of(&object))
        }));
    }
    let r = router.clone();
    store.set_status_provider("apiregistration.k8s.io", "apiservices", Box::new(move |name| r.apiservice_status(name)));
}

/// Gives flow control the store's object counts (from `apiserver_storage_objects`, what kube's
/// work estimator reads; None for resources the store does not serve) and its FlowSchemas and
/// PriorityLevelConfigurations: kube's bootstrap objects are ensured there first (and every
/// minute after), then every change is followed; FlowSchemas are served with their Dangling
/// condition. Without APF the objects are kept and served, unused, as kube's.
fn connect_flowcontrol(store: &Arc<Store>, flowcontrol: &FlowControl) {
    use crate::flowcontrol::apf::ensurer;
    let weak = Arc::downgrade(store);
    flowcontrol.set_object_count(Box::new(move |group, resource| {
        weak.upgrade()?.def(group, resource)?;
        let qualified = crate::api::status::qualified_resource(group, resource);
        Some(crate::store::metrics::OBJECTS.with_label_values(&[&qualified]).get().max(0) as u64)
    }));
    ensurer::ensure(store);
    ensurer::start(Arc::downgrade(store));
    for resource in ["flowschemas", "prioritylevelconfigurations"] {
        if store.def(ensurer::GROUP, resource).is_none() {
            continue;
        }
        let fc = flowcontrol.clone();
        store.on_change(
            ensurer::GROUP,
            resource,
            Box::new(move |objects| crate::reload::report("flowcontrol-store", &fc.set_stored(resource, objects))),
        );
    }
    let fc = flowcontrol.clone();
    store.set_status_provider(ensurer::GROUP, "flowschemas", Box::new(move |name| fc.flow_schema_status(name)));
}

/// Runs the gateway until shutdown.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (gw, kubeconfig) = build(args)?;
    let threads = if gw.args.worker_threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        gw.args.worker_threads
    };
    let conf = ServerConf {
        threads,
        // one single-threaded runtime per worker thread: a proxied request's downstream and
        // upstream tasks stay on one thread instead of waking each other across threads
        // (bench/proxy_vs_nginx.sh: frontdoor/nginx 0.28-0.35 -> 0.37-0.41, medians of 3)
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let (host, port) = (gw.args.bind_address, gw.args.secure_port);
    let host = if host.is_ipv6() { format!("[{host}]") } else { host.to_string() };
    let listen = format!("{host}:{port}");
    // One proxy service per worker thread, each a single-threaded runtime with its own listening
    // socket (SO_REUSEPORT: the kernel spreads connections), its connections and its upstream
    // pool, as nginx's workers do. With one service on N threads pingora spawns each accepted
    // connection and each pooled connection's idle watcher on a random thread: IO readiness and
    // pool hand-offs then cross threads (eventfd wake-ups), and a pooled connection whose idle
    // watcher runs on the other thread often fails `Arc::try_unwrap` in pingora's
    // `reused_stream` and is dropped, so about every other request paid a fresh upstream TLS
    // handshake with the proxy client cert.
    // The accept loop is crate::tls::SecureListener's (it bounds the TLS handshake by
    // --tls-handshake-timeout); each listener is bound here, so a taken port is a startup error.
    // The check binds without SO_REUSEPORT first: a port another process holds (with or without
    // SO_REUSEPORT) is refused instead of shared.
    std::net::TcpListener::bind(&listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = std::net::SocketAddr::new(gw.args.bind_address, port);
    for _ in 0..threads {
        let proxy = router::upstream_tls::http_proxy(
            &server.configuration,
            Frontdoor(gw.clone()),
            crate::tls::server_options(),
        );
        let tls = crate::tls::listener_settings(gw.serving_cert.clone(), gw.client_cas.clone())?;
        let listener = crate::tls::SecureListener::bind("frontdoor", addr, tls, proxy, gw.args.tls_handshake_timeout)?;
        server.add_service(listener);
    }

    if let Some(addr) = gw.args.metrics_bind_address {
        let mut metrics = pingora::services::listening::Service::new(
            "metrics".to_string(),
            pingora::apps::http_app::HttpServer::new_app(MetricsApp),
        );
        metrics.add_tcp(&addr.to_string());
        server.add_service(metrics);
    }

    tracing::info!(address = %listen, "serving");
    println!("frontdoor serving on https://{}", gw.local.address);
    let served = gw.local.served();
    let width = served.iter().map(|(gv, _)| gv.len()).max().unwrap_or(0);
    for (gv, what) in &served {
        println!("  {gv:width$}  {what}");
    }
    if let Some(k) = &kubeconfig {
        let abs = std::fs::canonicalize(k).unwrap_or_else(|_| k.clone());
        println!("kubeconfig: {}", abs.display());
        println!("try: kubectl --kubeconfig {} get --raw /readyz", abs.display());
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let watch = SignalWatch {
        health: gw.health.clone(),
        drain: gw.drain.clone(),
        delay: gw.args.shutdown_delay_duration,
        drain_timeout: gw.args.shutdown_drain_timeout,
    };
    server.run(RunArgs { shutdown_signal: Box::new(watch) });
    // the process ends when this returns: batched audit events still queued go out first
    gw.audit.shutdown();
    if let Some(t) = &gw.tracing {
        t.shutdown();
    }
    Ok(())
}
