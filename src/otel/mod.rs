//! OpenTelemetry tracing as kube-apiserver's (KEP-647, `--tracing-config-file`): a server span
//! per authenticated request (kube's `WithTracing` sits right after authentication), a client
//! span per proxied request whose context goes to the backend in `traceparent`, exported over
//! OTLP gRPC to the configured collector with kube's parent-based sampler.
//!
//! Without a configuration nothing is built and a request pays nothing: the client's
//! `traceparent` then reaches a backend unchanged, as kube's no-op provider passes it through.

pub mod config;
pub mod span;

use crate::context::RequestContext;
use config::{Target, TracingConfiguration};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Link, Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use pingora::http::RequestHeader;
use span::RequestSpans;
use std::path::PathBuf;

/// kube's tracing flag.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TracingArgs {
    /// File with apiserver tracing configuration (an apiserver.config.k8s.io
    /// TracingConfiguration: endpoint, samplingRatePerMillion).
    #[arg(long, value_name = "FILE")]
    pub tracing_config_file: Option<PathBuf>,
}

/// Groups whose incoming trace context is trusted as the request span's parent (kube's
/// `notSystemPrivilegedGroup`); anyone else's starts a new trace linked to it.
const TRUSTED_GROUPS: [&str; 2] = ["system:masters", "system:monitoring"];

/// The tracer and its exporter, built only when a configuration is given.
pub struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    propagator: TraceContextPropagator,
    /// Drives the exporter's gRPC channel (the batch processor exports from its own thread).
    _runtime: tokio::runtime::Runtime,
}

impl Tracing {
    /// None without `--tracing-config-file`; a file that does not read or validate is a
    /// startup error in kube's words.
    pub fn new(args: &TracingArgs) -> anyhow::Result<Option<Tracing>> {
        let Some(path) = &args.tracing_config_file else { return Ok(None) };
        let config = TracingConfiguration::load(path)?;
        let target = config.dial_target().map_err(|e| anyhow::anyhow!("--tracing-config-file: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-exporter")
            .enable_all()
            .build()?;
        // tonic's lazy channel spawns its worker on the runtime it is built in
        let exporter = {
            let _in = runtime.enter();
            let builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            match &target {
                Target::Tcp(url) => builder.with_endpoint(url.clone()),
                socket => builder.with_channel(unix_channel(socket.clone())),
            }
            .build()?
        };
        let sampler = match config.sampling_ratio() {
            r if r > 0.0 => Sampler::TraceIdRatioBased(r),
            _ => Sampler::AlwaysOff,
        };
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name("frontdoor")
            .with_attributes([KeyValue::new("service.instance.id", format!("frontdoor-{}", uuid::Uuid::new_v4()))])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(sampler)))
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        tracing::info!(endpoint = ?target, sampling_rate_per_million = config.sampling_rate_per_million.unwrap_or(0), "tracing requests");
        Ok(Some(Tracing {
            tracer: provider.tracer("frontdoor"),
            provider,
            propagator: TraceContextPropagator::new(),
            _runtime: runtime,
        }))
    }

    /// Starts the request's server span, from when it was received: a child of the incoming
    /// `traceparent` for a privileged user, else a new trace linked to it.
    pub fn start(&self, req: &RequestHeader, ctx: &mut RequestContext) {
        let incoming = self.propagator.extract(&Headers(req)).span().span_context().clone();
        let trusted = ctx.user.as_ref().is_some_and(|u| u.groups.iter().any(|g| TRUSTED_GROUPS.contains(&g.as_str())));
        let (parent, links) = match (incoming.is_valid(), trusted) {
            (true, true) => (Context::new().with_remote_span_context(incoming), Vec::new()),
            (true, false) => (Context::new(), vec![Link::with_context(incoming)]),
            (false, _) => (Context::new(), Vec::new()),
        };
        let mut builder = self
            .tracer
            .span_builder(span::server_name(req.method.as_str(), &ctx.request_info))
            .with_kind(SpanKind::Server)
            .with_links(links);
        if let Some(t) = ctx.received_at {
            builder = builder.with_start_time(t);
        }
        let mut server = builder.start_with_context(&self.tracer, &parent);
        // kube's samplers read no attributes: an unsampled span (most, at rate 0) is spared them
        if server.is_recording() {
            server.set_attributes(span::server_attributes(req, ctx));
        }
        ctx.spans = Some(Box::new(RequestSpans::new(parent.with_span(server))));
    }

    /// Starts the proxied request's client span (otelhttp's transport: `HTTP GET`) and puts its
    /// context in the request's `traceparent` (and `tracestate`), replacing the client's.
    /// Upgrades keep the client's header: kube's proxy does not trace them.
    pub fn proxy(&self, upstream: &mut RequestHeader, ctx: &mut RequestContext, upgrade: bool) {
        let Some(spans) = ctx.spans.as_mut() else { return };
        if upgrade {
            return;
        }
        let mut client = self
            .tracer
            .span_builder(format!("HTTP {}", upstream.method))
            .with_kind(SpanKind::Client)
            .start_with_context(&self.tracer, &spans.server);
        if client.is_recording() {
            client.set_attributes(span::client_attributes(upstream));
        }
        let cx = spans.server.with_span(client);
        self.propagator.inject_context(&cx, &mut Headers(upstream));
        spans.client = Some(cx);
    }

    /// Sends what is queued (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing trace spans at shutdown");
        }
    }
}

