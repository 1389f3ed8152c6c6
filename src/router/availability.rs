//! Backend availability, as kube-aggregator's APIService availability controller: each
//! backend is probed at `/apis/<group>/<version>` (through the same pingora connector and
//! peer settings the proxy uses); while a probe fails, its group/version answers 503 at once
//! and leaves discovery; it recovers by itself. The probe's APIResourceList is the backend's
//! cached discovery, so discovery requests never wait on a backend.

use super::apiservice::ApiService;
use super::upstream_tls::{Trust, UpstreamConnector, UpstreamTls};
use super::{Backend, Shared};
use once_cell::sync::Lazy;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::upstreams::peer::H1UpgradePolicy;
use prometheus::{register_int_gauge_vec, IntGaugeVec};
use std::net::ToSocketAddrs;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

type Connector = pingora::connectors::http::Connector<UpstreamConnector>;

/// How long one probe may take (kube's availability check uses 5s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest document (discovery, OpenAPI) accepted from a backend.
const MAX_DOCUMENT: usize = 64 << 20;
/// How often a backend's OpenAPI is fetched again (conditionally), as kube-aggregator resyncs
/// it; also at once when the backend becomes available.
const OPENAPI_INTERVAL: Duration = Duration::from_secs(60);
/// How long an idle upstream connection stays in the pool.
pub const POOL_IDLE: Duration = Duration::from_secs(90);

pub static BACKEND_AVAILABLE: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "frontdoor_backend_available",
        "Whether the backend apiserver of an APIService passes its availability check (1) or not (0).",
        &["name"]
    )
    .expect("register frontdoor_backend_available")
});

pub static UNAVAILABLE_APISERVICE: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "aggregator_unavailable_apiservice",
        "Gauge of APIServices which are marked as unavailable broken down by APIService name.",
        &["name"]
    )
    .expect("register aggregator_unavailable_apiservice")
});

pub static UPSTREAM_AVAILABLE: Lazy<prometheus::IntGauge> = Lazy::new(|| {
    prometheus::register_int_gauge!(
        "frontdoor_upstream_apiserver_available",
        "Whether the upstream apiserver (--upstream-apiserver) answers its refresh (1) or not (0)."
    )
    .expect("register frontdoor_upstream_apiserver_available")
});

/// The labels of kube's `kubernetes_build_info`, the fields of a `/version` answer.
pub const BUILD_INFO_LABELS: [&str; 9] = [
    "major",
    "minor",
    "git_version",
    "git_commit",
    "git_tree_state",
    "build_date",
    "go_version",
    "compiler",
    "platform",
];

pub static UPSTREAM_BUILD_INFO: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "frontdoor_upstream_apiserver_build_info",
        "A metric with a constant '1' value labeled by the upstream apiserver's /version: major, minor, git version, git commit, git tree state, build date, Go version, compiler and platform.",
        &BUILD_INFO_LABELS
    )
    .expect("register frontdoor_upstream_apiserver_build_info")
});

/// The upstream's `/version` as `frontdoor_upstream_apiserver_build_info` (one series: the
/// previous version's is dropped when it changes).
pub fn set_upstream_version(version: &serde_json::Value) {
    let keys =
        ["major", "minor", "gitVersion", "gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"];
    let values: Vec<&str> = keys.iter().map(|k| version.get(*k).and_then(|v| v.as_str()).unwrap_or("")).collect();
    if UPSTREAM_BUILD_INFO.get_metric_with_label_values(&values).is_ok_and(|m| m.get() == 1) {
        return;
    }
    UPSTREAM_BUILD_INFO.reset();
    UPSTREAM_BUILD_INFO.with_label_values(&values).set(1);
}

pub fn set_upstream_metric(available: bool) {
    UPSTREAM_AVAILABLE.set(available as i64);
}

pub fn register_metrics() {
    Lazy::force(&BACKEND_AVAILABLE);
    Lazy::force(&UNAVAILABLE_APISERVICE);
}

