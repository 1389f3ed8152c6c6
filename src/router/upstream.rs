//! The upstream apiserver (`--upstream-apiserver`): kube-aggregator's delegate. Every request
//! that no APIService and no local resource claims is proxied there, the core group included,
//! through the same pingora upstream phases as backends (streams and upgrades pass through).
//! A refresher keeps its discovery (aggregated, so one request per root; legacy, one per
//! group-version, from an apiserver without it), its `/version`, its OpenAPI (conditional GETs,
//! see `openapi::refresh`) and its availability, and tells the router when what it merges
//! changed; while it is down its routes answer 503 at once and `/readyz` fails its
//! `upstream-apiserver` check, and frontdoor's own groups keep working.
//!
//! The upstream learns who the user is in one of two ways (`UpstreamIdentity`): request-header
//! (X-Remote-* with the proxy client cert, as kube-aggregator) or impersonation (frontdoor's
//! own credential from a kubeconfig plus Impersonate-*, as kube-oidc-proxy and Pinniped's
//! impersonation proxy do, for clusters whose apiserver flags cannot be changed).

use super::availability::POOL_IDLE;
use super::upstream_tls::{Trust, UpstreamConnector, UpstreamTls};
use super::Shared;
use crate::kubeconfig::Kubeconfig;
use arc_swap::{ArcSwap, ArcSwapOption};
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::upstreams::peer::H1UpgradePolicy;
use serde_json::{json, Value};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Connector = pingora::connectors::http::Connector<UpstreamConnector>;

/// The user frontdoor's own calls to the upstream act as in request-header mode (discovery,
/// version, OpenAPI, reviews); the upstream's RBAC grants it what it needs.
pub const FRONTDOOR_USER: &str = "system:frontdoor";
/// How long one refresh call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// What the refresher asks for at /api and /apis: aggregated discovery, v2 then v2beta1.
const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/// How the upstream learns the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamIdentity {
    /// X-Remote-User/Uid/Group/Extra-* with the proxy client cert (the upstream trusts
    /// frontdoor's front-proxy CA through --requestheader-client-ca-file).
    RequestHeader,
    /// frontdoor's own credential (--upstream-apiserver-kubeconfig) with
    /// Impersonate-User/Uid/Group/Extra-*.
    Impersonation,
}

/// The upstream apiserver's flags (part of the proxy group).
#[derive(clap::Args, Debug, Clone)]
pub struct UpstreamArgs {
    /// URL of an existing apiserver that serves every request no APIService and no local
    /// resource claims (the core group included), as kube-aggregator hands them to its delegate.
    /// Default: the server of --upstream-apiserver-kubeconfig.
    #[arg(long, value_name = "URL")]
    pub upstream_apiserver: Option<String>,

    /// CA bundle verifying the upstream apiserver's serving certificate. Default: the
    /// kubeconfig's certificate authority, else the system roots.
    #[arg(long, value_name = "FILE")]
    pub upstream_apiserver_ca_file: Option<PathBuf>,

    /// kubeconfig with frontdoor's own credential at the upstream (token, token file or client
    /// certificate). Selects impersonation mode unless --upstream-apiserver-identity says
    /// otherwise. Re-read on every refresh, so a rotated token file is picked up.
    #[arg(long, value_name = "FILE")]
    pub upstream_apiserver_kubeconfig: Option<PathBuf>,

    /// How the upstream learns the user: request-header (default without a kubeconfig) or
    /// impersonation (default with one).
    #[arg(long, value_enum, value_name = "MODE")]
    pub upstream_apiserver_identity: Option<UpstreamIdentity>,

    /// How often the upstream's discovery, version and OpenAPI documents are refreshed
    /// (conditional GETs: only what changed is fetched again; a CRD created upstream appears
    /// within this time) and its availability checked.
    #[arg(long, default_value = "10s", value_parser = crate::api::duration::parse_duration)]
    pub upstream_apiserver_refresh_interval: Duration,

