//! The router: which handler serves a request that passed the chain. Local paths
//! (health, version, metrics, discovery) and the store's resources are served by frontdoor;
//! API groups owned by a backend apiserver are proxied (aggregation), as kube-aggregator
//! does, from a table of `apiregistration.k8s.io/v1` APIService objects.

pub mod apiservice;
pub mod availability;
pub mod discovery;
pub mod head_deadline;
pub mod local;
pub mod openapi;
pub mod proxy;
pub mod upstream;
pub mod upstream_tls;
pub mod version;

use crate::request_info::RequestInfo;
use apiservice::ApiService;
use arc_swap::{ArcSwap, ArcSwapOption};
use pingora::prelude::HttpPeer;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Proxy and aggregation flags (kube-apiserver's names where it has them).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProxyArgs {
    /// File or directory of apiregistration.k8s.io/v1 APIService objects (YAML or JSON,
    /// multi-document) routing API groups/versions to backend apiservers. Reloaded on change.
    /// Default: apiservices.yaml in --policy-dir if present.
    #[arg(long, value_name = "PATH")]
    pub apiservices_file: Option<PathBuf>,

    /// Where an APIService's service reference is reached from outside a cluster:
    /// NAMESPACE/NAME:PORT=HOST:PORT (repeatable). Without it a service resolves to
    /// NAME.NAMESPACE.svc:PORT.
    #[arg(long, value_name = "NAMESPACE/NAME:PORT=HOST:PORT")]
    pub service_endpoint: Vec<String>,

    /// Client certificate used to prove the identity of the aggregator or kube-apiserver when
    /// it must call out during a request (presented to every backend apiserver).
    /// Default on embedded defaults: front-proxy-client.crt in --cert-dir.
    #[arg(long, value_name = "FILE")]
    pub proxy_client_cert_file: Option<PathBuf>,

    /// Private key for the client certificate in --proxy-client-cert-file.
    #[arg(long, value_name = "FILE")]
    pub proxy_client_key_file: Option<PathBuf>,

    /// How often each backend apiserver is probed at /apis/<group>/<version> for availability
    /// and discovery.
    #[arg(long, default_value = "10s", value_parser = crate::api::duration::parse_duration)]
    pub apiservice_check_interval: Duration,

    #[command(flatten)]
    pub upstream: upstream::UpstreamArgs,
}

/// An APIService in the routing table (a backend when it names a service, else local).
/// Where the router sends a request.
#[derive(Debug, Clone, Default)]
pub enum Route {
    /// Not routed yet (the chain ended early).
    #[default]
    None,
    /// Served by frontdoor itself.
    Local,
    /// Proxied to an aggregated backend apiserver.
    Backend(Arc<Backend>),
    /// Proxied to the upstream apiserver (`--upstream-apiserver`), kube-aggregator's delegate.
    Upstream(Arc<upstream::Delegate>),
}

impl Route {
    /// Whether pingora's upstream phases serve it (a backend or the upstream apiserver).
    pub fn is_proxied(&self) -> bool {
        matches!(self, Route::Backend(_) | Route::Upstream(_))
    }
}

#[derive(Debug)]
pub struct Backend {
    pub spec: ApiService,
    pub state: Arc<BackendState>,
}

impl Backend {
    pub fn is_local(&self) -> bool {
        self.spec.service.is_none()
    }

    pub fn available(&self) -> bool {
        self.is_local() || self.state.available.load(Ordering::Acquire)
    }
}

/// The live state of one backend, kept across table rebuilds while its spec is unchanged.
#[derive(Debug, Default)]
pub struct BackendState {
    pub available: AtomicBool,
    /// The `Available` condition (status, reason, message, lastTransitionTime).
    pub condition: Mutex<availability::Condition>,
    /// The upstream peer, rebuilt by the prober (address resolution, proxy client cert).
    pub peer: ArcSwapOption<Upstream>,
    /// The `resources` of the backend's APIResourceList, from the last good probe.
    pub resources: ArcSwapOption<serde_json::Value>,
    /// The backend's OpenAPI (v2 and its group-version's v3 document), and when it was last
    /// fetched.
    pub openapi: ArcSwap<openapi::Remote>,
    pub openapi_fetched: Mutex<Option<std::time::Instant>>,
}