pub fn forget_metrics(name: &str) {
    let _ = BACKEND_AVAILABLE.remove_label_values(&[name]);
    let _ = UNAVAILABLE_APISERVICE.remove_label_values(&[name]);
}

fn set_metrics(name: &str, available: bool) {
    BACKEND_AVAILABLE.with_label_values(&[name]).set(available as i64);
    UNAVAILABLE_APISERVICE.with_label_values(&[name]).set(!available as i64);
}

/// The APIService `Available` condition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    pub status: &'static str,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Condition {
    pub fn local() -> Self {
        Condition {
            status: "True",
            reason: "Local".into(),
            message: "Local APIServices are always available".into(),
            last_transition_time: String::new(),
        }
    }

    pub fn unchecked(_spec: &ApiService) -> Self {
        Condition {
            status: "Unknown",
            reason: "Unchecked".into(),
            message: "not checked yet".into(),
            last_transition_time: now(),
        }
    }

    fn passed() -> Self {
        Condition {
            status: "True",
            reason: "Passed".into(),
            message: "all checks passed".into(),
            last_transition_time: String::new(),
        }
    }

    fn failed(reason: &str, message: String) -> Self {
        Condition { status: "False", reason: reason.into(), message, last_transition_time: String::new() }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"type": "Available", "status": self.status, "reason": self.reason, "message": self.message});
        if !self.last_transition_time.is_empty() {
            v["lastTransitionTime"] = self.last_transition_time.clone().into();
        }
        v
    }
}

/// Builds the upstream of a backend at `addr`: TLS to `<name>.<namespace>.svc`, verified with
/// the caBundle (or not, with insecureSkipTLSVerify), presenting the proxy client certificate,
/// through the backend's prebuilt [`UpstreamTls`] (see its module for why not pingora's own).
pub fn build_upstream(
    shared: &Shared,
    spec: &ApiService,
    addr: std::net::SocketAddr,
) -> anyhow::Result<super::Upstream> {
    let svc = spec.service.as_ref().ok_or_else(|| anyhow::anyhow!("local APIService"))?;
    let mut peer = HttpPeer::new(addr, true, svc.server_name());
    // no caBundle: the platform's roots, as Go's TLS config without RootCAs in kube-aggregator
    let cas = match spec.ca_bundle.is_empty() {
        true => Vec::new(),
        false => super::upstream_tls::parse_cas(&spec.ca_bundle, "caBundle")?,
    };
    let trust = match () {
        _ if spec.insecure_skip_tls_verify => Trust::Insecure,
        _ if cas.is_empty() => Trust::System,
        _ => Trust::Roots(&cas),
    };
    let tls = UpstreamTls::get(trust, shared.client_cert.load().as_deref())?;
    // every HTTP/1 upgrade passes as the client asked for it, as kube-aggregator's upgrade-aware
    // proxy does: pingora's default forwards websocket only and strips `Upgrade: SPDY/3.1`
    // (kubectl exec/attach/port-forward); ordinary requests still lose their hop-by-hop headers
    peer.options.http_upstream_request_policy.h1_upgrade = H1UpgradePolicy::Preserve;
    peer.options.connection_timeout = Some(Duration::from_secs(5));
    peer.options.idle_timeout = Some(POOL_IDLE);
    // connections to different APIServices never mix, even at one address
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(spec, &mut h);
    tls.apply(&mut peer, std::hash::Hasher::finish(&h));
    Ok(super::Upstream::new(peer, tls))
}

fn discovery_path(spec: &ApiService) -> String {
    if spec.group.is_empty() {
        format!("/api/{}", spec.version)
    } else {
        format!("/apis/{}/{}", spec.group, spec.version)
    }
}