    /// Review a bearer token no local authenticator recognises at the upstream apiserver
    /// (TokenReview, cached as --authentication-token-webhook-cache-ttl says), so the
    /// upstream's service-account tokens work through frontdoor. false: only frontdoor's own
    /// authenticators decide.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub upstream_apiserver_token_review: bool,
}

impl Default for UpstreamArgs {
    fn default() -> Self {
        UpstreamArgs {
            upstream_apiserver: None,
            upstream_apiserver_ca_file: None,
            upstream_apiserver_kubeconfig: None,
            upstream_apiserver_identity: None,
            upstream_apiserver_refresh_interval: Duration::from_secs(10),
            upstream_apiserver_token_review: true,
        }
    }
}

impl UpstreamArgs {
    pub fn enabled(&self) -> bool {
        self.upstream_apiserver.is_some() || self.upstream_apiserver_kubeconfig.is_some()
    }
}

/// One group of the upstream's discovery, versions in its preference order, each with its
/// resources as APIResource objects (the legacy discovery form the merge works on).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamGroup {
    pub name: String,
    pub versions: Vec<(String, Vec<Value>)>,
}

/// frontdoor's credential at the upstream (impersonation mode), never printed.
#[derive(Default)]
struct Credential {
    authorization: Option<http::HeaderValue>,
    client_cert: Option<Arc<pingora::utils::tls::CertKey>>,
}

/// The upstream apiserver: where it is, how it is called, and what it last said.
pub struct Delegate {
    /// The URL as configured (messages).
    pub url: String,
    /// `host:port`, resolved on every refresh.
    authority: String,
    /// The URL's path, without a trailing `/`, put before every proxied path.
    pub prefix: String,
    sni: String,
    /// The `Host` of proxied requests.
    pub host: http::HeaderValue,
    /// `--upstream-apiserver-ca-file` (or the kubeconfig's CA), DER; None: the platform's roots.
    ca: Option<Vec<Vec<u8>>>,
    pub identity: UpstreamIdentity,
    kubeconfig: Option<PathBuf>,
    credential: ArcSwap<Credential>,
    /// The peer the proxy dials with the TLS config it needs (one value, swapped at once),
    /// rebuilt by the refresher (address, client cert).
    pub peer: ArcSwapOption<super::Upstream>,
    pub available: AtomicBool,
    /// Why it is unavailable (the readyz check's message).
    pub reason: Mutex<String>,
    /// Its discovery, from the last good refresh (kept while it is down).
    pub discovery: ArcSwapOption<Vec<UpstreamGroup>>,
    /// Its `/version` body, from the last good refresh.
    pub version: ArcSwapOption<bytes::Bytes>,
    /// Its OpenAPI (v2 and every v3 group-version document), from the last good refresh.
    pub openapi: ArcSwap<super::openapi::Remote>,
    /// ETags of /api and /apis, for conditional refreshes.
    etags: Mutex<[Option<String>; 2]>,
    /// Whether it answered `/api` or `/apis` with legacy discovery last time (logged when it
    /// starts to).
    legacy: AtomicBool,
    pub wake: tokio::sync::Notify,
    interval: Duration,
}

