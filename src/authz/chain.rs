//! Building the authorizer chain from `--authorization-mode` or `--authorization-config`
//! (apiserver.config.k8s.io AuthorizationConfiguration), with kube-apiserver's validation.

use super::{abac, rbac, webhook, AlwaysAllow, AlwaysDeny, Authorizer, AuthzArgs, Member};
use crate::api::documents;
use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const MODES: [&str; 6] = ["AlwaysAllow", "AlwaysDeny", "ABAC", "Webhook", "RBAC", "Upstream"];

/// apiserver.config.k8s.io/v1beta1 AuthorizationConfiguration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationConfiguration {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub authorizers: Vec<AuthorizerConfiguration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizerConfiguration {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub webhook: Option<WebhookConfiguration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfiguration {
    #[serde(default)]
    pub authorized_ttl: Option<String>,
    #[serde(default)]
    pub cache_authorized_requests: Option<bool>,
    #[serde(default)]
    pub unauthorized_ttl: Option<String>,
    #[serde(default)]
    pub cache_unauthorized_requests: Option<bool>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub subject_access_review_version: String,
    #[serde(default)]
    pub match_condition_subject_access_review_version: String,
    #[serde(default)]
    pub failure_policy: String,
    pub connection_info: ConnectionInfo,
    #[serde(default)]
    pub match_conditions: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionInfo {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub kube_config_file: Option<PathBuf>,
}

/// The authorizers that watch files of their own: built once, kept across reloads of
/// `--authorization-config` (which names them, but not their files).
#[derive(Clone, Default)]
pub struct Shared {
    pub rbac: Option<Arc<rbac::RbacAuthorizer>>,
    pub abac: Option<Arc<abac::AbacAuthorizer>>,
}

/// The authorizer types an `--authorization-config` file names, in order.
pub fn types_in_config(file: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let cfg: AuthorizationConfiguration = documents::read_config(file, "--authorization-config")?;
    Ok(cfg.authorizers.into_iter().map(|a| a.kind).collect())
}

/// Builds the chain; RBAC and ABAC come from `shared` when there, else are made and put there.
pub fn build(a: &AuthzArgs, shared: &mut Shared) -> anyhow::Result<Vec<Member>> {
    if let Some(file) = &a.authorization_config {
        if !a.authorization_mode.is_empty() {
            bail!("--authorization-config can not be specified when --authorization-mode is specified");
        }
        let cfg: AuthorizationConfiguration = documents::read_config(file, "--authorization-config")?;
        return from_config(a, cfg, shared).with_context(|| format!("--authorization-config {}", file.display()));
    }
    let modes: Vec<String> =
        if a.authorization_mode.is_empty() { vec!["RBAC".into()] } else { a.authorization_mode.clone() };
    for (i, m) in modes.iter().enumerate() {
        if m == "Node" {
            bail!("authorization-mode \"Node\" is not supported by frontdoor (it has no node graph)");
        }
        if !MODES.contains(&m.as_str()) {
            bail!("authorization-mode {m:?} is not a valid mode (valid: {})", MODES.join(","));
        }
        if modes[..i].contains(m) {
            bail!("authorization-mode {m:?} has mode specified more than once");
        }
    }
    if a.authorization_policy_file.is_some() && !modes.iter().any(|m| m == "ABAC") {
        bail!("cannot specify --authorization-policy-file without mode ABAC");
    }
    if a.authorization_webhook_config_file.is_some() && !modes.iter().any(|m| m == "Webhook") {
        bail!("cannot specify --authorization-webhook-config-file without mode Webhook");
    }
    let mut chain = Vec::new();
    for m in &modes {
        let name = m.to_ascii_lowercase();
        let member = match m.as_str() {
            "Webhook" => {
                let file = a
                    .authorization_webhook_config_file
                    .clone()
                    .ok_or_else(|| anyhow!("authorization-mode Webhook's authorization config file not passed"))?;
                let opts = webhook::Options {
                    name: "webhook".into(),
                    kubeconfig: file,
                    version: a.authorization_webhook_version.clone(),
                    authorized_ttl: Some(a.authorization_webhook_cache_authorized_ttl),
                    unauthorized_ttl: Some(a.authorization_webhook_cache_unauthorized_ttl),
                    timeout: a.authorization_webhook_timeout.min(Duration::from_secs(30)),
                    failure_policy: webhook::parse_failure_policy(&a.authorization_webhook_failure_policy)?,
                };
                member("Webhook", &name, webhook::WebhookAuthorizer::new(opts)?)
            }
            _ => simple(a, m, &name, shared)?,
        };
        chain.push(member);
    }
    Ok(chain)
}