/// Sends `req` (a GET of `path`) on a pooled session of `peer` and reads the answer, its body
/// bounded by `MAX_DOCUMENT`: (status, body, ETag). Frontdoor's own calls to backends and to
/// the upstream apiserver.
pub(super) async fn exchange(
    connector: &Connector,
    peer: &HttpPeer,
    req: RequestHeader,
    path: &str,
    read_timeout: Option<Duration>,
) -> super::openapi::Fetched {
    let addr = peer._address.to_string();
    let go = |e: Box<pingora::Error>| super::proxy::transport_error(&e, Some(&addr));
    let (mut s, _reused) = connector.get_http_session(peer).await.map_err(go)?;
    s.set_read_timeout(read_timeout);
    s.write_request_header(Box::new(req)).await.map_err(go)?;
    s.finish_request_body().await.map_err(go)?;
    s.read_response_header().await.map_err(go)?;
    let head = s.response_header().ok_or("no response")?;
    let code = head.status.as_u16();
    let etag = head.headers.get("ETag").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut body = Vec::new();
    while let Some(chunk) = s.read_response_body().await.map_err(go)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err(format!("{path}: response larger than {MAX_DOCUMENT} bytes"));
        }
    }
    connector.release_http_session(s, peer, Some(POOL_IDLE)).await;
    Ok((code, bytes::Bytes::from(body), etag))
}

/// A GET of a backend as kube-aggregator makes it (system:kube-aggregator, with the proxy
/// client cert): (status, body, ETag).
async fn get(
    connector: &Connector,
    peer: &HttpPeer,
    host: &str,
    path: &str,
    etag: Option<&str>,
) -> super::openapi::Fetched {
    let call = async {
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).map_err(|e| e.to_string())?;
        let _ = req.insert_header("Host", host);
        let _ = req.insert_header("Accept", "application/json");
        let _ = req.insert_header("User-Agent", "frontdoor-availability-check");
        let _ = req.insert_header("X-Remote-User", "system:kube-aggregator");
        let _ = req.insert_header("X-Remote-Group", "system:masters");
        if let Some(t) = etag {
            let _ = req.insert_header("If-None-Match", t);
        }
        exchange(connector, peer, req, path, Some(PROBE_TIMEOUT)).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(r) => r,
        Err(_) => Err("context deadline exceeded".into()),
    }
}

/// A backend's OpenAPI documents, fetched as kube-aggregator fetches them.
struct OpenApiFetch<'a> {
    connector: &'a Connector,
    peer: &'a HttpPeer,
    host: &'a str,
}

impl super::openapi::Fetch for OpenApiFetch<'_> {
    async fn get(&self, path_and_query: &str, etag: Option<&str>) -> super::openapi::Fetched {
        get(self.connector, self.peer, self.host, path_and_query, etag).await
    }
}

