//! rbac.authorization.k8s.io/v1 objects as `kubectl apply` takes them.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Treats an explicit `null` like an absent field (kube's bootstrap dump writes `rules: null`).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default, deserialize_with = "null_default")]
    pub verbs: Vec<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(
        rename = "nonResourceURLs",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, deserialize_with = "null_default")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregationRule {
    #[serde(default, deserialize_with = "null_default")]
    pub cluster_role_selectors: Vec<LabelSelector>,
}

/// A Role (namespaced) or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<PolicyRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_rule: Option<AggregationRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

/// A RoleBinding or ClusterRoleBinding. A missing roleRef is kube's zero value (which
/// validation then rejects field by field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
    #[serde(default, deserialize_with = "null_default")]
    pub role_ref: RoleRef,
}

/// Any of the four RBAC kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RbacObject {
    Role(Role),
    ClusterRole(Role),
    RoleBinding(Binding),
    ClusterRoleBinding(Binding),
}

impl RbacObject {
    pub fn kind(&self) -> &'static str {
        match self {
            RbacObject::Role(_) => "Role",
            RbacObject::ClusterRole(_) => "ClusterRole",
            RbacObject::RoleBinding(_) => "RoleBinding",
            RbacObject::ClusterRoleBinding(_) => "ClusterRoleBinding",
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            RbacObject::Role(r) | RbacObject::ClusterRole(r) => &r.metadata,
            RbacObject::RoleBinding(b) | RbacObject::ClusterRoleBinding(b) => &b.metadata,
        }
    }

    /// Identity for merging sources: a later object with the same key replaces an earlier one.
    pub fn key(&self) -> (&'static str, String, String) {
        let m = self.meta();
        (self.kind(), m.namespace.clone(), m.name.clone())
    }

    /// The store's resource for this kind.
    pub fn resource(&self) -> &'static str {
        match self {
            RbacObject::Role(_) => "roles",
            RbacObject::ClusterRole(_) => "clusterroles",
            RbacObject::RoleBinding(_) => "rolebindings",
            RbacObject::ClusterRoleBinding(_) => "clusterrolebindings",
        }
    }

    /// The object as the API serves it (apiVersion, kind and the fields frontdoor keeps).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = match self {
            RbacObject::Role(r) | RbacObject::ClusterRole(r) => serde_json::to_value(r),
            RbacObject::RoleBinding(b) | RbacObject::ClusterRoleBinding(b) => serde_json::to_value(b),
        }
        .unwrap_or_default();
        v["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
        v["kind"] = self.kind().into();
        v
    }
}