/// A backend's upstream as the proxy uses it: built by the prober, read by every request.
#[derive(Debug)]
pub struct Upstream {
    pub peer: HttpPeer,
    /// The `Host` of proxied requests (the backend's address), formatted once.
    pub host: http::HeaderValue,
    /// The TLS config the peer dials with, kept alive while the peer may be used.
    pub tls: Arc<upstream_tls::UpstreamTls>,
}

impl Upstream {
    pub fn new(peer: HttpPeer, tls: Arc<upstream_tls::UpstreamTls>) -> Self {
        let host = http::HeaderValue::try_from(peer._address.to_string()).expect("a socket address is a header value");
        Upstream { peer, host, tls }
    }
}

/// The routing table: every APIService by name, and the ones with a service by group/version.
#[derive(Default)]
pub struct Table {
    pub services: Vec<Arc<Backend>>,
    /// group -> version -> backend: looked up by borrowed strs, nothing allocated per request.
    /// Fx-hashed, as every map a request is routed or labelled by (SipHash was ~1,400
    /// instructions of each proxied request): their keys are configuration (APIServices,
    /// served resources), which a request only looks up.
    by_gv: FxHashMap<String, FxHashMap<String, Arc<Backend>>>,
}

impl Table {
    pub fn get(&self, group: &str, version: &str) -> Option<&Arc<Backend>> {
        self.by_gv.get(group)?.get(version)
    }
}

/// State shared by the router and its prober thread.
pub struct Shared {
    pub table: ArcSwap<Table>,
    from_files: Mutex<Vec<ApiService>>,
    from_store: Mutex<Vec<ApiService>>,
    /// Held for a whole rebuild: the files' reload thread and the store's watcher rebuild at
    /// will, and a rebuild that read older sources must not store its table last.
    rebuilding: Mutex<()>,
    pub endpoints: HashMap<String, String>,
    pub client_cert: ArcSwapOption<pingora::utils::tls::CertKey>,
    pub wake: tokio::sync::Notify,
    pub interval: Duration,
    /// Bumped by every change of what discovery and OpenAPI are built from (the table, a
    /// backend's availability, resources or OpenAPI, the upstream's discovery or OpenAPI).
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct Router {
    shared: Arc<Shared>,
    /// The upstream apiserver, when configured.
    upstream: Option<Arc<upstream::Delegate>>,
    /// The resources frontdoor serves itself.
    local: Arc<ArcSwap<Own>>,
    /// Discovery and OpenAPI as last built.
    merged: Arc<Merged>,
}

/// Resource names frontdoor serves, by group, then version.
type LocalResources = FxHashMap<String, FxHashMap<String, FxHashSet<String>>>;

/// Versions by group.
pub type GroupVersions = FxHashMap<String, FxHashSet<String>>;

/// Whether a backend's APIService takes the group-version, in routing, discovery and OpenAPI
/// alike: never one frontdoor serves itself (the store's built-in resources, the review APIs,
/// and the aggregator's own apiregistration.k8s.io: kube has a local APIService for each of its
/// group-versions, so there an APIService claiming one cannot even be created, and one that
/// claimed apiregistration.k8s.io would route the APIServices' own management, their removal
/// included, away); a CRD's, when an APIService names a backend for it (kube's
/// autoregistration leaves an APIService it did not make).
/// `claimed`: the table's APIService for it, if any.
fn backend_takes(claimed: Option<&Backend>, builtin: &GroupVersions, group: &str, version: &str) -> bool {
    claimed.is_some_and(|b| !b.is_local())
        && group != "apiregistration.k8s.io"
        && !builtin.get(group).is_some_and(|vs| vs.contains(version))
}

/// What frontdoor serves itself.
#[derive(Default)]
struct Own {
    /// By group and version: never sent to the upstream. Nested so that a request's lookup
    /// borrows its RequestInfo's strings instead of copying.
    by_gv: LocalResources,
    /// The group-versions of the resources no CustomResourceDefinition made: no APIService
    /// takes these to a backend.
    builtin: GroupVersions,
    resources: Vec<crate::api::ApiResource>,
    /// The custom resources' schemas (CustomResourceDefinitions'), for OpenAPI.
    custom: Arc<crate::store::openapi::CustomSchemas>,
    /// The secure port's address, as clients should use it (legacy `/api`).
    address: String,
}

/// Discovery and OpenAPI, merged from every source, each built once per change of them (the
/// sources' generation) when first asked for, and served as bytes.
#[derive(Default)]
struct Merged {
    discovery: Slot<discovery::Cached>,
    openapi: Slot<openapi::Cached>,
}

/// One merged value as last built, and the lock its one build at a time holds.
struct Slot<T> {
    built: ArcSwapOption<Built<T>>,
    building: Mutex<()>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot { built: ArcSwapOption::empty(), building: Mutex::new(()) }
    }
}