impl std::fmt::Debug for Delegate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegate").field("url", &self.url).field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl Delegate {
    /// Validates the flags and reads the credential; the refresher is started by the router.
    pub fn new(a: &UpstreamArgs) -> anyhow::Result<Option<Delegate>> {
        if !a.enabled() {
            return Ok(None);
        }
        let kc = a.upstream_apiserver_kubeconfig.as_deref().map(Kubeconfig::load).transpose()?;
        let identity = a.upstream_apiserver_identity.unwrap_or(if kc.is_some() {
            UpstreamIdentity::Impersonation
        } else {
            UpstreamIdentity::RequestHeader
        });
        if identity == UpstreamIdentity::Impersonation && kc.is_none() {
            anyhow::bail!("--upstream-apiserver-identity=impersonation needs --upstream-apiserver-kubeconfig");
        }
        let url_text = match (&a.upstream_apiserver, &kc) {
            (Some(u), _) => u.clone(),
            (None, Some(k)) => k.server.clone(),
            (None, None) => unreachable!("enabled"),
        };
        let url = url::Url::parse(&url_text).map_err(|e| anyhow::anyhow!("--upstream-apiserver {url_text:?}: {e}"))?;
        if url.scheme() != "https" {
            anyhow::bail!("--upstream-apiserver {url_text:?}: only https is supported");
        }
        let host = url.host_str().ok_or_else(|| anyhow::anyhow!("--upstream-apiserver {url_text:?}: no host"))?;
        let sni = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let authority = if sni.contains(':') { format!("[{sni}]:{port}") } else { format!("{sni}:{port}") };
        let ca_pem = match (&a.upstream_apiserver_ca_file, &kc) {
            (Some(f), _) => Some(crate::reload::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?),
            (None, Some(k)) => k.ca.clone(),
            _ => None,
        };
        let ca = match ca_pem {
            None => None,
            Some(pem) => Some(super::upstream_tls::parse_cas(&pem, "--upstream-apiserver-ca-file")?),
        };
        let credential = match (&kc, identity) {
            (Some(k), UpstreamIdentity::Impersonation) => credential_of(k)?,
            _ => Credential::default(),
        };
        Ok(Some(Delegate {
            url: url_text.clone(),
            prefix: url.path().trim_end_matches('/').to_string(),
            host: http::HeaderValue::try_from(authority.clone())?,
            authority,
            sni,
            ca,
            identity,
            kubeconfig: a.upstream_apiserver_kubeconfig.clone(),
            credential: ArcSwap::from_pointee(credential),
            peer: ArcSwapOption::empty(),
            available: AtomicBool::new(false),
            reason: Mutex::new("not checked yet".into()),
            discovery: ArcSwapOption::empty(),
            version: ArcSwapOption::empty(),
            openapi: Default::default(),
            etags: Mutex::new([None, None]),
            legacy: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            interval: a.upstream_apiserver_refresh_interval.max(Duration::from_millis(100)),
        }))
    }

    pub fn available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// The `/readyz` check: fails while the upstream does not answer.
    pub fn check(&self) -> Result<(), String> {
        if self.available() {
            Ok(())
        } else {
            Err(format!("upstream apiserver {} is not available: {}", self.url, self.reason.lock().unwrap()))
        }
    }

    /// A proxied request failed to reach the upstream: it is unavailable until the refresher
    /// says otherwise (woken at once), so the next requests answer 503 without dialling.
    pub fn mark_unreachable(&self, why: String) {
        if self.available.swap(false, Ordering::AcqRel) {
            tracing::warn!(upstream = %self.url, reason = %why, "upstream apiserver unavailable");
            *self.reason.lock().unwrap() = why;
            self.wake.notify_one();
        }
    }

    /// Sets the headers that tell the upstream who the request acts as (after
    /// `strip_identity_headers` removed everything the client sent about identity).
    pub fn identify(&self, req: &mut RequestHeader, user: Option<&crate::authn::UserInfo>) -> Result<(), String> {
        match self.identity {
            UpstreamIdentity::RequestHeader => match user {
                Some(user) => super::proxy::user_headers(req, user, &super::proxy::REMOTE),
                None => Ok(()),
            },
            UpstreamIdentity::Impersonation => {
                let cred = self.credential.load();
                if let Some(a) = &cred.authorization {
                    let _ = req.insert_header(http::header::AUTHORIZATION, a.clone());
                }
                match user {
                    Some(user) => impersonation_headers(req, user),
                    None => Ok(()),
                }
            }
        }
    }

    /// frontdoor's own identity on a call it makes itself (refresh, reviews).
    fn identify_self(&self, req: &mut RequestHeader) {
        match self.identity {
            UpstreamIdentity::RequestHeader => {
                let _ = req.insert_header("X-Remote-User", FRONTDOOR_USER);
                let _ = req.insert_header("X-Remote-Group", "system:authenticated");
            }
            UpstreamIdentity::Impersonation => {
                if let Some(a) = &self.credential.load().authorization {
                    let _ = req.insert_header(http::header::AUTHORIZATION, a.clone());
                }
            }
        }
    }

    /// The path on the upstream for a request's path and query.
    pub fn upstream_path(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.prefix)
    }

    /// The peer the proxy dials, through its prebuilt TLS config (see `upstream_tls`).
    fn build_peer(
        &self,
        addr: std::net::SocketAddr,
        proxy_cert: Option<Arc<pingora::utils::tls::CertKey>>,
    ) -> anyhow::Result<(HttpPeer, Arc<UpstreamTls>)> {
        let mut peer = HttpPeer::new(addr, true, self.sni.clone());
        let client = match self.identity {
            UpstreamIdentity::RequestHeader => proxy_cert,
            UpstreamIdentity::Impersonation => self.credential.load().client_cert.clone(),
        };
        let trust = self.ca.as_deref().map_or(Trust::System, Trust::Roots);
        let tls = UpstreamTls::get(trust, client.as_deref())?;
        peer.options.http_upstream_request_policy.h1_upgrade = H1UpgradePolicy::Preserve;
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.idle_timeout = Some(POOL_IDLE);
        // never pooled with an APIService backend at the same address
        tls.apply(&mut peer, 0x5550_5354_5245_414d);
        Ok((peer, tls))
    }
}

