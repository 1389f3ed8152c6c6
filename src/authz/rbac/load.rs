//! Reading RBAC manifests: files and directories of multi-document YAML or JSON, `kind: List`
//! included, validated as the API server would before a single object is accepted.

use super::rules::{validate_rule, validate_selector};
use super::types::{Binding, ObjectMeta, RbacObject, Role};
use crate::api::documents;
use anyhow::{anyhow, bail, Context};
use std::path::PathBuf;

const GROUP: &str = "rbac.authorization.k8s.io";
const API_VERSION: &str = "rbac.authorization.k8s.io/v1";

/// Every object in the manifests under `paths`; the first bad document fails the whole load.
pub fn load_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<RbacObject>> {
    let mut objects = Vec::new();
    for f in documents::files(paths)? {
        let docs = documents::read(&f)?;
        objects.extend(from_documents(docs).with_context(|| format!("{}", f.display()))?);
    }
    Ok(objects)
}

/// Parses multi-document YAML (JSON is YAML) holding RBAC objects or Lists of them.
pub fn parse_manifests(text: &str) -> anyhow::Result<Vec<RbacObject>> {
    from_documents(documents::parse(text)?)
}

fn from_documents(docs: Vec<documents::Document>) -> anyhow::Result<Vec<RbacObject>> {
    let mut out = Vec::new();
    for d in docs {
        out.extend(parse_value(d.value).map_err(|e| anyhow!("document {}: {e:#}", d.number))?);
    }
    Ok(out)
}

/// One object (or a `kind: List`), validated.
pub fn parse_value(v: serde_json::Value) -> anyhow::Result<Vec<RbacObject>> {
    let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
    if kind == "List" || documents::is_list(&v) {
        let items = v.get("items").and_then(|i| i.as_array()).cloned().unwrap_or_default();
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            out.extend(parse_value(item).map_err(|e| anyhow!("items[{i}]: {e:#}"))?);
        }
        return Ok(out);
    }
    let api_version = v.get("apiVersion").and_then(|a| a.as_str()).unwrap_or_default().to_string();
    let name = v.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
    let what = format!("{kind} {name:?}");
    if kind.is_empty() {
        bail!("Object 'Kind' is missing");
    }
    if !matches!(kind.as_str(), "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding") {
        bail!("{what}: unknown kind {kind:?} (want Role, ClusterRole, RoleBinding or ClusterRoleBinding of {API_VERSION})");
    }
    if api_version != API_VERSION {
        bail!("{what}: apiVersion {api_version:?} is not served (want {API_VERSION})");
    }
    let obj = match kind.as_str() {
        "Role" | "ClusterRole" => {
            let mut r: Role = serde_json::from_value(v).map_err(|e| anyhow!("{what}: {e}"))?;
            let namespaced = kind == "Role";
            scope(&mut r.metadata, namespaced);
            validate_role(&r, namespaced).map_err(|e| anyhow!("{what} is invalid: {e}"))?;
            if namespaced {
                RbacObject::Role(r)
            } else {
                RbacObject::ClusterRole(r)
            }
        }
        _ => {
            let mut b: Binding = serde_json::from_value(v).map_err(|e| anyhow!("{what}: {e}"))?;
            let namespaced = kind == "RoleBinding";
            scope(&mut b.metadata, namespaced);
            validate_binding(&b, namespaced).map_err(|e| anyhow!("{what} is invalid: {e}"))?;
            if namespaced {
                RbacObject::RoleBinding(b)
            } else {
                RbacObject::ClusterRoleBinding(b)
            }
        }
    };
    Ok(vec![obj])
}

/// A namespaced object without a namespace lands in `default` (as `kubectl apply` puts it);
/// a cluster-scoped one has none.
fn scope(meta: &mut ObjectMeta, namespaced: bool) {
    if !namespaced {
        meta.namespace.clear();
    } else if meta.namespace.is_empty() {
        meta.namespace = "default".into();
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("metadata.name: Required value: name or generateName is required".into());
    }
    // kube's path-segment rule for RBAC names
    if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        return Err(format!("metadata.name: Invalid value: {name:?}: may not contain '/' or '%' or be '.' or '..'"));
    }
    Ok(())
}

