//! The audit policy: an `audit.k8s.io/v1` Policy, compiled for the per-request lookup
//! (k8s.io/apiserver/pkg/audit/policy: first matching rule wins, no match is level None).

use crate::authn::user::UserInfo;
use crate::request_info::RequestInfo;
use anyhow::{bail, Context};
use serde::Deserialize;
use std::path::Path;

/// How much of a request is recorded, in kube's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// The stages an event is emitted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of stages (the omitted ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stages(u8);

impl Stages {
    pub fn of(stages: &[Stage]) -> Self {
        Stages(stages.iter().fold(0, |acc, s| acc | s.bit()))
    }
    pub fn contains(self, s: Stage) -> bool {
        self.0 & s.bit() != 0
    }
    pub fn union(self, o: Stages) -> Stages {
        Stages(self.0 | o.0)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    pub level: Option<Level>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyDoc {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    rules: Vec<PolicyRule>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

/// A validated policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<PolicyRule>,
    omit_stages: Stages,
    omit_managed_fields: bool,
}

/// What the policy decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestAuditConfig {
    pub level: Level,
    pub omit_stages: Stages,
    pub omit_managed_fields: bool,
    /// The matching rule names core `secrets` explicitly, so Secret data may be recorded.
    pub secrets_explicit: bool,
}

impl RequestAuditConfig {
    pub const NONE: RequestAuditConfig = RequestAuditConfig {
        level: Level::None,
        omit_stages: Stages(0),
        omit_managed_fields: false,
        secrets_explicit: false,
    };
}

/// The request as the policy sees it (kube's authorizer.Attributes).
pub struct Attributes<'a> {
    /// None when authentication failed.
    pub user: Option<&'a UserInfo>,
    pub info: &'a RequestInfo,
}

impl Policy {
    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = crate::api::documents::read_text(path)
            .with_context(|| format!("reading audit policy {}", path.display()))?;
        Policy::parse(&text).with_context(|| format!("audit policy {}", path.display()))
    }

    /// Parses and validates a Policy in YAML or JSON.
    pub fn parse(text: &str) -> anyhow::Result<Policy> {
        let doc: PolicyDoc = serde_yaml::from_str(text)?;
        match doc.api_version.as_deref() {
            Some("audit.k8s.io/v1") => {}
            other => bail!("unsupported apiVersion {:?}: expected audit.k8s.io/v1", other.unwrap_or("")),
        }
        if doc.kind.as_deref() != Some("Policy") {
            bail!("unsupported kind {:?}: expected Policy", doc.kind.as_deref().unwrap_or(""));
        }
        if doc.rules.is_empty() {
            bail!("loaded illegal policy with 0 rules");
        }
        for (i, r) in doc.rules.iter().enumerate() {
            validate_rule(r).with_context(|| format!("rules[{i}]"))?;
        }
        Ok(Policy {
            omit_stages: Stages::of(&doc.omit_stages),
            omit_managed_fields: doc.omit_managed_fields,
            rules: doc.rules,
        })
    }

    /// kube's `LevelAndStages`: the first matching rule decides; no match is None.
    pub fn evaluate(&self, a: &Attributes<'_>) -> RequestAuditConfig {
        for r in &self.rules {
            if rule_matches(r, a) {
                return RequestAuditConfig {
                    level: r.level.unwrap_or(Level::None),
                    omit_stages: self.omit_stages.union(Stages::of(&r.omit_stages)),
                    omit_managed_fields: r.omit_managed_fields.unwrap_or(self.omit_managed_fields),
                    secrets_explicit: r.resources.iter().any(|g| {
                        g.group.is_empty()
                            && g.resources.iter().any(|res| res == "secrets" || res.starts_with("secrets/"))
                    }),
                };
            }
        }
        RequestAuditConfig {
            omit_stages: self.omit_stages,
            omit_managed_fields: self.omit_managed_fields,
            ..RequestAuditConfig::NONE
        }
    }
}

fn validate_rule(r: &PolicyRule) -> anyhow::Result<()> {
    if r.level.is_none() {
        bail!("level: Required value");
    }
    if !r.non_resource_urls.is_empty() && (!r.resources.is_empty() || !r.namespaces.is_empty()) {
        bail!("rules cannot apply to both regular resources and non-resource URLs");
    }
    for u in &r.non_resource_urls {
        if u != "*" && !u.starts_with('/') {
            bail!("nonResourceURLs: Invalid value: {u:?}: non-resource URL rules must begin with a '/' character");
        }
        if let Some(i) = u.find('*') {
            if i != u.len() - 1 {
                bail!("nonResourceURLs: Invalid value: {u:?}: non-resource URL wildcards '*' must be the final character of the rule");
            }
        }
    }
    for g in &r.resources {
        if g.group.contains('/') {
            bail!("resources.group: Invalid value: {:?}: group name must not contain '/'", g.group);
        }
        if !g.resource_names.is_empty() && g.resources.is_empty() {
            bail!(
                "resources.resourceNames: Invalid value: {:?}: using resourceNames requires at least one resource",
                g.resource_names
            );
        }
    }
    Ok(())
}