/// GETs the backend's discovery document for its group/version.
async fn fetch(connector: &Connector, peer: &HttpPeer, spec: &ApiService) -> Result<serde_json::Value, String> {
    let host = spec.service.as_ref().map(|s| s.server_name()).unwrap_or_default();
    let url = format!("https://{}{}", peer._address, discovery_path(spec));
    // as Go's client says it: the URL, then what failed
    let (code, body, _) = get(connector, peer, &host, &discovery_path(spec), None)
        .await
        .map_err(|e| format!("Get {}: {e}", crate::api::field::quote(&url)))?;
    if !(200..300).contains(&code) {
        return Err(format!("bad status from {url}: {code}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("invalid discovery document: {e}"))
}

/// One availability check of one backend; updates its state, metrics and discovery cache.
async fn check(shared: &Shared, connector: &Connector, b: &Backend) {
    let Some(svc) = b.spec.service.as_ref() else {
        set_metrics(&b.spec.name, true);
        return;
    };
    let (endpoint, explicit) = shared.endpoint_of(svc);
    let addr = tokio::task::spawn_blocking({
        let e = endpoint.clone();
        move || e.to_socket_addrs().ok().and_then(|mut a| a.next())
    })
    .await
    .ok()
    .flatten();
    let result = match addr {
        None if explicit => Err(Condition::failed(
            "EndpointsNotFound",
            format!("cannot resolve the endpoint {endpoint} of service/{} in {:?}", svc.name, svc.namespace),
        )),
        None => Err(Condition::failed(
            "ServiceNotFound",
            format!("service/{} in {:?} is not present", svc.name, svc.namespace),
        )),
        Some(addr) => match build_upstream(shared, &b.spec, addr) {
            Err(e) => Err(Condition::failed("FailedDiscoveryCheck", e.to_string())),
            Ok(upstream) => {
                let upstream = Arc::new(upstream);
                b.state.peer.store(Some(upstream.clone()));
                let peer = &upstream.peer;
                let url = format!("https://{addr}{}", discovery_path(&b.spec));
                match fetch(connector, peer, &b.spec).await {
                    Ok(doc) => {
                        // its OpenAPI, when it changed (conditional GETs), for the merged documents:
                        // every OPENAPI_INTERVAL, and at once when it (re)becomes available
                        let due = !b.state.available.load(Ordering::Acquire)
                            || b.state.openapi_fetched.lock().unwrap().is_none_or(|t| t.elapsed() >= OPENAPI_INTERVAL);
                        let mut openapi = None;
                        if due {
                            let host = svc.server_name();
                            let f = OpenApiFetch { connector, peer, host: &host };
                            let own = super::openapi::gv_name(&b.spec.group, &b.spec.version);
                            openapi = super::openapi::refresh(&f, &b.state.openapi.load(), |gv| gv == own).await;
                            *b.state.openapi_fetched.lock().unwrap() = Some(std::time::Instant::now());
                        }
                        Ok((doc, openapi))
                    }
                    Err(e) => Err(Condition::failed(
                        "FailedDiscoveryCheck",
                        format!("failing or missing response from {url}: {e}"),
                    )),
                }
            }
        },
    };
    let available = result.is_ok();
    // what discovery and OpenAPI are built from: availability, resources, documents
    let mut changed = b.state.available.load(Ordering::Acquire) != available;
    let next = match result {
        Ok((doc, openapi)) => {
            let resources = doc.get("resources").cloned().unwrap_or_else(|| serde_json::json!([]));
            if b.state.resources.load().as_deref() != Some(&resources) {
                b.state.resources.store(Some(Arc::new(resources)));
                changed = true;
            }
            if let Some(o) = openapi {
                b.state.openapi.store(Arc::new(o));
                changed = true;
            }
            Condition::passed()
        }
        Err(c) => c,
    };
    {
        let mut cur = b.state.condition.lock().unwrap();
        if cur.status != next.status || cur.reason != next.reason || cur.message != next.message {
            if cur.status != next.status {
                tracing::info!(apiservice = %b.spec.name, available, reason = %next.reason, message = %next.message, "APIService availability changed");
            }
            let when = if cur.status != next.status { now() } else { cur.last_transition_time.clone() };
            *cur = Condition { last_transition_time: when, ..next };
        }
    }
    b.state.available.store(available, Ordering::Release);
    set_metrics(&b.spec.name, available);
    if changed {
        shared.changed();
    }
}

/// Starts the prober: every interval, or at once when the table or client cert changes.
pub fn spawn(shared: Arc<Shared>) {
    background("apiservice-availability", "the APIService availability checker", async move {
        let connector = super::upstream_tls::http_connector();
        loop {
            let table = shared.table.load_full();
            let checks = table.services.iter().map(|b| check(&shared, &connector, b));
            futures::future::join_all(checks).await;
            let _ = tokio::time::timeout(shared.interval, shared.wake.notified()).await;
        }
    });
}

/// Runs `work` on a thread `name` of its own, with a runtime of its own: the router's
/// background loops (the availability checker, the upstream refresher) never compete with
/// the proxy's workers. `what` names it in the error when it cannot start.
pub(super) fn background(name: &str, what: &'static str, work: impl std::future::Future<Output = ()> + Send + 'static) {
    let spawned =
        std::thread::Builder::new().name(name.into()).spawn(
            move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(work),
                Err(e) => tracing::error!(error = %e, "cannot start {what}"),
            },
        );
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start {what}");
    }
}
