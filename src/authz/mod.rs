//! Authorization: Attributes in, Decision out. The chain is kube-apiserver's union
//! authorizer: `system:masters` is allowed first, then each configured authorizer (RBAC,
//! ABAC, Webhook, AlwaysAllow, AlwaysDeny) in order; the first Allow or Deny decides and
//! all-NoOpinion is forbidden.

pub mod abac;
pub mod chain;
pub mod decision;
pub mod metrics;
pub mod rbac;
pub mod review;
pub mod webhook;

use crate::authn::UserInfo;
use crate::filters::response::{internal_error, sanitize};
use crate::request_info::RequestInfo;
use arc_swap::ArcSwap;
pub use decision::Decision;
use rbac::PolicyRule;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What is being asked, as k8s.io/apiserver's `authorizer.Attributes`. Borrowed from the
/// request's user and RequestInfo when it is the request's own (every request is authorized:
/// copied, they were ten allocations of each), owned when built otherwise (reviews,
/// impersonation, admission).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes<'a> {
    pub user: Cow<'a, UserInfo>,
    pub verb: Cow<'a, str>,
    pub namespace: Cow<'a, str>,
    pub api_group: Cow<'a, str>,
    pub api_version: Cow<'a, str>,
    pub resource: Cow<'a, str>,
    pub subresource: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub resource_request: bool,
    pub path: Cow<'a, str>,
}

impl<'a> Attributes<'a> {
    pub fn from_request(user: &'a UserInfo, info: &'a RequestInfo) -> Self {
        Attributes {
            user: Cow::Borrowed(user),
            verb: Cow::Borrowed(info.verb()),
            namespace: Cow::Borrowed(info.namespace()),
            api_group: Cow::Borrowed(info.api_group()),
            api_version: Cow::Borrowed(info.api_version()),
            resource: Cow::Borrowed(info.resource()),
            subresource: Cow::Borrowed(info.subresource()),
            name: Cow::Borrowed(info.name()),
            resource_request: info.is_resource_request,
            path: Cow::Borrowed(info.path()),
        }
    }

    /// The same attributes, owning what they borrowed.
    pub fn into_owned(self) -> Attributes<'static> {
        let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
        Attributes {
            user: Cow::Owned(self.user.into_owned()),
            verb: own(self.verb),
            namespace: own(self.namespace),
            api_group: own(self.api_group),
            api_version: own(self.api_version),
            resource: own(self.resource),
            subresource: own(self.subresource),
            name: own(self.name),
            resource_request: self.resource_request,
            path: own(self.path),
        }
    }

    /// kube's `IsReadOnly`: get, list and watch.
    pub fn is_read_only(&self) -> bool {
        matches!(&*self.verb, "get" | "list" | "watch")
    }
}

/// The rules a user has in a namespace, as SelfSubjectRulesReview reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesInfo {
    pub resource_rules: Vec<PolicyRule>,
    pub non_resource_rules: Vec<PolicyRule>,
    /// True when an authorizer cannot enumerate its rules (webhook, ABAC).
    pub incomplete: bool,
    pub errors: Vec<String>,
}

impl RulesInfo {
    pub fn from_rules(rules: Vec<PolicyRule>, incomplete: bool, errors: Vec<String>) -> Self {
        let (non_resource_rules, resource_rules) = rules.into_iter().partition(|r| !r.non_resource_urls.is_empty());
        RulesInfo { resource_rules, non_resource_rules, incomplete, errors }
    }

    pub fn incomplete() -> Self {
        RulesInfo { incomplete: true, ..Default::default() }
    }
}

/// One authorizer in the chain. `reason` explains the decision for audit and 403 messages;
/// shared, so that a reason a policy holds (RBAC's granting binding) is not copied per request.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync {
    async fn authorize(&self, attrs: &Attributes<'_>) -> (Decision, Arc<str>);

    /// `authorize` plus the evaluation error kube's authorizers return beside their decision
    /// (a webhook that could not be asked). Only authorizers that can fail override it.
    async fn authorize_or_error(&self, attrs: &Attributes<'_>) -> (Decision, Arc<str>, Option<String>) {
        let (decision, reason) = self.authorize(attrs).await;
        (decision, reason, None)
    }

    /// The rules `user` has in `namespace`; authorizers that cannot list them say incomplete.
    fn rules_for(&self, _user: &UserInfo, _namespace: &str) -> RulesInfo {
        RulesInfo::incomplete()
    }
}

