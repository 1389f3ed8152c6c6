//! APIResource: a resource frontdoor serves itself, as discovery lists it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// Not serialised in discovery's per-resource list (kube puts it on the group).
    #[serde(skip)]
    pub group: String,
    #[serde(skip)]
    pub version: String,
    /// Plural name, e.g. `configmaps`; a subresource is `configmaps/status`.
    pub name: String,
    pub singular_name: String,
    pub namespaced: bool,
    pub kind: String,
    /// The group and version of `kind` when they differ from where it is served (kube's
    /// `serviceaccounts/token` is an authentication.k8s.io/v1 TokenRequest).
    #[serde(rename = "group", default, skip_serializing_if = "String::is_empty")]
    pub kind_group: String,
    #[serde(rename = "version", default, skip_serializing_if = "String::is_empty")]
    pub kind_version: String,
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}
