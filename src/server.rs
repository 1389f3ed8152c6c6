//! The gateway: pingora's proxy service running kube-apiserver's handler chain.

use crate::api::Status;
use crate::config::ServeArgs;
use crate::context::{RequestContext, Route};
use crate::endpoints::health::Health;
use crate::filters::cors::Cors;
use crate::filters::response::{add_common_headers, internal_error_text, send};
use crate::filters::shutdown::{Drain, SignalWatch};
use crate::filters::{panic_recovery, request_received, timeout, Reply};
use crate::request_info::RequestInfo;
use crate::tls::{CaRole, ClientCas, ServingCert};
use crate::{audit, authn, authz, flowcontrol, impersonation, router, store};
use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a request may consult, built once at startup. Policies inside are swapped
/// atomically on reload; a request reads each snapshot once.
pub struct Gateway {
    pub args: Arc<ServeArgs>,
    pub health: Arc<Health>,
    pub cors: Cors,
    pub drain: Arc<Drain>,
    pub serving_cert: Arc<ServingCert>,
    pub client_cas: Arc<ClientCas>,
    pub authn: authn::Authentication,
    pub authz: authz::Authorization,
    pub audit: audit::Audit,
    pub flowcontrol: flowcontrol::FlowControl,
    pub router: router::Router,
    pub store: store::Store,
    /// Where the secure port is served, as clients should address it.
    pub address: String,
    /// The gateway itself, for tasks that outlive a request's borrow (`filters::detach`).
    pub this: std::sync::Weak<Gateway>,
}

impl Gateway {
    pub fn server_address(&self) -> String {
        self.address.clone()
    }

    /// Every resource frontdoor serves itself (store resources and review APIs), for
    /// discovery and routing.
    pub fn local_resources(&self) -> Vec<crate::api::ApiResource> {
        let mut r = self.store.resources();
        r.extend(crate::authn::review::resources());
        r.extend(crate::authz::review::resources());
        r
    }

    /// The whole chain, up to the router. Returns true when the response was written here.
    async fn handle(&self, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<bool> {
        let client = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_string());
        request_received::run(session.req_header(), client, ctx);
        ctx.drain = self.drain.track();
        ctx.peer = crate::tls::peer_of(session);

        let req = session.req_header();
        match RequestInfo::resolve(req.method.as_str(), req.uri.path(), req.uri.query()) {
            Ok(info) => ctx.request_info = Arc::new(info),
            Err(e) => {
                let reply = internal_error_text(&ctx.request_uri, &format!("failed to create RequestInfo: {e}"));
                return self.reject(session, ctx, reply).await;
            }
        }
        match timeout::resolve(&ctx.request_info, session.req_header().uri.query(), self.args.request_timeout) {
            Ok(deadline) => ctx.deadline = deadline,
            Err(status) => return self.reject(session, ctx, (*status).into()).await,
        }
        if self.cors.is_preflight(session.req_header()) {
            return self.reject(session, ctx, Reply::empty(204)).await;
        }
        let authenticated = authn::authenticate(self, session.req_header_mut(), ctx).await;
        if let Err(reply) = audit::request_received(self, session.req_header(), ctx).await {
            return self.reject(session, ctx, reply).await;
        }
        if let Err(status) = authenticated {
            return self.reject(session, ctx, status.into()).await;
        }
        if let Err(reply) = impersonation::impersonate(self, session.req_header_mut(), ctx).await {
            return self.reject(session, ctx, reply).await;
        }
        if let Err(reply) = flowcontrol::admit(self, ctx) {
            return self.reject(session, ctx, reply).await;
        }
        if let Err(status) = authz::authorize(self, ctx).await {
            return self.reject(session, ctx, status.into()).await;
        }
        ctx.route = self.router.route(self, ctx);
        if matches!(ctx.route, Route::Backend(_)) {
            return Ok(false);
        }
        self.serve_local(session, ctx).await?;
        Ok(true)
    }