pub struct AlwaysAllow;
pub struct AlwaysDeny;

#[async_trait::async_trait]
impl Authorizer for AlwaysAllow {
    async fn authorize(&self, _: &Attributes<'_>) -> (Decision, Arc<str>) {
        (Decision::Allow, Arc::default())
    }

    fn rules_for(&self, _: &UserInfo, _: &str) -> RulesInfo {
        let all = vec!["*".to_string()];
        RulesInfo {
            resource_rules: vec![PolicyRule {
                verbs: all.clone(),
                api_groups: all.clone(),
                resources: all.clone(),
                ..Default::default()
            }],
            non_resource_rules: vec![PolicyRule { verbs: all.clone(), non_resource_urls: all, ..Default::default() }],
            ..Default::default()
        }
    }
}

#[async_trait::async_trait]
impl Authorizer for AlwaysDeny {
    async fn authorize(&self, _: &Attributes<'_>) -> (Decision, Arc<str>) {
        (Decision::Deny, "Everything is forbidden.".into())
    }

    fn rules_for(&self, _: &UserInfo, _: &str) -> RulesInfo {
        RulesInfo::default()
    }
}

/// Authorization flags (kube-apiserver's names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AuthzArgs {
    /// Ordered list of plug-ins to do authorization on secure port. Comma-delimited list of:
    /// AlwaysAllow,AlwaysDeny,ABAC,Webhook,RBAC,Upstream (SubjectAccessReview at the
    /// --upstream-apiserver). Default: RBAC. Not with --authorization-config.
    #[arg(long, value_delimiter = ',', value_name = "MODES")]
    pub authorization_mode: Vec<String>,

    /// File with Authorization Configuration (apiserver.config.k8s.io AuthorizationConfiguration)
    /// to configure the authorizer chain. Not with --authorization-mode.
    #[arg(long, value_name = "FILE")]
    pub authorization_config: Option<PathBuf>,

    /// RBAC manifests (Role, ClusterRole, RoleBinding, ClusterRoleBinding; multi-document YAML or
    /// JSON, as kubectl apply takes them): a file or a directory, repeatable. Hot-reloaded.
    /// Default: <policy-dir>/rbac when present. kube's bootstrap roles are always built in.
    #[arg(long, value_name = "PATH")]
    pub rbac_policy: Vec<PathBuf>,

    /// File with authorization policy in json line by line format, used with
    /// --authorization-mode=ABAC, on the secure port. Default: <policy-dir>/abac.jsonl.
    #[arg(long, value_name = "FILE")]
    pub authorization_policy_file: Option<PathBuf>,

    /// abac.jsonl in --policy-dir when present: mode ABAC's file when
    /// --authorization-policy-file is not given (filled by `ServeArgs::complete`).
    #[arg(skip)]
    pub default_abac_policy_file: Option<PathBuf>,

    /// File with webhook configuration in kubeconfig format, used with
    /// --authorization-mode=Webhook. The API server will query the remote service to
    /// determine access on the API server's secure port.
    #[arg(long, value_name = "FILE")]
    pub authorization_webhook_config_file: Option<PathBuf>,

    /// The API version of the authorization.k8s.io SubjectAccessReview to send to and expect
    /// from the webhook.
    #[arg(long, default_value = "v1")]
    pub authorization_webhook_version: String,

    /// The duration to cache 'authorized' responses from the webhook authorizer.
    #[arg(long, default_value = "5m", value_parser = crate::api::duration::parse_duration)]
    pub authorization_webhook_cache_authorized_ttl: Duration,

    /// The duration to cache 'unauthorized' responses from the webhook authorizer.
    #[arg(long, default_value = "30s", value_parser = crate::api::duration::parse_duration)]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,

    /// How long to wait for the webhook before applying the failure policy (at most 30s).
    #[arg(long, default_value = "5s", value_parser = crate::api::duration::parse_duration)]
    pub authorization_webhook_timeout: Duration,

    /// What a webhook that cannot be reached or answers badly decides: NoOpinion (fall through
    /// to the next authorizer) or Deny.
    #[arg(long, default_value = "NoOpinion")]
    pub authorization_webhook_failure_policy: String,

    /// The upstream apiserver as frontdoor calls it itself, for mode `Upstream` (filled by the
    /// server from --upstream-apiserver*).
    #[arg(skip)]
    pub upstream: Option<crate::kubeconfig::ApiserverClient>,
}