/// The upstream as frontdoor calls it itself for reviews (TokenReview, SubjectAccessReview):
/// impersonation mode with the kubeconfig's credential; request-header mode with the proxy
/// client cert and X-Remote-User `system:frontdoor`. None without an upstream.
pub fn review_client(
    a: &UpstreamArgs,
    proxy_cert: Option<(&std::path::Path, &std::path::Path)>,
) -> anyhow::Result<Option<crate::kubeconfig::ApiserverClient>> {
    let Some(d) = Delegate::new(a)? else { return Ok(None) };
    let ca = a.upstream_apiserver_ca_file.as_deref().map(crate::reload::read).transpose()?;
    let (base, headers) = match d.identity {
        UpstreamIdentity::Impersonation => {
            let path = a.upstream_apiserver_kubeconfig.as_deref().expect("checked by Delegate::new");
            let mut kc = Kubeconfig::load(path)?;
            kc.server = d.url.clone();
            if ca.is_some() {
                kc.ca = ca;
            }
            (kc, Vec::new())
        }
        UpstreamIdentity::RequestHeader => {
            let (cert, key) = proxy_cert.ok_or_else(|| {
                anyhow::anyhow!("--upstream-apiserver in request-header mode needs --proxy-client-cert-file and --proxy-client-key-file")
            })?;
            let kc = Kubeconfig {
                server: d.url.clone(),
                ca,
                client_cert: Some(crate::reload::read(cert)?),
                client_key: Some(crate::reload::read(key)?),
                ..Default::default()
            };
            let headers = vec![
                ("X-Remote-User".to_string(), FRONTDOOR_USER.to_string()),
                ("X-Remote-Group".to_string(), "system:authenticated".to_string()),
            ];
            (kc, headers)
        }
    };
    Ok(Some(crate::kubeconfig::ApiserverClient { base, headers }))
}

/// Impersonate-User, -Uid, -Group (one per group) and -Extra-<key> (client-go's escaping), as
/// client-go's impersonating round tripper sends them.
pub fn impersonation_headers(req: &mut RequestHeader, user: &crate::authn::UserInfo) -> Result<(), String> {
    super::proxy::user_headers(req, user, &super::proxy::IMPERSONATE)
}

fn credential_of(k: &Kubeconfig) -> anyhow::Result<Credential> {
    let authorization = match &k.token {
        Some(t) => Some(http::HeaderValue::try_from(format!("Bearer {t}"))?).map(|mut v| {
            v.set_sensitive(true);
            v
        }),
        None => None,
    };
    let client_cert = match (&k.client_cert, &k.client_key) {
        (Some(c), Some(key)) => {
            let chain: Vec<Vec<u8>> = rustls_pemfile::certs(&mut c.as_slice())
                .map(|c| c.map(|c| c.as_ref().to_vec()))
                .collect::<Result<_, _>>()?;
            let key = rustls_pemfile::private_key(&mut key.as_slice())?
                .ok_or_else(|| anyhow::anyhow!("client-key: no private key"))?;
            Some(Arc::new(pingora::utils::tls::CertKey::new(chain, key.secret_der().to_vec())))
        }
        _ => None,
    };
    if authorization.is_none() && client_cert.is_none() {
        anyhow::bail!("--upstream-apiserver-kubeconfig: the user has neither a token nor a client certificate");
    }
    Ok(Credential { authorization, client_cert })
}