fn rule_matches(r: &PolicyRule, a: &Attributes<'_>) -> bool {
    if !r.users.is_empty() && !a.user.is_some_and(|u| r.users.contains(&u.username)) {
        return false;
    }
    if !r.user_groups.is_empty() && !a.user.is_some_and(|u| u.groups.iter().any(|g| r.user_groups.contains(g))) {
        return false;
    }
    if !r.verbs.is_empty() && !r.verbs.iter().any(|v| v == a.info.verb()) {
        return false;
    }
    if !r.namespaces.is_empty() || !r.resources.is_empty() {
        return rule_matches_resource(r, a.info);
    }
    if !r.non_resource_urls.is_empty() {
        return !a.info.is_resource_request && r.non_resource_urls.iter().any(|spec| path_matches(a.info.path(), spec));
    }
    true
}

fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*" || spec == path || (spec.ends_with('*') && path.starts_with(spec.trim_end_matches('*')))
}

fn rule_matches_resource(r: &PolicyRule, info: &RequestInfo) -> bool {
    if !info.is_resource_request {
        return false;
    }
    // non-namespaced resources have the empty namespace
    if !r.namespaces.is_empty() && !r.namespaces.iter().any(|v| v == info.namespace()) {
        return false;
    }
    if r.resources.is_empty() {
        return true;
    }
    let combined = if info.subresource().is_empty() {
        info.resource().to_string()
    } else {
        format!("{}/{}", info.resource(), info.subresource())
    };
    for gr in r.resources.iter().filter(|gr| gr.group == info.api_group()) {
        if gr.resources.is_empty() {
            return true;
        }
        if !gr.resource_names.is_empty() && !gr.resource_names.iter().any(|v| v == info.name()) {
            continue;
        }
        for res in &gr.resources {
            if res == &combined || res == "*" {
                return true;
            }
            if !info.subresource().is_empty() && res.strip_prefix("*/") == Some(info.subresource()) {
                return true;
            }
            if res.strip_suffix("/*") == Some(info.resource()) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
        RequestInfo::resolve(method, path, query).unwrap()
    }

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: ["watch"]
  resources: [{group: "", resources: ["endpoints", "services"]}]
- level: None
  userGroups: ["system:nodes"]
  verbs: ["get"]
  resources: [{group: "", resources: ["nodes"]}]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Metadata
  resources: [{group: "", resources: ["secrets", "configmaps"]}]
- level: Request
  resources: [{group: "", resources: ["pods/log", "pods/status"]}]
- level: RequestResponse
  resources: [{group: "apps", resources: ["*/scale"]}]
- level: Request
  resources: [{group: "apps", resources: ["deployments/*"]}]
- level: RequestResponse
  namespaces: ["kube-system"]
  omitStages: [ResponseStarted]
  omitManagedFields: true
- level: Metadata
  resources: [{group: "", resources: ["configmaps"], resourceNames: ["controller-leader"]}]
- level: Request
  resources: [{group: "rbac.authorization.k8s.io"}]
- level: Metadata
  nonResourceURLs: ["/api*"]
- level: RequestResponse
  verbs: ["create"]
"#;

    #[test]
    fn rule_matching_table() {
        let p = Policy::parse(POLICY).unwrap();
        let proxy = UserInfo::new("system:kube-proxy", vec![]);
        let node = UserInfo::new("system:node:n1", vec!["system:nodes".into()]);
        let alice = UserInfo::new("alice", vec!["devs".into()]);
        #[rustfmt::skip]
        let table: &[(&UserInfo, &str, &str, Option<&str>, Level)] = &[
            (&proxy, "GET", "/api/v1/endpoints", Some("watch=true"), Level::None),
            (&proxy, "GET", "/api/v1/endpoints", None, Level::None),           // list: no rule (/api* is non-resource only)
            (&alice, "GET", "/api/v1/watch/services", None, Level::None),       // user does not match
            (&node, "GET", "/api/v1/nodes/n1", None, Level::None),
            (&node, "GET", "/api/v1/nodes", None, Level::None),                 // list, not get
            (&alice, "GET", "/healthz", None, Level::None),
            (&alice, "GET", "/healthz/etcd", None, Level::None),
            (&alice, "GET", "/version", None, Level::None),
            (&alice, "GET", "/versionx", None, Level::None),                     // no rule: None
            (&alice, "GET", "/api/v1/namespaces/default/secrets/s", None, Level::Metadata),
            (&alice, "GET", "/api/v1/namespaces/default/pods/p/log", None, Level::Request),
            (&alice, "GET", "/api/v1/namespaces/default/pods/p", None, Level::None),
            (&alice, "PUT", "/apis/apps/v1/namespaces/d/deployments/x/scale", None, Level::RequestResponse),
            (&alice, "PUT", "/apis/apps/v1/namespaces/d/replicasets/x/scale", None, Level::RequestResponse),
            (&alice, "PUT", "/apis/apps/v1/namespaces/d/deployments/x/status", None, Level::Request),
            (&alice, "GET", "/apis/apps/v1/namespaces/d/deployments/x", None, Level::Request), // resource/* matches the resource itself
            (&alice, "GET", "/api/v1/namespaces/kube-system/pods", None, Level::RequestResponse),
            (&alice, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", None, Level::Request),
            (&alice, "POST", "/apis/batch/v1/namespaces/x/jobs", None, Level::RequestResponse),
            (&alice, "POST", "/apis", None, Level::Metadata),
        ];
        for (u, m, path, q, want) in table {
            let i = info(m, path, *q);
            let got = p.evaluate(&Attributes { user: Some(u), info: &i }).level;
            assert_eq!(got, *want, "{m} {path} {q:?} as {}", u.username);
        }
    }

    #[test]
    fn resource_names_stages_and_managed_fields() {
        let p = Policy::parse(POLICY).unwrap();
        let alice = UserInfo::new("alice", vec![]);
        let i = info("GET", "/api/v1/namespaces/kube-system/pods", None);
        let c = p.evaluate(&Attributes { user: Some(&alice), info: &i });
        assert!(c.omit_stages.contains(Stage::RequestReceived), "policy-wide");
        assert!(c.omit_stages.contains(Stage::ResponseStarted), "rule");
        assert!(!c.omit_stages.contains(Stage::ResponseComplete));
        assert!(c.omit_managed_fields);
        let i = info("GET", "/api/v1/namespaces/default/secrets/s", None);
        let c = p.evaluate(&Attributes { user: Some(&alice), info: &i });
        assert!(c.secrets_explicit && !c.omit_managed_fields);

        let p = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitManagedFields: true\nrules:\n- level: Request\n  resources: [{group: '', resources: [configmaps], resourceNames: [a]}]\n  omitManagedFields: false\n- level: Metadata\n",
        )
        .unwrap();
        let i = info("GET", "/api/v1/namespaces/x/configmaps/a", None);
        let c = p.evaluate(&Attributes { user: None, info: &i });
        assert_eq!((c.level, c.omit_managed_fields), (Level::Request, false));
        let i = info("GET", "/api/v1/namespaces/x/configmaps/b", None);
        let c = p.evaluate(&Attributes { user: None, info: &i });
        assert_eq!((c.level, c.omit_managed_fields), (Level::Metadata, true));
    }

    #[test]
    fn users_and_groups_need_a_user() {
        let p = Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  userGroups: [system:unauthenticated]\n- level: Metadata\n").unwrap();
        let i = info("GET", "/api", None);
        assert_eq!(p.evaluate(&Attributes { user: None, info: &i }).level, Level::Metadata);
        let anon = UserInfo::anonymous();
        assert_eq!(p.evaluate(&Attributes { user: Some(&anon), info: &i }).level, Level::None);
    }

    #[test]
    fn json_policy_and_invalid_policies() {
        assert!(
            Policy::parse(r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Metadata"}]}"#).is_ok()
        );
        for bad in [
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
            "apiVersion: audit.k8s.io/v1beta2\nkind: Policy\nrules: [{level: Metadata}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{verbs: [get]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, omitStages: [Later]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, nonResourceURLs: [/a], namespaces: [x]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, nonResourceURLs: [a*]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, nonResourceURLs: ['/a*b']}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, resources: [{group: a/b}]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, resources: [{resourceNames: [x]}]}]\n",
            "rules: [{level: Metadata}]\n",
            ": : :",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shipped_default_policy_is_valid() {
        let p = Policy::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/audit-policy.yaml"))).unwrap();
        let alice = UserInfo::new("alice", vec![]);
        let i = info("GET", "/readyz", None);
        assert_eq!(p.evaluate(&Attributes { user: Some(&alice), info: &i }).level, Level::None);
        let i = info("POST", "/api/v1/namespaces/a/secrets", None);
        assert_eq!(p.evaluate(&Attributes { user: Some(&alice), info: &i }).level, Level::Metadata);
        let i = info("POST", "/api/v1/namespaces/a/pods", None);
        assert_eq!(p.evaluate(&Attributes { user: Some(&alice), info: &i }).level, Level::Request);
    }
}
