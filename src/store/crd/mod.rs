//! apiextensions.k8s.io/v1 CustomResourceDefinitions, served live as kube-apiserver's
//! apiextensions-apiserver serves them: a CRD whose names are accepted is served at once, one
//! `ResourceDef` per served version (all sharing the storage of `/registry/<group>/<plural>/`,
//! objects stored at the storage version, `None` conversion rewriting only apiVersion).
//!
//! names.rs decides which names are accepted (kube's naming controller), validate.rs is kube's
//! validation of the CRD itself, controller.rs writes the conditions and removes a deleted
//! CRD's objects, structural.rs validates, prunes and defaults custom objects by their schema,
//! columns.rs is additionalPrinterColumns, cel.rs the
//! `x-kubernetes-validations` rules, scale.rs the scale subresource, openapi.rs the
//! schemas published under /openapi.

pub mod cel;
pub mod columns;
pub mod controller;
pub mod names;
pub mod openapi;
pub mod scale;
pub mod structural;
pub mod validate;

use super::resources::ResourceDef;
use serde_json::{json, Value};
use std::sync::Arc;

pub const GROUP: &str = "apiextensions.k8s.io";
pub const RESOURCE: &str = "customresourcedefinitions";
/// The finalizer a deleted CRD carries until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// What a CRD says of one served version of its resource.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Custom {
    /// The CRD's name (`<plural>.<group>`).
    pub crd: String,
    /// The version objects are stored at.
    pub storage_version: String,
    /// This version's `openAPIV3Schema` (None: none, everything is kept).
    pub schema: Option<Value>,
    /// `additionalPrinterColumns`.
    pub columns: Vec<Value>,
    /// `subresources.scale` (specReplicasPath, statusReplicasPath, labelSelectorPath).
    pub scale: Option<Value>,
    /// The CRD is being deleted: its objects are read and deleted, not created.
    pub terminating: bool,
    pub list_kind: String,
    /// A deprecated version's warning (`deprecationWarning`, or kube's default), sent with
    /// every response of this version.
    pub deprecation: Option<String>,
    /// `selectableFields` as field selector labels (`spec.color`).
    pub selectable: Vec<String>,
}

pub fn is_crds(def: &ResourceDef) -> bool {
    def.group == GROUP && def.resource == RESOURCE
}

/// The served definitions of every CRD whose names are accepted: one per served version, the
/// storage version's first.
pub fn served_defs(crds: &[Value]) -> Vec<ResourceDef> {
    let accepted = names::accept(crds);
    let mut out = Vec::new();
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let Some(names) = accepted.get(name).and_then(|a| a.as_ref().ok()) else { continue };
        out.extend(defs_of(crd, names));
    }
    out
}

/// The defs of one CRD under its accepted names.
fn defs_of(crd: &Value, names: &names::Names) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage = versions.iter().find(|v| v["storage"] == json!(true)).and_then(|v| v["name"].as_str());
    let Some(storage) = storage else { return Vec::new() };
    let terminating = crd["metadata"]["deletionTimestamp"].is_string();
    let mut out: Vec<ResourceDef> = Vec::new();
    for v in versions.iter().filter(|v| v["served"] == json!(true)) {
        let version = v["name"].as_str().unwrap_or_default();
        let sub = &v["subresources"];
        let mut subresources = Vec::new();
        if sub["status"].is_object() {
            subresources.push("status".to_string());
        }
        if sub["scale"].is_object() {
            subresources.push("scale".to_string());
        }
        let custom = Custom {
            crd: crd["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            storage_version: storage.to_string(),
            schema: v["schema"]["openAPIV3Schema"].as_object().map(|_| v["schema"]["openAPIV3Schema"].clone()),
            columns: v["additionalPrinterColumns"].as_array().cloned().unwrap_or_default(),
            scale: sub["scale"].as_object().map(|_| sub["scale"].clone()),
            terminating,
            list_kind: names.list_kind.clone(),
            selectable: v["selectableFields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["jsonPath"].as_str())
                .map(|p| p.trim_start_matches('.').to_string())
                .collect(),
            deprecation: (v["deprecated"] == json!(true)).then(|| match v["deprecationWarning"].as_str() {
                Some(w) => w.to_string(),
                None => format!("{group}/{version} {} is deprecated", names.kind),
            }),
        };
        let def = ResourceDef {
            group: group.to_string(),
            version: version.to_string(),
            resource: names.plural.clone(),
            kind: names.kind.clone(),
            singular: names.singular.clone(),
            namespaced: spec["scope"] == "Namespaced",
            short_names: names.short_names.clone(),
            categories: names.categories.clone(),
            subresources,
            storage: None,
            custom: Some(Arc::new(custom)),
        };
        if version == storage {
            out.insert(0, def);
        } else {
            out.push(def);
        }
    }
    out
}

/// The object as stored: at the storage version (kube's `None` conversion changes only
/// apiVersion).
pub fn to_storage(def: &ResourceDef, obj: &mut Value) {
    if let Some(c) = &def.custom {
        if obj.is_object() {
            obj["apiVersion"] = json!(format!("{}/{}", def.group, c.storage_version));
        }
    }
}

#[cfg(test)]
mod tests;