/// An aggregated discovery entry (apidiscovery.k8s.io APIResourceDiscovery) as the
/// APIResource objects of legacy discovery, subresources as `resource/sub` entries.
fn legacy_resources(entries: &[Value]) -> Vec<Value> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut out = Vec::new();
    for e in entries {
        let kind = e.get("responseKind").cloned().unwrap_or_default();
        let namespaced = s(e, "scope") == "Namespaced";
        let name = s(e, "resource");
        let mut r = json!({
            "name": name, "singularName": s(e, "singularResource"), "namespaced": namespaced,
            "kind": s(&kind, "kind"), "verbs": e.get("verbs").cloned().unwrap_or(json!([])),
        });
        for k in ["group", "version"] {
            if !s(&kind, k).is_empty() {
                r[k] = s(&kind, k).into();
            }
        }
        for k in ["shortNames", "categories"] {
            if let Some(v) = e.get(k).filter(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
                r[k] = v.clone();
            }
        }
        out.push(r);
        for sub in e.get("subresources").and_then(Value::as_array).into_iter().flatten() {
            let kind = sub.get("responseKind").cloned().unwrap_or_default();
            let mut r = json!({
                "name": format!("{name}/{}", s(sub, "subresource")), "singularName": "", "namespaced": namespaced,
                "kind": s(&kind, "kind"), "verbs": sub.get("verbs").cloned().unwrap_or(json!([])),
            });
            for k in ["group", "version"] {
                if !s(&kind, k).is_empty() {
                    r[k] = s(&kind, k).into();
                }
            }
            out.push(r);
        }
    }
    out
}

/// The groups of an APIGroupDiscoveryList, in its order.
pub fn groups_of(list: &Value) -> anyhow::Result<Vec<UpstreamGroup>> {
    let kind = list.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "APIGroupDiscoveryList" {
        anyhow::bail!("expected an APIGroupDiscoveryList, got kind {kind:?}");
    }
    let mut out = Vec::new();
    for item in list.get("items").and_then(Value::as_array).into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let versions = item
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| {
                let resources = v.get("resources").and_then(Value::as_array).map(|a| legacy_resources(a));
                (v["version"].as_str().unwrap_or_default().to_string(), resources.unwrap_or_default())
            })
            .filter(|(v, _)| !v.is_empty())
            .collect();
        out.push(UpstreamGroup { name, versions });
    }
    Ok(out)
}

/// A GET frontdoor makes itself: (status, body).
pub async fn get(
    d: &Delegate,
    connector: &Connector,
    peer: &HttpPeer,
    path: &str,
    accept: &str,
    etag: Option<&str>,
) -> Result<(u16, bytes::Bytes, Option<String>), String> {
    let call = async {
        let mut req = RequestHeader::build("GET", d.upstream_path(path).as_bytes(), None).map_err(|e| e.to_string())?;
        let _ = req.insert_header(http::header::HOST, d.host.clone());
        let _ = req.insert_header("Accept", accept);
        let _ = req.insert_header("User-Agent", "frontdoor-upstream-refresh");
        if let Some(t) = etag {
            let _ = req.insert_header("If-None-Match", t);
        }
        d.identify_self(&mut req);
        super::availability::exchange(connector, peer, req, path, None).await
    };
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => r,
        Err(_) => Err(format!("{path}: timed out after {CALL_TIMEOUT:?}")),
    }
}

/// The upstream's OpenAPI documents, fetched as frontdoor itself.
struct OpenApiFetch<'a> {
    d: &'a Delegate,
    connector: &'a Connector,
    peer: &'a HttpPeer,
}

