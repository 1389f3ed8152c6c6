//! ABAC: `--authorization-policy-file`, one abac.authorization.kubernetes.io/v1beta1 Policy
//! per line, matched with kube's semantics (pkg/auth/authorizer/abac). Hot-reloaded.

use super::{Attributes, Authorizer, Decision};
use anyhow::{anyhow, bail};
use arc_swap::ArcSwap;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub non_resource_path: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Policy {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    spec: Option<PolicySpec>,
}

/// Parses a policy file: blank lines and `#` comments are skipped; any bad line fails it.
pub fn parse(text: &str) -> anyhow::Result<Vec<PolicySpec>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let p: Policy = serde_json::from_str(line).map_err(|e| anyhow!("line {n}: {e}"))?;
        if p.api_version != "abac.authorization.kubernetes.io/v1beta1" || p.kind != "Policy" {
            bail!(
                "line {n}: want apiVersion abac.authorization.kubernetes.io/v1beta1 and kind Policy, got {:?} {:?}",
                p.api_version,
                p.kind
            );
        }
        let spec = p.spec.ok_or_else(|| anyhow!("line {n}: spec is required"))?;
        if spec.user.is_empty() && spec.group.is_empty() {
            bail!("line {n}: a policy needs spec.user or spec.group");
        }
        out.push(spec);
    }
    Ok(out)
}