/// One configured authorizer with its type and name (metrics labels).
pub struct Member {
    pub kind: &'static str,
    pub name: String,
    pub authorizer: Arc<dyn Authorizer>,
}

/// The compiled authorizer chain. `--authorization-config` is hot-reloaded as kube does it:
/// a changed file is validated and built whole, then swapped in; a bad one keeps the chain.
#[derive(Clone)]
pub struct Authorization {
    inner: Arc<Inner>,
}

/// The whole chain is itself an authorizer: the handle other stages get (impersonation's
/// checks, the review APIs, RBAC's escalation checks) instead of the stage.
#[async_trait::async_trait]
impl Authorizer for Authorization {
    async fn authorize(&self, attrs: &Attributes<'_>) -> (Decision, Arc<str>) {
        self.decide(attrs).await
    }

    async fn authorize_or_error(&self, attrs: &Attributes<'_>) -> (Decision, Arc<str>, Option<String>) {
        let (decision, reason, errors) = self.decide_or_error(attrs).await;
        (decision, reason, (!errors.is_empty()).then(|| aggregate_errors(&errors)))
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesInfo {
        Authorization::rules_for(self, user, namespace)
    }
}

struct Inner {
    chain: ArcSwap<Vec<Member>>,
    /// The RBAC and ABAC authorizers, kept across reloads (their own files reload apart).
    shared: Mutex<chain::Shared>,
    /// The store's RBAC objects by resource, replayed into an RBAC authorizer a reload adds.
    dynamic: Mutex<BTreeMap<String, Vec<serde_json::Value>>>,
}

impl Authorization {
    pub fn new(args: &AuthzArgs) -> anyhow::Result<Self> {
        metrics::force();
        let mut shared = chain::Shared::default();
        let chain = chain::build(args, &mut shared)?;
        let z = Authorization::from_parts(chain, shared);
        if let Some(file) = args.authorization_config.clone() {
            let (inner, args) = (z.inner.clone(), args.clone());
            crate::reload::watch("authorization-config", vec![file], move || {
                let result = inner.rebuild(&args);
                metrics::record_config_reload(&result);
                result
            });
        }
        Ok(z)
    }

    /// A chain from parts (tests, benches, embedding).
    pub fn from_chain(chain: Vec<Member>, rbac: Option<Arc<rbac::RbacAuthorizer>>) -> Self {
        Authorization::from_parts(chain, chain::Shared { rbac, abac: None })
    }