impl super::openapi::Fetch for OpenApiFetch<'_> {
    async fn get(&self, path_and_query: &str, etag: Option<&str>) -> super::openapi::Fetched {
        get(self.d, self.connector, self.peer, path_and_query, "application/json", etag).await
    }
}

/// The groups of a legacy discovery root (`/api`'s APIVersions, `/apis`' APIGroupList), each
/// version's resources from its APIResourceList: what an apiserver without aggregated
/// discovery serves. A version whose list fails is left out, as kube's discovery client does.
async fn legacy_groups(
    d: &Delegate,
    connector: &Connector,
    peer: &HttpPeer,
    doc: &Value,
) -> Result<Vec<UpstreamGroup>, String> {
    let strs = |v: Option<&Value>, key: Option<&str>| -> Vec<String> {
        let items = v.and_then(Value::as_array).cloned().unwrap_or_default();
        let item = |x: &Value| match key {
            Some(k) => x.get(k).and_then(Value::as_str).map(str::to_string),
            None => x.as_str().map(str::to_string),
        };
        items.iter().filter_map(item).collect()
    };
    let listed: Vec<(String, Vec<String>)> = match doc.get("kind").and_then(Value::as_str) {
        Some("APIVersions") => vec![(String::new(), strs(doc.get("versions"), None))],
        Some("APIGroupList") => doc
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| Some((g.get("name")?.as_str()?.to_string(), strs(g.get("versions"), Some("version")))))
            .collect(),
        other => {
            return Err(format!("expected APIGroupDiscoveryList, APIVersions or APIGroupList, got kind {other:?}"))
        }
    };
    let mut out = Vec::new();
    for (group, versions) in listed {
        let mut got = Vec::new();
        for v in versions {
            let path = if group.is_empty() { format!("/api/{v}") } else { format!("/apis/{group}/{v}") };
            match get(d, connector, peer, &path, "application/json", None).await {
                Ok((200, body, _)) => {
                    let list: Value = serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))?;
                    got.push((v, list.get("resources").and_then(Value::as_array).cloned().unwrap_or_default()));
                }
                Ok((code, ..)) => tracing::debug!(%path, code, "upstream group-version discovery failed"),
                Err(e) => return Err(format!("{path}: {e}")),
            }
        }
        if !got.is_empty() {
            out.push(UpstreamGroup { name: group, versions: got });
        }
    }
    Ok(out)
}

