//! `apiregistration.k8s.io/v1` APIService objects: parsed and validated as kube-apiserver's
//! validation does, from files (multi-document YAML or JSON, a `List`, or a directory of them)
//! or from objects the store hands over.

use crate::api::documents;
use base64::Engine;
use serde::Deserialize;
use std::path::PathBuf;

/// A service reference, `spec.service`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

impl ServiceRef {
    /// `namespace/name:port`, the key of `--service-endpoint`.
    pub fn key(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port)
    }

    /// The name the backend's serving certificate must carry, as kube-aggregator checks it.
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.name, self.namespace)
    }
}

/// One validated APIService.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiService {
    pub name: String,
    pub group: String,
    pub version: String,
    pub group_priority_minimum: i32,
    pub version_priority: i32,
    /// None: served by frontdoor itself.
    pub service: Option<ServiceRef>,
    /// PEM bytes of the CA bundle verifying the backend.
    pub ca_bundle: Vec<u8>,
    pub insecure_skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawService {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    port: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    group: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    group_priority_minimum: i64,
    #[serde(default)]
    version_priority: i64,
    service: Option<RawService>,
    #[serde(default)]
    ca_bundle: String,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
struct RawMeta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawApiService {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    spec: RawSpec,
}

impl ApiService {
    /// Parses and validates one object; the error names the field as kube's validation does.
    pub fn from_value(v: serde_json::Value) -> anyhow::Result<Self> {
        // read in place: the object is validated below as it is
        let raw = <RawApiService as serde::Deserialize>::deserialize(&v)?;
        if raw.kind != "APIService" || raw.api_version != "apiregistration.k8s.io/v1" {
            anyhow::bail!("expected apiregistration.k8s.io/v1 APIService, got {} {}", raw.api_version, raw.kind);
        }
        let causes = {
            let mut out = Vec::new();
            crate::store::validate_object::api_service(&v, &mut out);
            out
        };
        if !causes.is_empty() {
            let s = crate::api::Status::invalid("apiregistration.k8s.io", "APIService", &raw.metadata.name, causes);
            anyhow::bail!("{}", s.message);
        }
        let (s, name) = (raw.spec, raw.metadata.name);
        let ca_bundle = if s.ca_bundle.is_empty() {
            Vec::new()
        } else {
            base64::engine::general_purpose::STANDARD.decode(s.ca_bundle.trim()).map_err(|e| {
                anyhow::anyhow!("APIService {name:?} is invalid: spec.caBundle: illegal base64 data: {e}")
            })?
        };
        let service = s.service.map(|svc| ServiceRef {
            namespace: svc.namespace,
            name: svc.name,
            port: svc.port.unwrap_or(443) as u16,
        });
        Ok(ApiService {
            name,
            group: s.group,
            version: s.version,
            group_priority_minimum: s.group_priority_minimum as i32,
            version_priority: s.version_priority as i32,
            service,
            ca_bundle,
            insecure_skip_tls_verify: s.insecure_skip_tls_verify,
        })
    }
}

/// Every document in a text (YAML or JSON, multi-document, `List`s flattened).
pub fn documents(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(documents::parse(text)?.into_iter().flat_map(|d| documents::flatten(d.value)).collect())
}

/// Loads every APIService under `paths`; any bad file fails the whole load (the caller keeps
/// its previous table). Objects of other kinds are skipped, so a directory can be shared.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<ApiService>> {
    let mut out: Vec<ApiService> = Vec::new();
    for f in documents::files(paths)? {
        for d in documents::read(&f)?.into_iter().flat_map(|d| documents::flatten(d.value)) {
            if d.get("kind").and_then(|k| k.as_str()) != Some("APIService") {
                continue;
            }
            let s = ApiService::from_value(d).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            if out.iter().any(|o| o.name == s.name) {
                anyhow::bail!("{}: APIService {:?} defined twice", f.display(), s.name);
            }
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(spec: serde_json::Value, name: &str) -> serde_json::Value {
        serde_json::json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn valid_and_defaults() {
        let s = ApiService::from_value(obj(
            serde_json::json!({"group": "wardle.example.com", "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                "service": {"namespace": "wardle", "name": "api"}, "insecureSkipTLSVerify": true}),
            "v1alpha1.wardle.example.com",
        ))
        .unwrap();
        let svc = s.service.unwrap();
        assert_eq!(svc.port, 443);
        assert_eq!(svc.server_name(), "api.wardle.svc");
        assert_eq!(svc.key(), "wardle/api:443");
    }

    #[test]
    fn invalid_objects_are_named() {
        let spec =
            serde_json::json!({"group": "g.io", "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15});
        let e = ApiService::from_value(obj(spec.clone(), "v2.g.io")).unwrap_err().to_string();
        assert!(e.contains("metadata.name"), "{e}");
        let mut bad = spec.clone();
        bad["versionPriority"] = 0.into();
        assert!(ApiService::from_value(obj(bad, "v1.g.io")).unwrap_err().to_string().contains("versionPriority"));
        let mut both = spec.clone();
        both["service"] = serde_json::json!({"namespace": "n", "name": "s"});
        both["insecureSkipTLSVerify"] = true.into();
        both["caBundle"] = "Zm9v".into();
        assert!(ApiService::from_value(obj(both, "v1.g.io"))
            .unwrap_err()
            .to_string()
            .contains("insecureSkipTLSVerify"));
        assert!(ApiService::from_value(obj(spec, "v1.g.io")).unwrap().service.is_none());
    }

    #[test]
    fn multi_document_and_lists() {
        let text = "---\nkind: APIService\napiVersion: apiregistration.k8s.io/v1\nmetadata: {name: v1.a.io}\nspec: {group: a.io, version: v1, groupPriorityMinimum: 10, versionPriority: 10}\n---\n{\"kind\": \"List\", \"items\": [{\"kind\": \"APIService\"}]}\n";
        let docs = documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(documents("a: [").is_err());
    }
}