/// A value built from the sources of one generation.
pub struct Built<T> {
    generation: u64,
    pub value: T,
}

/// `--service-endpoint` values: `namespace/name:port=host:port`.
fn parse_endpoints(values: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for v in values {
        let (key, addr) = v
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--service-endpoint {v:?}: expected NAMESPACE/NAME:PORT=HOST:PORT"))?;
        let (ns_name, port) = key
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("--service-endpoint {v:?}: expected NAMESPACE/NAME:PORT=HOST:PORT"))?;
        if !ns_name.contains('/')
            || port.parse::<u16>().is_err()
            || addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none()
        {
            anyhow::bail!("--service-endpoint {v:?}: expected NAMESPACE/NAME:PORT=HOST:PORT");
        }
        out.insert(key.to_string(), addr.to_string());
    }
    Ok(out)
}

/// Reads the proxy client cert and key into pingora's form.
fn load_client_cert(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<pingora::utils::tls::CertKey> {
    let chain = crate::tls::load_certs(cert)?;
    let key_der = crate::tls::load_key(key)?;
    for c in &chain {
        x509_parser::parse_x509_certificate(c.as_ref()).map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    }
    Ok(pingora::utils::tls::CertKey::new(
        chain.into_iter().map(|c| c.as_ref().to_vec()).collect(),
        key_der.secret_der().to_vec(),
    ))
}

impl Router {
    /// Builds the APIService table from its files (defaults filled by `ServeArgs::complete`)
    /// and starts the reload watchers and the availability checks.
    pub fn new(p: &ProxyArgs) -> anyhow::Result<Self> {
        availability::register_metrics();
        let endpoints = parse_endpoints(&p.service_endpoint)?;
        let (cert, key) = match (&p.proxy_client_cert_file, &p.proxy_client_key_file) {
            (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
            (None, None) => (None, None),
            _ => anyhow::bail!("--proxy-client-cert-file and --proxy-client-key-file must be given together"),
        };
        let client_cert = ArcSwapOption::empty();
        if let (Some(c), Some(k)) = (&cert, &key) {
            // on embedded defaults the dev PKI is generated just before; a missing pair is an error
            client_cert.store(Some(Arc::new(load_client_cert(c, k)?)));
        }
        let files: Vec<PathBuf> = p.apiservices_file.clone().into_iter().collect();
        let from_files = apiservice::load(&files)?;
        let shared = Arc::new(Shared {
            table: ArcSwap::from_pointee(Table::default()),
            from_files: Mutex::new(from_files),
            from_store: Mutex::new(Vec::new()),
            rebuilding: Mutex::new(()),
            endpoints,
            client_cert,
            wake: tokio::sync::Notify::new(),
            interval: p.apiservice_check_interval.max(Duration::from_millis(100)),
            generation: Default::default(),
        });
        shared.rebuild();
        {
            let s = shared.clone();
            let f = files.clone();
            crate::reload::watch("apiservices", files, move || {
                // a file that does not load keeps its previous version
                *s.from_files.lock().unwrap() = apiservice::load(&f)?;
                s.rebuild();
                Ok(())
            });
        }
        if let (Some(c), Some(k)) = (cert, key) {
            let s = shared.clone();
            crate::reload::watch("proxy-client-cert", vec![c.clone(), k.clone()], move || {
                s.client_cert.store(Some(Arc::new(load_client_cert(&c, &k)?)));
                s.wake.notify_one();
                Ok(())
            });
        }
        availability::spawn(shared.clone());
        let upstream = upstream::Delegate::new(&p.upstream)?.map(Arc::new);
        if let Some(d) = &upstream {
            upstream::spawn(shared.clone(), d.clone());
        }
        Ok(Router { shared, upstream, local: Default::default(), merged: Default::default() })
    }

    /// The upstream apiserver, when configured.
    pub fn upstream(&self) -> Option<&Arc<upstream::Delegate>> {
        self.upstream.as_ref()
    }

    /// The resources frontdoor serves itself (the store's and the review APIs): requests for
    /// them never go to the upstream apiserver. `address` is the secure port's, as clients
    /// should use it.
    pub fn set_local_resources(
        &self,
        resources: &[crate::api::ApiResource],
        custom: Arc<crate::store::openapi::CustomSchemas>,
        address: &str,
    ) {
        let mut set = LocalResources::default();
        let mut builtin = GroupVersions::default();
        for r in resources {
            let name = r.name.split('/').next().unwrap_or_default();
            set.entry(r.group.clone()).or_default().entry(r.version.clone()).or_default().insert(name.to_string());
            if !custom.kinds.iter().any(|(g, v, k, _)| (g, v, k) == (&r.group, &r.version, &r.kind)) {
                builtin.entry(r.group.clone()).or_default().insert(r.version.clone());
            }
        }
        let own = Own { by_gv: set, builtin, resources: resources.to_vec(), custom, address: address.to_string() };
        self.local.store(Arc::new(own));
        self.shared.changed();
    }

    /// `slot`'s value, rebuilt by `build` only after a source changed (one build at a time).
    fn current<T>(&self, slot: &Slot<T>, build: impl FnOnce(&Own, &Table) -> T) -> Arc<Built<T>> {
        let fresh = |b: &Option<Arc<Built<T>>>| {
            b.as_ref().filter(|b| b.generation == self.shared.generation.load(Ordering::Acquire)).cloned()
        };
        if let Some(b) = fresh(&slot.built.load_full()) {
            return b;
        }
        let _one = slot.building.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = fresh(&slot.built.load_full()) {
            return b;
        }
        // read before the sources: a change during the build makes the next call build again
        let generation = self.shared.generation.load(Ordering::Acquire);
        let built = Arc::new(Built { generation, value: build(&self.local.load(), &self.shared.table.load()) });
        slot.built.store(Some(built.clone()));
        built
    }

    /// Discovery merged from frontdoor's own resources, the available backends' and the
    /// upstream's, rebuilt only after one of them changed.
    pub fn discovery(&self) -> Arc<Built<discovery::Cached>> {
        self.current(&self.merged.discovery, |own, table| {
            let upstream = self.upstream.as_ref().and_then(|d| d.discovery.load_full());
            discovery::Cached::build(&discovery::Sources {
                table,
                local: &own.resources,
                builtin: &own.builtin,
                address: &own.address,
                upstream: upstream.as_deref().map(|v| v.as_slice()),
            })
        })
    }

    /// Whether a request names a resource served here or by a routed server (a down
    /// backend's as it last listed them): what the request metrics may label it with.
    pub fn lists(&self, info: &RequestInfo) -> bool {
        let d = self.discovery();
        d.value.lists(info.api_group(), info.api_version(), info.resource(), info.subresource())
    }

    /// OpenAPI merged from frontdoor's own documents, the available backends' (an unavailable
    /// one's group-version is left out, as in discovery) and the upstream's, rebuilt only after
    /// one of them changed.
    pub fn openapi(&self) -> Arc<Built<openapi::Cached>> {
        self.current(&self.merged.openapi, |own, table| {
            let upstream = self.upstream.as_ref().map(|d| d.openapi.load_full());
            let backends: Vec<openapi::BackendDocs> = table
                .services
                .iter()
                .filter(|b| !b.is_local())
                .map(|b| openapi::BackendDocs {
                    gv: openapi::gv_name(&b.spec.group, &b.spec.version),
                    available: b.available(),
                    docs: b.state.openapi.load_full(),
                })
                .collect();
            // a CRD's group-version that a backend's APIService takes is the backend's document
            let here: Vec<crate::api::ApiResource> = own
                .resources
                .iter()
                .filter(|r| {
                    !backend_takes(table.get(&r.group, &r.version).map(|b| &**b), &own.builtin, &r.group, &r.version)
                })
                .cloned()
                .collect();
            openapi::build(&crate::store::openapi::documents(&here, &own.custom), upstream.as_deref(), &backends)
        })
    }

    /// The current table (a snapshot).
    pub fn table(&self) -> Arc<Table> {
        self.shared.table.load_full()
    }

    /// Decides the route: a backend's group/version (and everything under it) is proxied,
    /// everything else is local.
    pub fn route(&self, info: &RequestInfo) -> Route {
        let table = self.shared.table.load();
        let gv = if info.is_resource_request {
            Some((info.api_group(), info.api_version()))
        } else {
            group_version_of_path(info.path())
        };
        // an OpenAPI v3 group-version document is served by whoever serves the group-version
        let openapi_gv = if info.is_resource_request { None } else { openapi::v3_group_version(info.path()) };
        let gv = match openapi_gv {
            Some(doc) => group_version_of_path(doc),
            None => gv,
        };
        if openapi_gv.is_some_and(|doc| self.openapi().value.has_v3(doc)) {
            return Route::Local;
        }
        let claimed = gv.and_then(|(g, v)| table.get(g, v).map(|b| (g, v, b)));
        // a local APIService (no service) is served where kube-aggregator's local delegate
        // serves it: here, or by the upstream apiserver when that is the delegate
        if let Some((g, v, b)) = claimed {
            if backend_takes(Some(b), &self.local.load().builtin, g, v) {
                return Route::Backend(b.clone());
            }
        }
        let Some(up) = &self.upstream else { return Route::Local };
        let to_upstream = if info.is_resource_request {
            let local = self.local.load();
            let served = local.by_gv.get(info.api_group()).and_then(|vs| vs.get(info.api_version()));
            !served.is_some_and(|resources| resources.contains(info.resource()))
        } else if let (Some(_), Some((g, v))) = (openapi_gv, gv) {
            !self.local.load().by_gv.get(g).is_some_and(|vs| vs.contains_key(v))
        } else {
            !served_locally(info.path())
        };
        if to_upstream {
            Route::Upstream(up.clone())
        } else {
            Route::Local
        }
    }

    /// APIService objects from the store, merged with --apiservices-file (a store object
    /// replaces a file's of the same name). An object the table cannot take is left out, and
    /// returned with why, while the others apply: one bad object, from whatever wrote it,
    /// never holds back later changes (a deletion included).
    pub fn set_dynamic_apiservices(&self, objects: Vec<serde_json::Value>) -> Vec<(String, String)> {
        let mut skipped = Vec::new();
        let mut parsed = Vec::new();
        for o in objects {
            let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
            match ApiService::from_value(o) {
                Ok(a) => parsed.push(a),
                Err(e) => skipped.push((name, format!("{e:#}"))),
            }
        }
        *self.shared.from_store.lock().unwrap() = parsed;
        self.shared.rebuild();
        skipped
    }

    /// The status block of an APIService (its `Available` condition), for the store's
    /// status subresource; None for an APIService not in the table.
    pub fn apiservice_status(&self, name: &str) -> Option<serde_json::Value> {
        let table = self.shared.table.load();
        let b = table.services.iter().find(|b| b.spec.name == name)?;
        let c = if b.is_local() { availability::Condition::local() } else { b.state.condition.lock().unwrap().clone() };
        Some(serde_json::json!({"conditions": [c.to_json()]}))
    }
}

/// Non-resource paths frontdoor answers itself in front of an upstream apiserver: its health
/// and metrics, the merged discovery and OpenAPI, `/version` (the upstream's, cached) and its
/// debug endpoints. Every other non-resource path (`/logs`, `/.well-known/...`,
/// `/openid/v1/jwks`, ...) is the upstream's.
fn served_locally(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    let depth = path.trim_matches('/').split('/').count();
    match first {
        "healthz" | "livez" | "readyz" | "metrics" | "version" | "debug" => true,
        // the merged documents; a group-version document not cached here goes to its owner
        "openapi" => matches!(path.trim_end_matches('/'), "/openapi/v2" | "/openapi/v3"),
        // /api, /api/v1; /apis, /apis/<group>, /apis/<group>/<version>
        "api" => depth <= 2,
        "apis" => depth <= 3,
        _ => false,
    }
}

/// `/api/<v>...` → ("", v); `/apis/<g>/<v>...` → (g, v).
fn group_version_of_path(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("api"), Some(v), _) if !v.is_empty() => Some(("", v)),
        (Some("apis"), Some(g), Some(v)) if !g.is_empty() && !v.is_empty() => Some((g, v)),
        _ => None,
    }
}

