//! The resources the store serves: kube's built-in ones frontdoor needs, plus any declared in
//! `--resources-file` (a YAML list of the fields of `ResourceDef`).

use crate::api::ApiResource;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDef {
    #[serde(default)]
    pub group: String,
    pub version: String,
    /// Plural, e.g. `configmaps`.
    pub resource: String,
    pub kind: String,
    #[serde(default)]
    pub singular: String,
    pub namespaced: bool,
    #[serde(default)]
    pub short_names: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    /// Only `status` is served.
    #[serde(default)]
    pub subresources: Vec<String>,
    /// The key prefix of the resource whose storage this one shares, when it is another
    /// version of it (events.k8s.io events are core events, as in kube).
    #[serde(skip)]
    pub storage: Option<String>,
    /// What a CustomResourceDefinition says of this served version (schema, columns,
    /// subresources): set for custom resources only.
    #[serde(skip)]
    pub custom: Option<std::sync::Arc<crate::store::crd::Custom>>,
}

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

impl ResourceDef {
    fn new(group: &str, resource: &str, kind: &str, namespaced: bool, short: &[&str], cats: &[&str]) -> Self {
        ResourceDef {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            kind: kind.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: cats.iter().map(|s| s.to_string()).collect(),
            subresources: Vec::new(),
            storage: None,
            custom: None,
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether `s` is this resource's apiVersion, without building it (once per served object).
    pub fn is_api_version(&self, s: &str) -> bool {
        match s.strip_prefix(self.group.as_str()) {
            _ if self.group.is_empty() => s == self.version,
            Some(rest) => rest.strip_prefix('/') == Some(self.version.as_str()),
            None => false,
        }
    }

    /// ServiceAccounts' TokenRequest subresource (`serviceaccounts/token`).
    pub fn has_token(&self) -> bool {
        self.subresources.iter().any(|s| s == "token")
    }

    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    /// The key prefix of this resource: `/registry/<resource>/` for the core group,
    /// `/registry/<group>/<resource>/` for the others.
    pub fn prefix(&self) -> String {
        if let Some(p) = &self.storage {
            return p.clone();
        }
        if self.group.is_empty() {
            format!("/registry/{}/", self.resource)
        } else {
            format!("/registry/{}/{}/", self.group, self.resource)
        }
    }

    /// The key prefix for a list in `namespace` (all namespaces when empty).
    pub fn list_prefix(&self, namespace: &str) -> String {
        if self.namespaced && !namespace.is_empty() {
            format!("{}{}/", self.prefix(), namespace)
        } else {
            self.prefix()
        }
    }

    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}{}/{}", self.prefix(), namespace, name)
        } else {
            format!("{}{}", self.prefix(), name)
        }
    }

    /// How discovery lists it (plus one entry per subresource).
    pub fn api_resources(&self) -> Vec<ApiResource> {
        let mut out = vec![ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            name: self.resource.clone(),
            singular_name: self.singular.clone(),
            namespaced: self.namespaced,
            kind: self.kind.clone(),
            // kube's namespaces have no deletecollection
            verbs: VERBS
                .iter()
                .filter(|v| !(self.group.is_empty() && self.resource == "namespaces" && **v == "deletecollection"))
                .map(|s| s.to_string())
                .collect(),
            short_names: self.short_names.clone(),
            categories: self.categories.clone(),
            ..Default::default()
        }];
        for sub in &self.subresources {
            // a TokenRequest is created, and is of another group, as kube lists it
            let (kind_group, kind, verbs): (&str, &str, &[&str]) = if sub == "token" {
                ("authentication.k8s.io", "TokenRequest", &["create"])
            } else if sub == "scale" {
                ("autoscaling", "Scale", &["get", "patch", "update"])
            } else if sub == "finalize" {
                ("", &self.kind, &["update"])
            } else {
                ("", &self.kind, &["get", "patch", "update"])
            };
            out.push(ApiResource {
                group: self.group.clone(),
                version: self.version.clone(),
                name: format!("{}/{sub}", self.resource),
                namespaced: self.namespaced,
                kind: kind.to_string(),
                kind_group: kind_group.to_string(),
                kind_version: if kind_group.is_empty() { String::new() } else { "v1".into() },
                verbs: verbs.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            });
        }
        out
    }
}

/// Which built-in resources the store keeps in front of an upstream apiserver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builtins {
    /// RBAC is frontdoor's own (an RBAC authorizer reads the store).
    pub rbac: bool,
}

impl Builtins {
    /// Whether `d` stays local: APIServices, RBAC when it is ours, and anything declared in
    /// --resources-file (not one of the defaults).
    pub fn keeps(&self, d: &ResourceDef) -> bool {
        if d.group == "apiregistration.k8s.io" || (self.rbac && d.group == "rbac.authorization.k8s.io") {
            return true;
        }
        !defaults().iter().any(|b| b == d)
    }
}

