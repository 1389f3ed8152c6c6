//! The webhook authorizer: a SubjectAccessReview POSTed over TLS to a service named in a
//! kubeconfig file, with kube's caches for allowed (default 5m) and denied (default 30s)
//! answers, a bounded timeout, and a failure policy (NoOpinion or Deny) for when the
//! webhook cannot be reached or answers badly.

use super::{Attributes, Authorizer, Decision};
use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Cached answers kept at most (expired ones are dropped first when full).
const CACHE_CAPACITY: usize = 10_000;

pub struct Options {
    pub name: String,
    pub kubeconfig: PathBuf,
    /// `v1` or `v1beta1` (authorization.k8s.io).
    pub version: String,
    /// None: allowed answers are not cached.
    pub authorized_ttl: Option<Duration>,
    /// None: other answers are not cached.
    pub unauthorized_ttl: Option<Duration>,
    pub timeout: Duration,
    /// What an error decides: NoOpinion or Deny.
    pub failure_policy: Decision,
}

pub fn parse_failure_policy(s: &str) -> anyhow::Result<Decision> {
    match s {
        "NoOpinion" => Ok(Decision::NoOpinion),
        "Deny" => Ok(Decision::Deny),
        "" => bail!("Required value"),
        other => bail!("Unsupported value: {other:?}: supported values: \"NoOpinion\", \"Deny\""),
    }
}

/// The parts of a kubeconfig a webhook client needs.
#[derive(Debug, Default, Deserialize)]
struct KubeConfig {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Context_>>,
    #[serde(default, rename = "current-context")]
    current_context: String,
}

#[derive(Debug, Default, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    #[serde(default)]
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct Context_ {
    cluster: String,
    #[serde(default)]
    user: String,
}

fn read_pem(dir: &Path, file: &Option<PathBuf>, data: &Option<String>, what: &str) -> anyhow::Result<Option<Vec<u8>>> {
    use base64::Engine;
    if let Some(d) = data {
        return Ok(Some(
            base64::engine::general_purpose::STANDARD.decode(d.trim()).map_err(|e| anyhow!("{what}-data: {e}"))?,
        ));
    }
    if let Some(f) = file {
        let p = if f.is_absolute() { f.clone() } else { dir.join(f) };
        return Ok(Some(std::fs::read(&p).with_context(|| format!("{what} {}", p.display()))?));
    }
    Ok(None)
}

struct Endpoint {
    url: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// Builds the HTTPS client from a kubeconfig: the current context's cluster and user (or
/// the first of each).
fn endpoint(path: &Path, timeout: Duration) -> anyhow::Result<Endpoint> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let kc: KubeConfig = serde_yaml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let ctx = kc.contexts.iter().find(|c| c.name == kc.current_context).or(kc.contexts.first());
    let cluster = match ctx {
        Some(c) => kc.clusters.iter().find(|x| x.name == c.value.cluster),
        None => kc.clusters.first(),
    }
    .ok_or_else(|| anyhow!("{}: no cluster", path.display()))?;
    let user = match ctx {
        Some(c) => kc.users.iter().find(|x| x.name == c.value.user),
        None => kc.users.first(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let c = &cluster.value;
    if c.server.is_empty() {
        bail!("{}: cluster {:?} has no server", path.display(), cluster.name);
    }
    let mut b = reqwest::Client::builder().use_rustls_tls().timeout(timeout).connect_timeout(timeout);
    if let Some(ca) = read_pem(dir, &c.certificate_authority, &c.certificate_authority_data, "certificate-authority")? {
        for cert in reqwest::Certificate::from_pem_bundle(&ca).context("certificate-authority")? {
            b = b.add_root_certificate(cert);
        }
        b = b.tls_built_in_root_certs(false);
    }
    if c.insecure_skip_tls_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    let mut token = None;
    if let Some(u) = user.map(|u| &u.value) {
        let cert = read_pem(dir, &u.client_certificate, &u.client_certificate_data, "client-certificate")?;
        let key = read_pem(dir, &u.client_key, &u.client_key_data, "client-key")?;
        if let (Some(mut cert), Some(key)) = (cert, key) {
            cert.push(b'\n');
            cert.extend(key);
            b = b.identity(reqwest::Identity::from_pem(&cert).context("client certificate and key")?);
        }
        token = match (&u.token, &u.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(std::fs::read_to_string(dir.join(f)).context("token-file")?.trim().to_string()),
            _ => None,
        };
    }
    Ok(Endpoint { url: c.server.clone(), token, client: b.build()? })
}

pub struct WebhookAuthorizer {
    opts: Options,
    endpoint: Endpoint,
    cache: Mutex<HashMap<String, (Instant, Decision, String)>>,
}

impl WebhookAuthorizer {
    pub fn new(opts: Options) -> anyhow::Result<Self> {
        if !matches!(opts.version.as_str(), "v1" | "v1beta1") {
            bail!("unsupported authorization webhook version {:?} (v1, v1beta1)", opts.version);
        }
        let endpoint = endpoint(&opts.kubeconfig, opts.timeout)
            .with_context(|| format!("authorization webhook {:?} kubeconfig", opts.name))?;
        Ok(WebhookAuthorizer { opts, endpoint, cache: Mutex::new(HashMap::new()) })
    }

    fn review(&self, a: &Attributes) -> Value {
        let mut spec = json!({
            "user": a.user.username,
        });
        // v1beta1 spells the groups field `group`
        let groups_key = if self.opts.version == "v1beta1" { "group" } else { "groups" };
        spec[groups_key] = json!(a.user.groups);
        if !a.user.uid.is_empty() {
            spec["uid"] = json!(a.user.uid);
        }
        if !a.user.extra.is_empty() {
            spec["extra"] = json!(a.user.extra);
        }
        if a.resource_request {
            spec["resourceAttributes"] = json!({
                "namespace": a.namespace, "verb": a.verb, "group": a.api_group, "version": a.api_version,
                "resource": a.resource, "subresource": a.subresource, "name": a.name,
            });
        } else {
            spec["nonResourceAttributes"] = json!({"path": a.path, "verb": a.verb});
        }
        json!({
            "apiVersion": format!("authorization.k8s.io/{}", self.opts.version),
            "kind": "SubjectAccessReview",
            "spec": spec,
            "status": {"allowed": false},
        })
    }

    fn cached(&self, key: &str) -> Option<(Decision, String)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).filter(|(until, _, _)| Instant::now() < *until).map(|(_, d, r)| (*d, r.clone()))
    }