fn subject_matches(p: &PolicySpec, a: &Attributes<'_>) -> bool {
    let mut matched = false;
    if !p.user.is_empty() {
        if p.user == "*" {
            matched = true;
        } else {
            if p.user != a.user.username {
                return false;
            }
            matched = true;
        }
    }
    if !p.group.is_empty() {
        if p.group == "*" {
            matched = true;
        } else {
            if !a.user.groups.contains(&p.group) {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn verb_matches(p: &PolicySpec, a: &Attributes<'_>) -> bool {
    a.is_read_only() || !p.readonly
}

fn resource_matches(p: &PolicySpec, a: &Attributes<'_>) -> bool {
    a.resource_request
        && (p.namespace == "*" || p.namespace == a.namespace)
        && (p.resource == "*" || p.resource == a.resource)
        && (p.api_group == "*" || p.api_group == a.api_group)
}

fn non_resource_matches(p: &PolicySpec, a: &Attributes<'_>) -> bool {
    !a.resource_request
        && (p.non_resource_path == "*"
            || p.non_resource_path == a.path
            || (p.non_resource_path.ends_with('*') && a.path.starts_with(p.non_resource_path.trim_end_matches('*'))))
}

/// Whether one policy line allows the request.
pub fn matches(p: &PolicySpec, a: &Attributes<'_>) -> bool {
    subject_matches(p, a) && verb_matches(p, a) && (resource_matches(p, a) || non_resource_matches(p, a))
}

pub struct AbacAuthorizer {
    file: PathBuf,
    policies: ArcSwap<Vec<PolicySpec>>,
}

impl AbacAuthorizer {
    pub fn new(file: PathBuf) -> anyhow::Result<Self> {
        let policies = Self::load(&file)?;
        Ok(AbacAuthorizer { file, policies: ArcSwap::from_pointee(policies) })
    }

    pub fn from_policies(policies: Vec<PolicySpec>) -> Self {
        AbacAuthorizer { file: PathBuf::new(), policies: ArcSwap::from_pointee(policies) }
    }

    fn load(file: &Path) -> anyhow::Result<Vec<PolicySpec>> {
        let text = crate::reload::read_to_string(file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        parse(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
    }

    /// Re-reads the file; a bad file leaves the previous policy in force.
    pub fn reload(&self) -> anyhow::Result<()> {
        let p = Self::load(&self.file)?;
        self.policies.store(Arc::new(p));
        Ok(())
    }
}

#[async_trait::async_trait]
impl Authorizer for AbacAuthorizer {
    async fn authorize(&self, a: &Attributes<'_>) -> (Decision, Arc<str>) {
        if self.policies.load().iter().any(|p| matches(p, a)) {
            return (Decision::Allow, Arc::default());
        }
        (Decision::NoOpinion, "No policy matched.".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;
    use std::borrow::Cow;

    const FILE: &str = r#"
# admins may do anything
{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"user": "alice", "namespace": "*", "resource": "*", "apiGroup": "*", "nonResourcePath": "*"}}
{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"user": "bob", "namespace": "projectCaribou", "resource": "pods", "apiGroup": "", "readonly": true}}
{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"group": "system:authenticated", "readonly": true, "nonResourcePath": "/apis/*"}}
{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"user": "*", "readonly": true, "nonResourcePath": "/version"}}
{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"user": "carol", "group": "ops", "namespace": "*", "resource": "deployments", "apiGroup": "apps"}}
"#;

    fn res<'a>(
        user: &str,
        groups: &[&str],
        verb: &'a str,
        ns: &'a str,
        group: &'a str,
        resource: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            user: Cow::Owned(UserInfo::new(user, groups.iter().map(|g| g.to_string()).collect())),
            verb: verb.into(),
            namespace: ns.into(),
            api_group: group.into(),
            resource: resource.into(),
            resource_request: true,
            ..Default::default()
        }
    }

    fn path<'a>(user: &str, groups: &[&str], verb: &'a str, p: &'a str) -> Attributes<'a> {
        Attributes {
            user: Cow::Owned(UserInfo::new(user, groups.iter().map(|g| g.to_string()).collect())),
            verb: verb.into(),
            path: p.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn abac_table() {
        let z = AbacAuthorizer::from_policies(parse(FILE).unwrap());
        let cases = [
            ("wildcards", res("alice", &[], "delete", "x", "apps", "deployments"), true),
            ("wildcard path", path("alice", &[], "post", "/anything"), true),
            ("readonly read", res("bob", &[], "list", "projectCaribou", "", "pods"), true),
            ("readonly write", res("bob", &[], "create", "projectCaribou", "", "pods"), false),
            ("namespace", res("bob", &[], "get", "other", "", "pods"), false),
            ("resource", res("bob", &[], "get", "projectCaribou", "", "secrets"), false),
            ("group subject, path prefix", path("dan", &["system:authenticated"], "get", "/apis/apps"), true),
            ("group subject, other path", path("dan", &["system:authenticated"], "get", "/api"), false),
            (
                "path policy is not a resource policy",
                res("dan", &["system:authenticated"], "get", "", "", "pods"),
                false,
            ),
            ("user *", path("anyone", &[], "get", "/version"), true),
            ("user and group both needed", res("carol", &["ops"], "update", "x", "apps", "deployments"), true),
            ("user without the group", res("carol", &[], "update", "x", "apps", "deployments"), false),
            ("group without the user", res("erin", &["ops"], "update", "x", "apps", "deployments"), false),
        ];
        for (name, a, want) in cases {
            let (d, reason) = z.authorize(&a).await;
            assert_eq!(d == Decision::Allow, want, "{name}");
            if !want {
                assert_eq!(&*reason, "No policy matched.");
            }
        }
    }

    #[test]
    fn example_policy_file_is_valid() {
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/abac.jsonl");
        assert_eq!(parse(&std::fs::read_to_string(f).unwrap()).unwrap().len(), 5);
    }

    #[test]
    fn bad_lines_are_numbered() {
        assert!(parse("{\"apiVersion\": \"v1\", \"kind\": \"Policy\", \"spec\": {\"user\": \"a\"}}")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(parse("\n{nope").unwrap_err().to_string().contains("line 2"));
        assert!(parse("{\"apiVersion\": \"abac.authorization.kubernetes.io/v1beta1\", \"kind\": \"Policy\", \"spec\": {\"resource\": \"*\"}}").is_err());
    }
}