/// kube's built-in resources that frontdoor serves from its store.
pub fn defaults() -> Vec<ResourceDef> {
    let rbac = "rbac.authorization.k8s.io";
    let mut namespaces = ResourceDef::new("", "namespaces", "Namespace", false, &["ns"], &[]);
    namespaces.subresources = vec!["finalize".into(), "status".into()];
    let mut apiservices =
        ResourceDef::new("apiregistration.k8s.io", "apiservices", "APIService", false, &[], &["api-extensions"]);
    apiservices.subresources = vec!["status".into()];
    let mut events_v1 = ResourceDef::new("events.k8s.io", "events", "Event", true, &["ev"], &[]);
    events_v1.storage = Some("/registry/events/".into());
    let mut serviceaccounts = ResourceDef::new("", "serviceaccounts", "ServiceAccount", true, &["sa"], &[]);
    // API Priority and Fairness's configuration (kube serves it, with status, from its own storage)
    let fc = "flowcontrol.apiserver.k8s.io";
    let mut flowschemas = ResourceDef::new(fc, "flowschemas", "FlowSchema", false, &[], &[]);
    flowschemas.subresources = vec!["status".into()];
    let mut levels = ResourceDef::new(fc, "prioritylevelconfigurations", "PriorityLevelConfiguration", false, &[], &[]);
    levels.subresources = vec!["status".into()];
    let mut crds = ResourceDef::new(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        &["api-extensions"],
    );
    crds.subresources = vec!["status".into()];
    serviceaccounts.subresources = vec!["token".into()];
    vec![
        namespaces,
        ResourceDef::new("", "configmaps", "ConfigMap", true, &["cm"], &[]),
        ResourceDef::new("", "secrets", "Secret", true, &[], &[]),
        serviceaccounts,
        ResourceDef::new("", "events", "Event", true, &["ev"], &[]),
        events_v1,
        ResourceDef::new(rbac, "roles", "Role", true, &[], &[]),
        ResourceDef::new(rbac, "clusterroles", "ClusterRole", false, &[], &[]),
        ResourceDef::new(rbac, "rolebindings", "RoleBinding", true, &[], &[]),
        ResourceDef::new(rbac, "clusterrolebindings", "ClusterRoleBinding", false, &[], &[]),
        apiservices,
        ResourceDef::new("coordination.k8s.io", "leases", "Lease", true, &[], &[]),
        flowschemas,
        levels,
        crds,
    ]
}

/// The defaults plus `file`'s declarations (a YAML list); a declaration of an existing
/// group/resource replaces it.
pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Vec<ResourceDef>> {
    let mut defs = defaults();
    let Some(file) = file else { return Ok(defs) };
    let extra: Vec<ResourceDef> = crate::api::documents::read_config(file, "--resources-file")?;
    for mut d in extra {
        if d.singular.is_empty() {
            d.singular = d.kind.to_ascii_lowercase();
        }
        if d.resource.is_empty() || d.kind.is_empty() || d.version.is_empty() {
            anyhow::bail!("--resources-file {}: resource, kind and version are required", file.display());
        }
        defs.retain(|x| !(x.group == d.group && x.resource == d.resource));
        defs.push(d);
    }
    Ok(defs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_is_told_without_building_it() {
        let cm = ResourceDef::new("", "configmaps", "ConfigMap", true, &[], &[]);
        let role = ResourceDef::new("rbac.authorization.k8s.io", "roles", "Role", true, &[], &[]);
        for def in [&cm, &role] {
            assert!(def.is_api_version(&def.api_version()));
        }
        for wrong in ["", "v2", "rbac.authorization.k8s.io", "rbac.authorization.k8s.iov1", "x/v1", "/v1"] {
            assert!(!cm.is_api_version(wrong), "{wrong}");
            assert!(!role.is_api_version(wrong), "{wrong}");
        }
        assert!(!cm.is_api_version("apps/v1"));
    }

    #[test]
    fn keys_follow_kube_layout() {
        let d = defaults();
        let cm = d.iter().find(|r| r.resource == "configmaps").unwrap();
        assert_eq!(cm.key("ns", "x"), "/registry/configmaps/ns/x");
        assert_eq!(cm.list_prefix(""), "/registry/configmaps/");
        let cr = d.iter().find(|r| r.resource == "clusterroles").unwrap();
        assert_eq!(cr.key("", "admin"), "/registry/rbac.authorization.k8s.io/clusterroles/admin");
        assert!(d.iter().find(|r| r.resource == "apiservices").unwrap().has_status());
    }

    #[test]
    fn upstream_mode_keeps_few_builtins() {
        let mut defs = defaults();
        let mut widgets = defs[0].clone();
        widgets.group = "example.com".into();
        widgets.resource = "widgets".into();
        defs.push(widgets);
        let kept = |rbac: bool| -> Vec<String> {
            defs.iter().filter(|d| Builtins { rbac }.keeps(d)).map(|d| d.resource.clone()).collect()
        };
        assert_eq!(kept(false), vec!["apiservices", "widgets"]);
        assert_eq!(
            kept(true),
            vec!["roles", "clusterroles", "rolebindings", "clusterrolebindings", "apiservices", "widgets"]
        );
    }

    #[test]
    fn file_extends_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.yaml");
        std::fs::write(&f, "- group: example.com\n  version: v1\n  resource: widgets\n  kind: Widget\n  namespaced: true\n  shortNames: [wd]\n").unwrap();
        let defs = load(Some(&f)).unwrap();
        let w = defs.iter().find(|r| r.resource == "widgets").unwrap();
        assert_eq!((w.singular.as_str(), w.short_names.len()), ("widget", 1));
        std::fs::write(&f, "- nonsense: 1\n").unwrap();
        assert!(load(Some(&f)).is_err());
    }
}