    async fn reject(&self, session: &mut Session, ctx: &mut RequestContext, reply: Reply) -> pingora::Result<bool> {
        send(self, session, ctx, reply).await?;
        Ok(true)
    }

    /// Runs the local handler under the non-long-running timeout.
    async fn serve_local(&self, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<()> {
        let Some(limit) = ctx.deadline else {
            return router::local::serve(self, session, ctx).await;
        };
        match tokio::time::timeout(limit, router::local::serve(self, session, ctx)).await {
            Ok(r) => r,
            Err(_) if session.response_written().is_none() => send(self, session, ctx, timeout::status().into()).await,
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
    type CTX = RequestContext;

    fn new_ctx(&self) -> RequestContext {
        RequestContext::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<bool> {
        match panic_recovery::catch(self.0.handle(session, ctx)).await {
            Ok(r) => r,
            Err(panic) => {
                // method and path are as received: the chain changes only headers
                let what = format!("{} {}", session.req_header().method, session.req_header().uri.path());
                let status = panic_recovery::panicked(&what, &panic);
                audit::response_complete(&self.0, ctx, 500, true).await;
                if session.response_written().is_none() {
                    send(&self.0, session, ctx, status.into()).await?;
                }
                ctx.response_code = 500;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<Box<HttpPeer>> {
        router::proxy::upstream_peer(ctx, session.is_upgrade_req())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestContext,
    ) -> pingora::Result<()> {
        router::proxy::upstream_request(upstream_request, ctx);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestContext,
    ) -> pingora::Result<()> {
        router::proxy::check_deadline(ctx)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> pingora::Result<Option<std::time::Duration>> {
        router::proxy::check_deadline(ctx)?;
        Ok(None)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestContext,
    ) -> pingora::Result<()> {
        add_common_headers(ctx, upstream_response);
        self.0.cors.add_headers(session.req_header(), upstream_response);
        ctx.response_code = upstream_response.status.as_u16();
        audit::response_header(ctx, upstream_response);
        if ctx.request_info.is_long_running() {
            audit::response_started(&self.0, ctx, ctx.response_code).await;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> pingora::Result<()> {
        if let Some(b) = body {
            audit::request_body(ctx, b);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> pingora::Result<Option<std::time::Duration>> {
        if let Some(b) = body {
            audit::response_body(ctx, b);
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
        _ctx: &mut RequestContext,
        client_reused: bool,
    ) -> Box<pingora::Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let timed_out = matches!(e.etype, pingora::ErrorType::ReadTimedout | pingora::ErrorType::WriteTimedout);
        if timed_out || !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &pingora::Error, ctx: &mut RequestContext) -> FailToProxy {
        let status = router::proxy::error_status(e, ctx);
        let code = status.code;
        if session.response_written().is_none() {
            let _ = send(&self.0, session, ctx, status.into()).await;
        }
        ctx.response_code = code;
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&pingora::Error>, ctx: &mut RequestContext) {
        if !ctx.detached {
            self.0.log_request(session, ctx).await;
        }
    }
}

impl Gateway {
    /// Metrics, the in-flight seat, audit ResponseComplete and the access log of a finished
    /// request (pingora's `logging`, or a detached response's task when it ends).
    pub async fn log_request(&self, session: &pingora::protocols::http::ServerSession, ctx: &mut RequestContext) {
        let code = session.response_written().map(|h| h.status.as_u16()).unwrap_or(ctx.response_code);
        let info = ctx.request_info.clone();
        let req = session.req_header();
        let is_apply = req
            .headers
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/apply-patch"));
        let dry_run = req.uri.query().is_some_and(|q| q.contains("dryRun=All"));
        let verb = crate::metrics::reported_verb(req.method.as_str(), &info.verb, info.is_resource_request, is_apply);
        let seconds = ctx.received.map(|t| t.elapsed().as_secs_f64()).unwrap_or_default();
        crate::metrics::record_request(&crate::metrics::RequestOutcome {
            verb: &verb,
            dry_run,
            group: &info.api_group,
            version: &info.api_version,
            resource: &info.resource,
            subresource: &info.subresource,
            scope: info.scope(),
            code,
            seconds,
            long_running: info.is_long_running(),
        });
        // the seat is free once the response is written (kube's max-in-flight sits inside audit)
        ctx.inflight = None;
        audit::response_complete(self, ctx, code, false).await;
        tracing::debug!(
            audit_id = %ctx.audit_id,
            verb = %verb,
            uri = %ctx.request_uri,
            user = ctx.effective_user().map(|u| u.username.as_str()).unwrap_or(""),
            code,
            latency_ms = seconds * 1000.0,
            "request"
        );
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
        args.tls_cert_file = Some(args.dev_cert("apiserver.crt"));
        args.tls_private_key_file = Some(args.dev_cert("apiserver.key"));
        if args.client_ca_file.is_none() {
            args.client_ca_file = Some(args.dev_cert("ca.crt"));
        }
        authn::embedded_defaults(&mut args);
    }
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

    let health = Arc::new(Health::new());
    let store = store::Store::open(&args)?;
    store.register_health(&health);
    let (cors, authn, authz, audit, flowcontrol, router) = (
        Cors::new(&args.cors_allowed_origins)?,
        authn::Authentication::new(&args, &client_cas)?,
        authz::Authorization::new(&args)?,
        audit::Audit::new(&args)?,
        flowcontrol::FlowControl::new(&args)?,
        router::Router::new(&args)?,
    );
    let gw = Arc::new_cyclic(|this| Gateway {
        health,
        cors,
        drain: Arc::new(Drain::default()),
        authn,
        authz,
        audit,
        flowcontrol,
        router,
        store,
        serving_cert,
        client_cas,
        address,
        args: Arc::new(args),
        this: this.clone(),
    });
    connect_store(&gw);
    Ok((gw, kubeconfig))
}

/// Feeds the store's RBAC objects to the authorizer and its APIServices to the router, so a
/// `kubectl apply` of either takes effect at once, and lays the router's availability over
/// stored APIServices' status. Hooks hold the gateway weakly: the store lives inside it.
fn connect_store(gw: &Arc<Gateway>) {
    for resource in ["roles", "clusterroles", "rolebindings", "clusterrolebindings"] {
        let weak = Arc::downgrade(gw);
        gw.store.on_change(
            "rbac.authorization.k8s.io",
            resource,
            Box::new(move |objects| {
                if let Some(gw) = weak.upgrade() {
                    crate::reload::report("rbac-store", &gw.authz.set_dynamic_rbac_resource(resource, objects));
                }
            }),
        );
    }
    let weak = Arc::downgrade(gw);
    gw.store.on_change(
        "apiregistration.k8s.io",
        "apiservices",
        Box::new(move |objects| {
            if let Some(gw) = weak.upgrade() {
                crate::reload::report("apiservices-store", &gw.router.set_dynamic_apiservices(objects));
            }
        }),
    );
    if gw.args.authn.service_account_lookup && gw.store.def("", "serviceaccounts").is_some() {
        let weak = Arc::downgrade(gw);
        gw.authn.set_service_account_lookup(Box::new(move |ns, name| {
            let gw = weak.upgrade()?;
            let def = gw.store.def("", "serviceaccounts")?;
            let sa = gw.store.storage.get(&def.key(ns, name))?;
            Some(sa.value["metadata"]["uid"].as_str().unwrap_or_default().to_string())
        }));
    }
    let weak = Arc::downgrade(gw);
    gw.store.set_status_provider(
        "apiregistration.k8s.io",
        "apiservices",
        Box::new(move |name| weak.upgrade()?.router.apiservice_status(name)),
    );
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
        let mut proxy = pingora::proxy::http_proxy(&server.configuration, Frontdoor(gw.clone()));
        proxy.server_options = Some(crate::tls::server_options());
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
    println!("frontdoor serving on https://{}", gw.address);
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
    Ok(())
}