fn member(kind: &'static str, name: &str, a: impl Authorizer + 'static) -> Member {
    Member { kind, name: name.to_string(), authorizer: Arc::new(a) }
}

/// The authorizers that take no per-entry configuration.
fn simple(args: &AuthzArgs, mode: &str, name: &str, shared: &mut Shared) -> anyhow::Result<Member> {
    Ok(match mode {
        "AlwaysAllow" => member("AlwaysAllow", name, AlwaysAllow),
        "AlwaysDeny" => member("AlwaysDeny", name, AlwaysDeny),
        "ABAC" => {
            if let Some(existing) = &shared.abac {
                return Ok(Member { kind: "ABAC", name: name.to_string(), authorizer: existing.clone() });
            }
            let file = args
                .authorization_policy_file
                .clone()
                .or_else(|| args.default_abac_policy_file.clone())
                .ok_or_else(|| anyhow!("authorization-mode ABAC's authorization policy file not passed"))?;
            let az = Arc::new(abac::AbacAuthorizer::new(file.clone())?);
            let w = az.clone();
            crate::reload::watch("abac", vec![file], move || w.reload());
            shared.abac = Some(az.clone());
            Member { kind: "ABAC", name: name.to_string(), authorizer: az }
        }
        "RBAC" => {
            if let Some(existing) = &shared.rbac {
                return Ok(Member { kind: "RBAC", name: name.to_string(), authorizer: existing.clone() });
            }
            let paths = args.rbac_policy.clone();
            let az = Arc::new(rbac::RbacAuthorizer::new(paths.clone())?);
            let w = az.clone();
            crate::reload::watch("rbac", paths, move || w.reload());
            shared.rbac = Some(az.clone());
            Member { kind: "RBAC", name: name.to_string(), authorizer: az }
        }
        // the upstream apiserver's own authorization: a SubjectAccessReview there with
        // frontdoor's credential, cached with the webhook TTLs (kube's 5m allowed, 30s denied)
        "Upstream" => {
            let client = args.upstream.as_ref().ok_or_else(|| {
                anyhow!("authorization-mode Upstream needs --upstream-apiserver or --upstream-apiserver-kubeconfig")
            })?;
            let opts = webhook::Options {
                name: name.to_string(),
                kubeconfig: PathBuf::new(),
                version: "v1".into(),
                authorized_ttl: Some(args.authorization_webhook_cache_authorized_ttl),
                unauthorized_ttl: Some(args.authorization_webhook_cache_unauthorized_ttl),
                timeout: args.authorization_webhook_timeout.min(Duration::from_secs(30)),
                failure_policy: webhook::parse_failure_policy(&args.authorization_webhook_failure_policy)?,
            };
            let endpoint = client.endpoint("/apis/authorization.k8s.io/v1/subjectaccessreviews", opts.timeout)?;
            member("Upstream", name, webhook::WebhookAuthorizer::with_endpoint(opts, endpoint)?)
        }
        other => bail!("authorizer type {other:?} is not supported"),
    })
}

