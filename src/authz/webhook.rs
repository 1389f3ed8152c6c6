//! The webhook authorizer: a SubjectAccessReview POSTed over TLS to a service named in a
//! kubeconfig file, with kube's caches for allowed (default 5m) and denied (default 30s)
//! answers, a bounded timeout, and a failure policy (NoOpinion or Deny) for when the
//! webhook cannot be reached or answers badly.

use super::{Attributes, Authorizer, Decision};
use crate::kubeconfig::{Endpoint, Kubeconfig};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
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

/// A remembered answer: until when, the decision, its reason (shared with the requests it answers).
type Cached = (Instant, Decision, Arc<str>);

pub struct WebhookAuthorizer {
    opts: Options,
    endpoint: Endpoint,
    cache: Mutex<HashMap<String, Cached>>,
}

impl WebhookAuthorizer {
    pub fn new(opts: Options) -> anyhow::Result<Self> {
        if !matches!(opts.version.as_str(), "v1" | "v1beta1") {
            bail!("unsupported authorization webhook version {:?} (v1, v1beta1)", opts.version);
        }
        let endpoint = Kubeconfig::load(&opts.kubeconfig)
            .and_then(|kc| kc.endpoint(opts.timeout))
            .with_context(|| format!("authorization webhook {:?} kubeconfig", opts.name))?;
        Self::with_endpoint(opts, endpoint)
    }

    /// A webhook authorizer calling `endpoint` (`opts.kubeconfig` unused): the upstream
    /// apiserver's SubjectAccessReview.
    pub fn with_endpoint(opts: Options, endpoint: Endpoint) -> anyhow::Result<Self> {
        if !matches!(opts.version.as_str(), "v1" | "v1beta1") {
            bail!("unsupported authorization webhook version {:?} (v1, v1beta1)", opts.version);
        }
        Ok(WebhookAuthorizer { opts, endpoint, cache: Mutex::new(HashMap::new()) })
    }

    fn review(&self, a: &Attributes<'_>) -> Value {
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

    fn cached(&self, key: &str) -> Option<(Decision, Arc<str>)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).filter(|(until, _, _)| Instant::now() < *until).map(|(_, d, r)| (*d, r.clone()))
    }

    fn remember(&self, key: String, d: Decision, reason: &Arc<str>) {
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
        cache.insert(key, (Instant::now() + ttl, d, reason.clone()));
    }

    async fn call(&self, body: &Value) -> anyhow::Result<(Decision, Arc<str>)> {
        let resp =
            self.endpoint.post_json(body.to_string()).await.map_err(|e| anyhow!("{}: {e}", self.endpoint.url))?;
        if !(200..300).contains(&resp.code) {
            bail!("the webhook answered {}", http_status(resp.code));
        }
        let bytes = resp.body;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| anyhow!("malformed SubjectAccessReview: {e}"))?;
        let status = v.get("status").cloned().unwrap_or_default();
        let reason = status.get("reason").and_then(Value::as_str).unwrap_or_default().into();
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
    async fn authorize(&self, a: &Attributes<'_>) -> (Decision, Arc<str>) {
        let (decision, reason, _) = self.authorize_or_error(a).await;
        (decision, reason)
    }

    /// A failed call decides by the failure policy and also reports the error, as kube's
    /// webhook authorizer does (so the filter answers 500 unless a later authorizer allows).
    async fn authorize_or_error(&self, a: &Attributes<'_>) -> (Decision, Arc<str>, Option<String>) {
        let body = self.review(a);
        let key = body["spec"].to_string();
        if let Some((decision, reason)) = self.cached(&key) {
            return (decision, reason, None);
        }
        let start = Instant::now();
        let name = self.opts.name.as_str();
        match self.call(&body).await {
            Ok((d, reason)) => {
                let secs = start.elapsed().as_secs_f64();
                super::metrics::WEBHOOK_EVALUATIONS.with_label_values(&[name, "success"]).inc();
                super::metrics::WEBHOOK_DURATION.with_label_values(&[name, "success"]).observe(secs);
                self.remember(key, d, &reason);
                (d, reason, None)
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
                (
                    self.opts.failure_policy,
                    Arc::default(),
                    Some(format!("authorization webhook {name:?} failed: {e:#}")),
                )
            }
        }
    }
}

/// A status as reqwest printed it ("500 Internal Server Error").
fn http_status(code: u16) -> String {
    match reqwest::StatusCode::from_u16(code) {
        Ok(s) => s.to_string(),
        Err(_) => code.to_string(),
    }
}

#[cfg(test)]
mod tests;