    fn from_parts(chain: Vec<Member>, shared: chain::Shared) -> Self {
        Authorization {
            inner: Arc::new(Inner {
                chain: ArcSwap::from_pointee(chain),
                shared: Mutex::new(shared),
                dynamic: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The RBAC authorizer, when RBAC is in the chain.
    pub fn rbac(&self) -> Option<Arc<rbac::RbacAuthorizer>> {
        lock(&self.inner.shared).rbac.clone()
    }

    /// Runs the chain: `system:masters` first, then the first Allow or Deny decides; when
    /// all say NoOpinion the reasons are joined, as kube's union authorizer does.
    pub async fn decide(&self, attrs: &Attributes<'_>) -> (Decision, Arc<str>) {
        let (decision, reason, _) = self.decide_or_error(attrs).await;
        (decision, reason)
    }

    /// `decide` plus the evaluation errors met on the way, as kube's union authorizer collects
    /// them (an error does not stop the chain; a later authorizer may still allow).
    pub async fn decide_or_error(&self, attrs: &Attributes<'_>) -> (Decision, Arc<str>, Vec<String>) {
        if attrs.user.is_system_master() {
            return (Decision::Allow, Arc::default(), Vec::new());
        }
        let mut reasons: Vec<Arc<str>> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let chain = self.inner.chain.load();
        for m in chain.iter() {
            let (d, reason, error) = m.authorizer.authorize_or_error(attrs).await;
            errors.extend(error);
            if d != Decision::NoOpinion {
                let label = if d == Decision::Allow { "allowed" } else { "denied" };
                metrics::DECISIONS.with_label_values(&[m.kind, &m.name, label]).inc();
                return (d, reason, errors);
            }
            if !reason.is_empty() {
                reasons.push(reason);
            }
        }
        // a single reason is passed on as it is, shared
        let reason = match reasons.as_slice() {
            [] => Arc::default(),
            [one] => one.clone(),
            all => all.join("\n").into(),
        };
        (Decision::NoOpinion, reason, errors)
    }

    /// kube's union RuleResolver: every authorizer's rules, incomplete if any is.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesInfo {
        let mut out = RulesInfo::default();
        for m in self.inner.chain.load().iter() {
            let r = m.authorizer.rules_for(user, namespace);
            out.resource_rules.extend(r.resource_rules);
            out.non_resource_rules.extend(r.non_resource_rules);
            out.incomplete |= r.incomplete;
            out.errors.extend(r.errors);
        }
        out
    }

    /// RBAC objects from the store, merged with the policy files and swapped in atomically.
    /// Replaces every stored object; see [`Authorization::set_dynamic_rbac_resource`] to
    /// replace one resource's objects (what a per-resource change hook has).
    pub fn set_dynamic_rbac(&self, objects: Vec<serde_json::Value>) -> anyhow::Result<()> {
        let mut dynamic = lock(&self.inner.dynamic);
        if let Some(r) = self.rbac() {
            report_skipped(&r.set_dynamic(objects.clone()));
        }
        dynamic.clear();
        dynamic.insert(String::new(), objects);
        Ok(())
    }

    /// Replaces the stored objects of one RBAC resource (`roles`, `clusterroles`,
    /// `rolebindings`, `clusterrolebindings`). An object that does not compile is left out,
    /// logged by name and counted as a failed `rbac-store` reload; the others apply.
    pub fn set_dynamic_rbac_resource(&self, resource: &str, objects: Vec<serde_json::Value>) -> anyhow::Result<()> {
        let mut dynamic = lock(&self.inner.dynamic);
        if let Some(r) = self.rbac() {
            report_skipped(&r.set_dynamic_resource(resource, objects.clone())?);
        }
        dynamic.insert(resource.to_string(), objects);
        Ok(())
    }
}

/// Logs and counts (a failed `rbac-store` reload each) the stored RBAC objects the authorizer
/// left out; the rest of the change applied.
fn report_skipped(skipped: &[rbac::Skipped]) {
    for s in skipped {
        tracing::error!(policy = "rbac-store", object = %s.object, error = %s.error, "stored RBAC object left out of the policy; the rest applies");
        crate::metrics::POLICY_RELOAD_TOTAL.with_label_values(&["rbac-store", "failure"]).inc();
    }
}

impl Inner {
    /// Builds the chain from the configuration file again and swaps it in, or fails and
    /// leaves the running chain. Lock order: `dynamic`, then `shared`.
    fn rebuild(&self, args: &AuthzArgs) -> anyhow::Result<()> {
        let dynamic = lock(&self.dynamic);
        let mut shared = lock(&self.shared);
        let mut next = shared.clone();
        let had_rbac = next.rbac.is_some();
        let chain = chain::build(args, &mut next)?;
        if let (false, Some(r)) = (had_rbac, &next.rbac) {
            for (resource, objects) in dynamic.iter() {
                match resource.as_str() {
                    "" => report_skipped(&r.set_dynamic(objects.clone())),
                    res => report_skipped(&r.set_dynamic_resource(res, objects.clone())?),
                }
            }
        }
        *shared = next;
        self.chain.store(Arc::new(chain));
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Authorization {
    /// The authorization filter: records the decision, or ends the request with kube's 403 (or its
    /// 500 when an authorizer failed and nothing allowed).
    pub async fn authorize(&self, ctx: &mut crate::context::RequestContext) -> Result<(), crate::api::Status> {
        let Some(user) = ctx.effective_user() else {
            return Err(crate::api::Status::unauthorized());
        };
        let start = Instant::now();
        // the attributes borrow the context: decided, and a refusal's Status built, before the
        // context is written
        let (decision, reason, errors, refused) = {
            let attrs = Attributes::from_request(user, &ctx.request_info);
            let (decision, reason, errors) = self.decide_or_error(&attrs).await;
            let refused = (decision != Decision::Allow).then(|| forbidden(&attrs, &reason));
            (decision, reason, errors, refused)
        };
        let result = if decision != Decision::Allow && !errors.is_empty() { "error" } else { decision.metric_value() };
        metrics::RESULTS.record(result, start.elapsed().as_secs_f64());
        let Some(refused) = refused else {
            ctx.decision = Some((decision, reason));
            return Ok(());
        };
        if !errors.is_empty() {
            // kube's WithAuthorization: an error without an Allow is responsewriters.InternalError.
            ctx.decision = Some((decision, "internal error".into()));
            return Err(internal_error(ctx.incoming.request_uri(), &aggregate_errors(&errors)));
        }
        tracing::debug!(uri = %ctx.incoming.request_uri(), reason = %reason, "Forbidden");
        ctx.decision = Some((decision, reason));
        Err(refused)
    }
}

/// kube's 403 Status for a request the chain did not allow (responsewriters.Forbidden).
pub fn forbidden(a: &Attributes<'_>, reason: &str) -> crate::api::Status {
    let msg = sanitize(&forbidden_message(a));
    let msg = if reason.is_empty() { msg } else { format!("{msg}: {reason}") };
    if a.resource_request {
        crate::api::Status::forbidden(&a.api_group, &a.resource, &a.name, &msg)
    } else {
        crate::api::Status::forbidden("", "", "", &msg)
    }
}

fn forbidden_message(a: &Attributes<'_>) -> String {
    use crate::api::field::quote;
    let who = quote(&a.user.username);
    if !a.resource_request {
        return format!("User {who} cannot {} path {}", a.verb, quote(&a.path));
    }
    let res =
        if a.subresource.is_empty() { a.resource.to_string() } else { format!("{}/{}", a.resource, a.subresource) };
    let (res, group) = (quote(&res), quote(&a.api_group));
    if a.namespace.is_empty() {
        format!("User {who} cannot {} resource {res} in API group {group} at the cluster scope", a.verb)
    } else {
        format!(
            "User {who} cannot {} resource {res} in API group {group} in the namespace {}",
            a.verb,
            quote(&a.namespace)
        )
    }
}

/// kube escapes `&`, `<` and `>` in the message (it may echo a path).
/// kube's aggregate error text: one message as is, several as `[a, b]`.
pub fn aggregate_errors(errors: &[String]) -> String {
    if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("[{}]", errors.join(", "))
    }
}

#[cfg(test)]
mod tests;

/// Attribute builders shared by the authorizers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Attributes;
    use crate::authn::UserInfo;
    use std::borrow::Cow;

    pub fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo::new(name, groups.iter().map(|g| g.to_string()).collect())
    }

    /// A resource request's attributes.
    pub fn res(
        u: &UserInfo,
        verb: &str,
        ns: &str,
        group: &str,
        resource: &str,
        sub: &str,
        name: &str,
    ) -> Attributes<'static> {
        Attributes {
            user: Cow::Owned(u.clone()),
            verb: verb.to_string().into(),
            namespace: ns.to_string().into(),
            api_group: group.to_string().into(),
            resource: resource.to_string().into(),
            subresource: sub.to_string().into(),
            name: name.to_string().into(),
            resource_request: true,
            ..Default::default()
        }
    }
}