fn validate_role(r: &Role, namespaced: bool) -> Result<(), String> {
    validate_name(&r.metadata.name)?;
    for (i, rule) in r.rules.iter().enumerate() {
        validate_rule(rule, namespaced, &format!("rules[{i}]"))?;
    }
    if let Some(agg) = &r.aggregation_rule {
        if namespaced {
            return Err("aggregationRule: Forbidden: only ClusterRoles may aggregate".into());
        }
        if agg.cluster_role_selectors.is_empty() {
            return Err("aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil".into());
        }
        for (i, s) in agg.cluster_role_selectors.iter().enumerate() {
            validate_selector(s, &format!("aggregationRule.clusterRoleSelectors[{i}]"))?;
        }
    }
    Ok(())
}

fn validate_binding(b: &Binding, namespaced: bool) -> Result<(), String> {
    validate_name(&b.metadata.name)?;
    let Some(rr) = &b.role_ref else {
        return Err("roleRef: Required value: roleRef is required".into());
    };
    if rr.api_group != GROUP {
        return Err(format!("roleRef.apiGroup: Unsupported value: {:?}: supported values: \"{GROUP}\"", rr.api_group));
    }
    match (rr.kind.as_str(), namespaced) {
        ("ClusterRole", _) | ("Role", true) => {}
        (k, true) => {
            return Err(format!("roleRef.kind: Unsupported value: {k:?}: supported values: \"Role\", \"ClusterRole\""))
        }
        (k, false) => return Err(format!("roleRef.kind: Unsupported value: {k:?}: supported values: \"ClusterRole\"")),
    }
    if rr.name.is_empty() {
        return Err("roleRef.name: Required value".into());
    }
    for (i, s) in b.subjects.iter().enumerate() {
        let f = format!("subjects[{i}]");
        if s.name.is_empty() {
            return Err(format!("{f}.name: Required value"));
        }
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !s.api_group.is_empty() {
                    return Err(format!("{f}.apiGroup: Unsupported value: {:?}: supported values: \"\"", s.api_group));
                }
                if !namespaced && s.namespace.is_empty() {
                    return Err(format!("{f}.namespace: Required value"));
                }
            }
            "User" | "Group" => {
                if s.api_group != GROUP {
                    return Err(format!(
                        "{f}.apiGroup: Unsupported value: {:?}: supported values: \"{GROUP}\"",
                        s.api_group
                    ));
                }
            }
            k => {
                return Err(format!(
                    "{f}.kind: Unsupported value: {k:?}: supported values: \"ServiceAccount\", \"User\", \"Group\""
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_json_and_lists() {
        let text = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: team}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
---
{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"},
 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
 "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]}
---
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: rb}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
  subjects: [{kind: ServiceAccount, name: sa}]
---
"#;
        let objs = parse_manifests(text).unwrap();
        assert_eq!(objs.len(), 3);
        assert_eq!(objs[2].meta().namespace, "default", "RoleBinding defaults to the default namespace");
    }

    #[test]
    fn bad_objects_are_named() {
        let cases = [
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Rolez\nmetadata: {name: x}\n", "unknown kind"),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nsubjects: []\n", "roleRef is required"),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\nrules: [{apiGroups: [''], resources: [pods]}]\n", "verbs must contain"),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\n", "roleRef.kind"),
            ("apiVersion: rbac.authorization.k8s.io/v1beta2\nkind: Role\nmetadata: {name: x}\n", "apiVersion"),
            ("kind: [\n", "document 1"),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}\nsubjects: [{kind: ServiceAccount, name: sa}]\n", "namespace"),
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: x}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects: [{kind: Robot, name: r2}]\n", "subjects[0].kind"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", parse_manifests(text).unwrap_err());
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