fn from_config(args: &AuthzArgs, cfg: AuthorizationConfiguration, shared: &mut Shared) -> anyhow::Result<Vec<Member>> {
    const VERSIONS: [&str; 3] =
        ["apiserver.config.k8s.io/v1alpha1", "apiserver.config.k8s.io/v1beta1", "apiserver.config.k8s.io/v1"];
    if !VERSIONS.contains(&cfg.api_version.as_str()) || cfg.kind != "AuthorizationConfiguration" {
        bail!(
            "expected apiVersion apiserver.config.k8s.io/v1beta1 and kind AuthorizationConfiguration, got {:?} {:?}",
            cfg.api_version,
            cfg.kind
        );
    }
    if cfg.authorizers.is_empty() {
        bail!("authorizers: Required value: at least one authorization mode must be defined");
    }
    let mut chain = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut types: Vec<String> = Vec::new();
    for (i, a) in cfg.authorizers.into_iter().enumerate() {
        let field = format!("authorizers[{i}]");
        if a.kind != "Webhook" && types.contains(&a.kind) {
            bail!("{field}.type: Duplicate value: {:?}", a.kind);
        }
        types.push(a.kind.clone());
        let name = if a.name.is_empty() { a.kind.to_ascii_lowercase() } else { a.name.clone() };
        if names.contains(&name) {
            bail!("{field}.name: Duplicate value: {name:?}");
        }
        names.push(name.clone());
        match a.kind.as_str() {
            "Webhook" => {
                if a.name.is_empty() {
                    bail!("{field}.name: Required value");
                }
                let w =
                    a.webhook.ok_or_else(|| anyhow!("{field}.webhook: Required value: required when type=Webhook"))?;
                chain.push(member(
                    "Webhook",
                    &name,
                    webhook::WebhookAuthorizer::new(webhook_options(&field, &name, w)?)?,
                ));
            }
            "Node" => {
                bail!("{field}.type: Unsupported value: \"Node\": frontdoor has no node graph")
            }
            t if MODES.contains(&t) => {
                if a.webhook.is_some() {
                    bail!("{field}.webhook: Invalid value: non-null: may only be specified when type=Webhook");
                }
                chain.push(simple(args, t, &name, shared)?);
            }
            t => bail!("{field}.type: Unsupported value: {t:?}: supported values: {}", MODES.join(", ")),
        }
    }
    Ok(chain)
}

fn webhook_options(field: &str, name: &str, w: WebhookConfiguration) -> anyhow::Result<webhook::Options> {
    let dur = |what: &str, v: &Option<String>| -> anyhow::Result<Option<Duration>> {
        v.as_deref()
            .map(|s| crate::api::duration::parse_duration(s).map_err(|e| anyhow!("{field}.webhook.{what}: {e}")))
            .transpose()
    };
    let timeout = dur("timeout", &w.timeout)?.ok_or_else(|| anyhow!("{field}.webhook.timeout: Required value"))?;
    if timeout.is_zero() || timeout > Duration::from_secs(30) {
        bail!("{field}.webhook.timeout: Invalid value: must be > 0s and <= 30s");
    }
    if !matches!(w.subject_access_review_version.as_str(), "v1" | "v1beta1") {
        bail!("{field}.webhook.subjectAccessReviewVersion: Unsupported value: {:?}: supported values: \"v1\", \"v1beta1\"", w.subject_access_review_version);
    }
    if !w.match_conditions.is_empty() {
        bail!("{field}.webhook.matchConditions: CEL match conditions are not supported by frontdoor");
    }
    if w.connection_info.kind != "KubeConfigFile" {
        bail!(
            "{field}.webhook.connectionInfo.type: Unsupported value: {:?}: supported values: \"KubeConfigFile\"",
            w.connection_info.kind
        );
    }
    let kubeconfig = w
        .connection_info
        .kube_config_file
        .ok_or_else(|| anyhow!("{field}.webhook.connectionInfo.kubeConfigFile: Required value"))?;
    let failure_policy =
        webhook::parse_failure_policy(&w.failure_policy).map_err(|e| anyhow!("{field}.webhook.failurePolicy: {e}"))?;
    let authorized_ttl = if w.cache_authorized_requests.unwrap_or(true) {
        Some(dur("authorizedTTL", &w.authorized_ttl)?.unwrap_or(Duration::from_secs(300)))
    } else {
        None
    };
    let unauthorized_ttl = if w.cache_unauthorized_requests.unwrap_or(true) {
        Some(dur("unauthorizedTTL", &w.unauthorized_ttl)?.unwrap_or(Duration::from_secs(30)))
    } else {
        None
    };
    Ok(webhook::Options {
        name: name.to_string(),
        kubeconfig,
        version: w.subject_access_review_version,
        authorized_ttl,
        unauthorized_ttl,
        timeout,
        failure_policy,
    })
}