/// One refresh: address, peer, credential, `/version`, `/api` and `/apis` (aggregated, else
/// legacy discovery), OpenAPI. Tells the router when something it merges changed.
async fn refresh(shared: &Shared, d: &Delegate, connector: &Connector) -> Result<(), String> {
    if let (Some(path), UpstreamIdentity::Impersonation) = (&d.kubeconfig, d.identity) {
        match Kubeconfig::load(path).and_then(|k| credential_of(&k)) {
            Ok(c) => d.credential.store(Arc::new(c)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read --upstream-apiserver-kubeconfig; keeping the previous credential")
            }
        }
    }
    let authority = d.authority.clone();
    let addr = tokio::task::spawn_blocking(move || authority.to_socket_addrs().ok().and_then(|mut a| a.next()))
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("cannot resolve {}", d.authority))?;
    let (peer, tls) = d.build_peer(addr, shared.client_cert.load_full()).map_err(|e| e.to_string())?;
    let fail = |path: &str, e: String| format!("failing or missing response from {}{path}: {e}", d.url);
    let (code, body, _) =
        get(d, connector, &peer, "/version", "application/json", None).await.map_err(|e| fail("/version", e))?;
    if code != 200 {
        return Err(fail("/version", format!("bad status {code}")));
    }
    let version: Value = serde_json::from_slice(&body).map_err(|e| fail("/version", e.to_string()))?;
    let mut groups = Vec::new();
    let cached = d.discovery.load_full();
    let mut legacy = false;
    for (i, root) in ["/api", "/apis"].into_iter().enumerate() {
        let etag = d.etags.lock().unwrap()[i].clone().filter(|_| cached.is_some());
        let (code, body, new_etag) =
            get(d, connector, &peer, root, AGGREGATED_ACCEPT, etag.as_deref()).await.map_err(|e| fail(root, e))?;
        let part: Vec<UpstreamGroup> = match code {
            304 => cached.as_deref().cloned().unwrap_or_default(),
            200 => {
                let v: Value = serde_json::from_slice(&body).map_err(|e| fail(root, e.to_string()))?;
                if v.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList") {
                    groups_of(&v).map_err(|e| fail(root, e.to_string()))?
                } else {
                    legacy = true;
                    legacy_groups(d, connector, &peer, &v).await.map_err(|e| fail(root, e))?
                }
            }
            other => return Err(fail(root, format!("bad status {other}"))),
        };
        if code == 200 {
            d.etags.lock().unwrap()[i] = new_etag;
        }
        groups.extend(part.into_iter().filter(|g| g.name.is_empty() == (i == 0)));
    }
    if d.legacy.swap(legacy, Ordering::AcqRel) != legacy && legacy {
        tracing::info!(upstream = %d.url, "the upstream apiserver has no aggregated discovery; reading its legacy discovery");
    }
    let fetch = OpenApiFetch { d, connector, peer: &peer };
    let openapi = super::openapi::refresh(&fetch, &d.openapi.load(), |_| true).await;
    d.peer.store(Some(Arc::new(super::Upstream::new(peer, tls))));
    super::availability::set_upstream_version(&version);
    d.version.store(Some(Arc::new(body)));
    let mut changed = false;
    if cached.as_deref() != Some(&groups) {
        d.discovery.store(Some(Arc::new(groups)));
        changed = true;
    }
    if let Some(next) = openapi {
        d.openapi.store(Arc::new(next));
        changed = true;
    }
    if changed {
        shared.changed();
    }
    Ok(())
}

