//! Reading RBAC manifests: files and directories of multi-document YAML or JSON, `kind: List`
//! included, validated as the API server would before a single object is accepted.

use super::types::{Binding, ObjectMeta, RbacObject, Role};
use super::validation::{default_binding, join, validate_binding, validate_role};
use crate::api::documents;
use crate::api::status::StatusCause;
use anyhow::{anyhow, bail, Context};
use std::path::{Path, PathBuf};

const API_VERSION: &str = "rbac.authorization.k8s.io/v1";

/// Every object in the manifests under `paths`, with the file it came from; the first bad
/// document fails the whole load.
pub fn load_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, RbacObject)>> {
    let mut objects = Vec::new();
    for f in documents::files(paths)? {
        objects.extend(load_file(&f)?.into_iter().map(|o| (f.clone(), o)));
    }
    check_unique(&objects)?;
    Ok(objects)
}

/// Refuses an object the files define twice: as in the API, a name is one object per kind
/// and namespace. Were both taken, the policy would be the union of the two while the store's
/// mirror of the files rewrote each over the other without end.
pub fn check_unique(objects: &[(PathBuf, RbacObject)]) -> anyhow::Result<()> {
    let mut seen: std::collections::HashMap<(&str, &str, &str), &Path> = Default::default();
    for (f, o) in objects {
        let m = o.meta();
        if let Some(first) = seen.insert((o.kind(), &m.namespace, &m.name), f) {
            let name = match m.namespace.as_str() {
                "" => m.name.clone(),
                ns => format!("{ns}/{}", m.name),
            };
            return Err(documents::defined_again(&format!("{} {name}", o.kind()), first, f));
        }
    }
    Ok(())
}

/// The objects of one manifest file; its first bad document fails it.
pub fn load_file(f: &Path) -> anyhow::Result<Vec<RbacObject>> {
    from_documents(documents::read(f)?).with_context(|| format!("{}", f.display()))
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
    let obj = decode(&kind, v).map_err(|e| match e {
        DecodeError::Malformed(e) => anyhow!("{what}: {e}"),
        DecodeError::Invalid(errs) => anyhow!("{what} is invalid: {}", join(&errs)),
    })?;
    Ok(vec![obj])
}

/// Why one object could not be taken.
#[derive(Debug)]
pub enum DecodeError {
    /// Not the shape of the kind (a field of the wrong type).
    Malformed(String),
    /// Well-formed but refused by kube's validation.
    Invalid(Vec<StatusCause>),
}

/// One object of a known RBAC `kind`: decoded, scoped, defaulted and validated as kube does.
pub fn decode(kind: &str, v: serde_json::Value) -> Result<RbacObject, DecodeError> {
    let namespaced = matches!(kind, "Role" | "RoleBinding");
    let malformed = |e: serde_json::Error| DecodeError::Malformed(e.to_string());
    let check = |errs: Vec<StatusCause>| if errs.is_empty() { Ok(()) } else { Err(DecodeError::Invalid(errs)) };
    match kind {
        "Role" | "ClusterRole" => {
            let mut r: Role = serde_json::from_value(v).map_err(malformed)?;
            scope(&mut r.metadata, namespaced);
            check(validate_role(&r, namespaced))?;
            Ok(if namespaced { RbacObject::Role(r) } else { RbacObject::ClusterRole(r) })
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let mut b: Binding = serde_json::from_value(v).map_err(malformed)?;
            scope(&mut b.metadata, namespaced);
            default_binding(&mut b);
            check(validate_binding(&b, namespaced))?;
            Ok(if namespaced { RbacObject::RoleBinding(b) } else { RbacObject::ClusterRoleBinding(b) })
        }
        other => Err(DecodeError::Malformed(format!("{other:?} is not an RBAC kind"))),
    }
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
            ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nsubjects: []\n", "roleRef.name: Required value"),
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