impl Shared {
    /// Rebuilds the table from files and store objects, keeping each backend's live state
    /// while its spec is unchanged, and swaps it in whole.
    fn rebuild(&self) {
        let _one_at_a_time = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let mut merged: Vec<ApiService> = self.from_files.lock().unwrap().clone();
        for s in self.from_store.lock().unwrap().iter() {
            merged.retain(|m| m.name != s.name);
            merged.push(s.clone());
        }
        let old = self.table.load();
        let mut table = Table::default();
        for spec in merged {
            let state = old
                .services
                .iter()
                .find(|b| b.spec == spec)
                .map(|b| b.state.clone())
                .unwrap_or_else(|| Arc::new(BackendState::new(&spec)));
            let b = Arc::new(Backend { spec, state });
            table.by_gv.entry(b.spec.group.clone()).or_default().insert(b.spec.version.clone(), b.clone());
            table.services.push(b);
        }
        table.services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for gone in old.services.iter().filter(|o| !table.services.iter().any(|n| n.spec.name == o.spec.name)) {
            availability::forget_metrics(&gone.spec.name);
        }
        self.table.store(Arc::new(table));
        self.changed();
        self.wake.notify_one();
    }

    /// Something discovery or OpenAPI is built from changed.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Where a service is dialled: its --service-endpoint, else its cluster DNS name.
    pub fn endpoint_of(&self, svc: &apiservice::ServiceRef) -> (String, bool) {
        match self.endpoints.get(&svc.key()) {
            Some(a) => (a.clone(), true),
            None => (format!("{}:{}", svc.server_name(), svc.port), false),
        }
    }
}