/// Starts the refresher: every interval, or at once when a request found the upstream down.
pub fn spawn(shared: Arc<Shared>, d: Arc<Delegate>) {
    super::availability::background("upstream-apiserver", "the upstream apiserver refresher", async move {
        let connector = super::upstream_tls::http_connector();
        loop {
            let result = refresh(&shared, &d, &connector).await;
            let was = d.available.load(Ordering::Acquire);
            match result {
                Ok(()) => {
                    *d.reason.lock().unwrap() = String::new();
                    d.available.store(true, Ordering::Release);
                    if !was {
                        tracing::info!(upstream = %d.url, "upstream apiserver available");
                    }
                }
                Err(e) => {
                    if was || d.reason.lock().unwrap().as_str() != e {
                        tracing::warn!(upstream = %d.url, reason = %e, "upstream apiserver unavailable");
                    }
                    *d.reason.lock().unwrap() = e;
                    d.available.store(false, Ordering::Release);
                }
            }
            super::availability::set_upstream_metric(d.available());
            // while it is down, retry sooner (at most every second)
            let wait = if d.available() { d.interval } else { d.interval.min(Duration::from_secs(1)) };
            let _ = tokio::time::timeout(wait, d.wake.notified()).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;

    #[test]
    fn aggregated_to_legacy() {
        let list = json!({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
                {"resource": "serviceaccounts", "responseKind": {"group": "", "version": "", "kind": "ServiceAccount"},
                 "scope": "Namespaced", "singularResource": "serviceaccount", "verbs": ["get", "create"], "shortNames": ["sa"],
                 "subresources": [{"subresource": "token", "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}, "verbs": ["create"]}]}
            ]}]},
            {"metadata": {"name": "autoscaling"}, "versions": [{"version": "v2", "resources": []}, {"version": "v1", "resources": []}]}
        ]});
        let groups = groups_of(&list).unwrap();
        assert_eq!(groups.len(), 2);
        let core = &groups[0].versions[0].1;
        assert_eq!(core[0]["name"], "serviceaccounts");
        assert_eq!(core[0]["namespaced"], true);
        assert_eq!(core[0]["shortNames"], json!(["sa"]));
        assert!(core[0].get("group").is_none());
        assert_eq!(core[1]["name"], "serviceaccounts/token");
        assert_eq!(core[1]["group"], "authentication.k8s.io");
        assert_eq!(core[1]["kind"], "TokenRequest");
        let versions: Vec<&str> = groups[1].versions.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(versions, vec!["v2", "v1"], "the upstream's preference order is kept");
        assert!(groups_of(&json!({"kind": "APIGroupList"})).is_err());
    }

    #[test]
    fn impersonation_headers_name_the_whole_user() {
        let mut req = RequestHeader::build("GET", b"/api/v1/pods", None).unwrap();
        let mut user = UserInfo::new("alice", vec!["dev".into(), "system:authenticated".into()]);
        user.uid = "u-1".into();
        user.extra.insert("scopes.example.com/x y".into(), vec!["a".into(), "b".into()]);
        impersonation_headers(&mut req, &user).unwrap();
        let all = |n: &str| req.headers.get_all(n).iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(all("Impersonate-User"), vec!["alice"]);
        assert_eq!(all("Impersonate-Uid"), vec!["u-1"]);
        assert_eq!(all("Impersonate-Group"), vec!["dev", "system:authenticated"]);
        assert_eq!(all("Impersonate-Extra-scopes.example.com%2Fx%20y"), vec!["a", "b"]);
    }

    fn args(a: &[&str]) -> UpstreamArgs {
        crate::config::parse_args::<UpstreamArgs>(a).unwrap()
    }

    #[test]
    fn flags_pick_the_mode() {
        assert!(Delegate::new(&args(&[])).unwrap().is_none());
        let d = Delegate::new(&args(&["--upstream-apiserver", "https://10.0.0.1:6443/prefix/"])).unwrap().unwrap();
        assert_eq!(d.identity, UpstreamIdentity::RequestHeader);
        assert_eq!((d.authority.as_str(), d.prefix.as_str(), d.sni.as_str()), ("10.0.0.1:6443", "/prefix", "10.0.0.1"));
        assert_eq!(d.upstream_path("/api/v1/pods?watch=1"), "/prefix/api/v1/pods?watch=1");
        assert!(d.check().unwrap_err().contains("not available"));
        let e = Delegate::new(&args(&["--upstream-apiserver", "http://x"])).unwrap_err().to_string();
        assert!(e.contains("only https"), "{e}");
        let e = Delegate::new(&args(&[
            "--upstream-apiserver",
            "https://x",
            "--upstream-apiserver-identity",
            "impersonation",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs --upstream-apiserver-kubeconfig"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kc");
        std::fs::write(&kc, "clusters:\n- name: a\n  cluster: {server: 'https://[::1]:7443'}\nusers:\n- name: u\n  user: {token: s3cret}\ncontexts:\n- name: c\n  context: {cluster: a, user: u}\n").unwrap();
        let d = Delegate::new(&args(&["--upstream-apiserver-kubeconfig", kc.to_str().unwrap()])).unwrap().unwrap();
        assert_eq!(d.identity, UpstreamIdentity::Impersonation);
        assert_eq!(d.authority, "[::1]:7443");
        assert!(!format!("{d:?}").contains("s3cret"), "the credential is never printed");
        let mut req = RequestHeader::build("GET", b"/api", None).unwrap();
        d.identify(&mut req, Some(&UserInfo::new("bob", vec![]))).unwrap();
        assert_eq!(req.headers.get("Authorization").unwrap(), "Bearer s3cret");
        assert_eq!(req.headers.get("Impersonate-User").unwrap(), "bob");
        std::fs::write(&kc, "clusters:\n- name: a\n  cluster: {server: 'https://x'}\nusers:\n- name: u\n  user: {}\n")
            .unwrap();
        let e =
            Delegate::new(&args(&["--upstream-apiserver-kubeconfig", kc.to_str().unwrap()])).unwrap_err().to_string();
        assert!(e.contains("neither a token nor a client certificate"), "{e}");
    }
}