/// A gRPC channel over a Unix socket (gRPC's `unix:` and `unix-abstract:` targets), dialled
/// when the first batch goes out and again after a failure.
fn unix_channel(target: Target) -> tonic::transport::Channel {
    let connect = tower::service_fn(move |_: http::Uri| {
        let target = target.clone();
        async move {
            let stream = match target {
                Target::UnixAbstract(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                    let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
                    s.set_nonblocking(true)?;
                    tokio::net::UnixStream::from_std(s)?
                }
                Target::Unix(path) => tokio::net::UnixStream::connect(path).await?,
                Target::Tcp(url) => return Err(std::io::Error::other(format!("{url} is not a Unix socket"))),
            };
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    // the URI is a placeholder: the connector above decides where to dial
    tonic::transport::Endpoint::from_static("http://localhost").connect_with_connector_lazy(connect)
}

/// pingora's request headers as the propagator reads and writes them.
struct Headers<T>(T);

impl Extractor for Headers<&RequestHeader> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.headers.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.headers.keys().map(|k| k.as_str()).collect()
    }
}

impl Injector for Headers<&mut RequestHeader> {
    /// An empty `tracestate` is not sent (as Go's propagator).
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            let _ = self.0.insert_header(key.to_string(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::user::UserInfo;

    fn tracing_to(endpoint: &str, rate: u32) -> Tracing {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.yaml");
        std::fs::write(
            &f,
            format!("apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\nendpoint: {endpoint}\nsamplingRatePerMillion: {rate}\n"),
        )
        .unwrap();
        Tracing::new(&TracingArgs { tracing_config_file: Some(f) }).unwrap().expect("configured")
    }

    /// A tracer exporting to a closed port (the lazy channel never dials in these tests).
    fn tracing(rate: u32) -> Tracing {
        tracing_to("127.0.0.1:1", rate)
    }

    /// The server span's (trace id, sampled, parent is the caller's) for a request from `groups`
    /// carrying `traceparent`.
    fn start(t: &Tracing, groups: &[&str], traceparent: Option<&str>) -> (String, bool) {
        let mut req = RequestHeader::build("GET", b"/api/v1/namespaces/d/pods", None).unwrap();
        if let Some(tp) = traceparent {
            req.insert_header("traceparent", tp).unwrap();
        }
        let mut ctx = RequestContext {
            user: Some(std::sync::Arc::new(UserInfo {
                username: "u".into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                ..Default::default()
            })),
            ..Default::default()
        };
        t.start(&req, &mut ctx);
        let spans = ctx.spans.take().expect("a span for an authenticated request");
        let sampled = spans.server.span().span_context().is_sampled();
        (spans.ids().0, sampled)
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn sampling_is_parent_based_with_kubes_trust() {
        let t = tracing(0);
        let sampled = format!("00-{TRACE}-00f067aa0ba902b7-01");
        let unsampled = format!("00-{TRACE}-00f067aa0ba902b7-00");
        assert_eq!(start(&t, &["system:masters"], Some(&sampled)), (TRACE.to_string(), true));
        assert_eq!(start(&t, &["system:monitoring"], Some(&unsampled)), (TRACE.to_string(), false));
        // rate 0: nothing without a trusted sampled parent
        let (trace, is_sampled) = start(&t, &["system:authenticated"], Some(&sampled));
        assert!(trace != TRACE && !is_sampled, "an untrusted caller's context is not the parent");
        assert!(!start(&t, &["system:masters"], None).1);
        let all = tracing(1_000_000);
        assert!(start(&all, &["system:authenticated"], None).1, "a million per million");
        let (trace, is_sampled) = start(&all, &["system:authenticated"], Some(&unsampled));
        assert!(trace != TRACE && is_sampled, "a new root, sampled by the rate");
    }

    #[test]
    fn the_backend_gets_the_client_span() {
        let t = tracing(0);
        let mut req = RequestHeader::build("GET", b"/apis/x/v1/things", None).unwrap();
        req.insert_header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01")).unwrap();
        let mut ctx = RequestContext {
            user: Some(std::sync::Arc::new(UserInfo { groups: vec!["system:masters".into()], ..Default::default() })),
            ..Default::default()
        };
        t.start(&req, &mut ctx);
        let mut upstream = req.clone();
        t.proxy(&mut upstream, &mut ctx, false);
        let sent = upstream.headers.get("traceparent").unwrap().to_str().unwrap().to_string();
        let spans = ctx.spans.as_ref().unwrap();
        let client = spans.client.as_ref().unwrap().span().span_context().span_id().to_string();
        assert_eq!(sent, format!("00-{TRACE}-{client}-01"));
        assert!(upstream.headers.get("tracestate").is_none(), "no empty tracestate");
        // an upgrade keeps the caller's header
        let mut upgrade = req.clone();
        t.proxy(&mut upgrade, &mut ctx, true);
        assert_eq!(upgrade.headers.get("traceparent").unwrap(), &format!("00-{TRACE}-00f067aa0ba902b7-01"));
    }

    /// Exports one sampled span to `endpoint` and waits for `listener` to be dialled (the
    /// connection is closed at once, so the export fails fast).
    fn dials(endpoint: &str, listener: std::os::unix::net::UnixListener) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(listener.accept().is_ok()));
        let t = tracing_to(endpoint, 1_000_000);
        start(&t, &["system:authenticated"], None);
        t.shutdown();
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(10)), Ok(true), "{endpoint} was not dialled");
    }

    #[test]
    fn unix_socket_collectors_are_dialled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otel.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        dials(&format!("unix://{}", path.display()), listener);
        use std::os::linux::net::SocketAddrExt;
        let name = format!("/frontdoor-otel-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        dials(&format!("unix-abstract://{name}"), std::os::unix::net::UnixListener::bind_addr(&addr).unwrap());
    }
}