impl BackendState {
    fn new(spec: &ApiService) -> Self {
        let s = BackendState::default();
        *s.condition.lock().unwrap() = availability::Condition::unchecked(spec);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let args = crate::config::parse_args::<ProxyArgs>(&["--apiservice-check-interval", "100ms"]).unwrap();
        Router::new(&args).unwrap()
    }

    fn object(name: &str, group: &str, service: bool) -> serde_json::Value {
        let mut spec =
            serde_json::json!({"group": group, "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 10});
        if service {
            spec["service"] = serde_json::json!({"namespace": "ns", "name": "nowhere", "port": 1});
            spec["insecureSkipTLSVerify"] = true.into();
        }
        serde_json::json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn dynamic_apiservices_and_status() {
        let r = router();
        r.set_dynamic_apiservices(vec![
            object("v1.local.io", "local.io", false),
            object("v1.remote.io", "remote.io", true),
        ]);
        let local = r.apiservice_status("v1.local.io").unwrap();
        assert_eq!(local["conditions"][0]["reason"], "Local");
        assert_eq!(local["conditions"][0]["status"], "True");
        assert!(r.table().get("remote.io", "v1").is_some_and(|b| !b.is_local()));
        // the prober cannot resolve nowhere.ns.svc: the backend goes unavailable by itself
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let st = r.apiservice_status("v1.remote.io").unwrap();
            if st["conditions"][0]["status"] == "False" {
                assert_eq!(st["conditions"][0]["type"], "Available");
                assert!(st["conditions"][0]["lastTransitionTime"].is_string());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{st}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // a bad object is left out alone: the others apply, a deletion of one of them included
        let skipped = r.set_dynamic_apiservices(vec![
            object("wrong-name", "x.io", false),
            object("v1.local.io", "local.io", false),
        ]);
        assert_eq!(skipped.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["wrong-name"]);
        assert!(r.apiservice_status("v1.local.io").is_some());
        assert!(r.apiservice_status("v1.remote.io").is_none(), "the deletion beside the bad object applied");
        assert!(r.apiservice_status("wrong-name").is_none());
        assert!(r.set_dynamic_apiservices(vec![]).is_empty());
        assert!(r.apiservice_status("v1.local.io").is_none());
    }

    /// The files' reload and the store's watcher rebuilding at the same moment: the table ends
    /// with the latest of both, whichever rebuild stores last.
    #[test]
    fn concurrent_rebuilds_keep_the_latest_of_both_sources() {
        let r = router();
        for round in 0..200 {
            let (file, stored) = (format!("f{}.io", round % 2), format!("s{}.io", round % 2));
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|t| {
                t.spawn(|| {
                    let parsed = ApiService::from_value(object(&format!("v1.{file}"), &file, false)).unwrap();
                    barrier.wait();
                    *r.shared.from_files.lock().unwrap() = vec![parsed];
                    r.shared.rebuild();
                });
                t.spawn(|| {
                    barrier.wait();
                    r.set_dynamic_apiservices(vec![object(&format!("v1.{stored}"), &stored, false)]);
                });
            });
            let table = r.table();
            let names: Vec<&str> = table.services.iter().map(|b| b.spec.name.as_str()).collect();
            assert_eq!(names, vec![format!("v1.{file}"), format!("v1.{stored}")], "round {round}");
        }
    }

    #[test]
    fn upstream_gets_what_no_one_claims() {
        let args = crate::config::parse_args::<ProxyArgs>(&["--upstream-apiserver", "https://127.0.0.1:1"]).unwrap();
        let r = Router::new(&args).unwrap();
        let local: Vec<crate::api::ApiResource> = crate::store::resources::defaults()
            .iter()
            .filter(|d| matches!(d.group.as_str(), "apiregistration.k8s.io" | "rbac.authorization.k8s.io"))
            .flat_map(|d| d.api_resources())
            .collect();
        r.set_local_resources(&local, Default::default(), "127.0.0.1:6443");
        // APIServices for what frontdoor serves itself take nothing: the aggregator's own group
        // (whose takeover would route APIServices' management, their removal too, away) and
        // the store's groups
        r.set_dynamic_apiservices(vec![
            object("v1.remote.io", "remote.io", true),
            object("v1.apiregistration.k8s.io", "apiregistration.k8s.io", true),
            object("v1.rbac.authorization.k8s.io", "rbac.authorization.k8s.io", true),
        ]);
        let route = |path: &str| match r.route(&RequestInfo::resolve("GET", path, None).unwrap()) {
            Route::Upstream(_) => "upstream",
            Route::Backend(_) => "backend",
            Route::Local => "local",
            Route::None => "none",
        };
        for (path, want) in [
            ("/api/v1/namespaces/default/configmaps", "upstream"),
            ("/api/v1/namespaces/default/pods/p/log", "upstream"),
            ("/apis/apiregistration.k8s.io/v1/apiservices", "local"),
            ("/apis/apiregistration.k8s.io/v1/apiservices/x/status", "local"),
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles", "local"),
            ("/apis/remote.io/v1/things", "backend"),
            ("/apis/nowhere.io/v1/things", "upstream"),
            ("/api", "local"),
            ("/api/v1", "local"),
            ("/apis", "local"),
            ("/apis/apps", "local"),
            ("/apis/apps/v1", "local"),
            ("/healthz", "local"),
            ("/readyz/upstream-apiserver", "local"),
            ("/version", "local"),
            ("/metrics", "local"),
            ("/openapi/v3", "local"),
            ("/openapi/v3/apis/apiregistration.k8s.io/v1", "local"),
            ("/openapi/v3/api/v1", "upstream"),
            ("/openapi/v3/apis/remote.io/v1", "backend"),
            ("/openapi/v2", "local"),
            ("/logs/", "upstream"),
            ("/.well-known/openid-configuration", "upstream"),
            ("/", "upstream"),
        ] {
            assert_eq!(route(path), want, "{path}");
        }
    }

    #[test]
    fn endpoints_parse() {
        let m = parse_endpoints(&["wardle/api:443=127.0.0.1:8443".into()]).unwrap();
        assert_eq!(m["wardle/api:443"], "127.0.0.1:8443");
        assert!(parse_endpoints(&["wardle/api=127.0.0.1:8443".into()]).is_err());
        assert!(parse_endpoints(&["api:443=127.0.0.1:8443".into()]).is_err());
        assert!(parse_endpoints(&["a/api:443=127.0.0.1".into()]).is_err());
    }

    #[test]
    fn paths_to_group_versions() {
        assert_eq!(group_version_of_path("/apis/g.io/v1"), Some(("g.io", "v1")));
        assert_eq!(group_version_of_path("/apis/g.io/v1/things"), Some(("g.io", "v1")));
        assert_eq!(group_version_of_path("/api/v1"), Some(("", "v1")));
        assert_eq!(group_version_of_path("/apis/g.io"), None);
        assert_eq!(group_version_of_path("/apis"), None);
        assert_eq!(group_version_of_path("/healthz"), None);
    }
}