    fn remember(&self, key: String, d: Decision, reason: &str) {
        let ttl = if d == Decision::Allow { self.opts.authorized_ttl } else { self.opts.unauthorized_ttl };
        let Some(ttl) = ttl else { return };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            let now = Instant::now();
            cache.retain(|_, (until, _, _)| now < *until);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now() + ttl, d, reason.to_string()));
    }

    async fn call(&self, body: &Value) -> anyhow::Result<(Decision, String)> {
        let mut req = self
            .endpoint
            .client
            .post(&self.endpoint.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json");
        if let Some(t) = &self.endpoint.token {
            req = req.bearer_auth(t);
        }
        let resp = tokio::time::timeout(self.opts.timeout, req.body(body.to_string()).send())
            .await
            .map_err(|_| anyhow!("timed out after {:?}", self.opts.timeout))??;
        let code = resp.status();
        let bytes = tokio::time::timeout(self.opts.timeout, resp.bytes())
            .await
            .map_err(|_| anyhow!("timed out reading the response"))??;
        if !code.is_success() {
            bail!("the webhook answered {code}");
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| anyhow!("malformed SubjectAccessReview: {e}"))?;
        let status = v.get("status").cloned().unwrap_or_default();
        let reason = status.get("reason").and_then(Value::as_str).unwrap_or_default().to_string();
        let d = if status.get("allowed").and_then(Value::as_bool).unwrap_or(false) {
            Decision::Allow
        } else if status.get("denied").and_then(Value::as_bool).unwrap_or(false) {
            Decision::Deny
        } else {
            Decision::NoOpinion
        };
        Ok((d, reason))
    }
}

#[async_trait::async_trait]
impl Authorizer for WebhookAuthorizer {
    async fn authorize(&self, a: &Attributes) -> (Decision, String) {
        let body = self.review(a);
        let key = body["spec"].to_string();
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let start = Instant::now();
        let name = self.opts.name.as_str();
        match self.call(&body).await {
            Ok((d, reason)) => {
                let secs = start.elapsed().as_secs_f64();
                super::metrics::WEBHOOK_EVALUATIONS.with_label_values(&[name, "success"]).inc();
                super::metrics::WEBHOOK_DURATION.with_label_values(&[name, "success"]).observe(secs);
                self.remember(key, d, &reason);
                (d, reason)
            }
            Err(e) => {
                let secs = start.elapsed().as_secs_f64();
                let result = if e.to_string().contains("timed out") { "timeout" } else { "error" };
                super::metrics::WEBHOOK_EVALUATIONS.with_label_values(&[name, result]).inc();
                super::metrics::WEBHOOK_DURATION.with_label_values(&[name, result]).observe(secs);
                if self.opts.failure_policy == Decision::NoOpinion {
                    super::metrics::WEBHOOK_FAIL_OPEN.with_label_values(&[name, result]).inc();
                }
                tracing::error!(webhook = name, error = %format!("{e:#}"), "authorization webhook failed");
                (self.opts.failure_policy, format!("authorization webhook {name:?} failed: {e:#}"))
            }
        }
    }
}

#[cfg(test)]
mod tests;
