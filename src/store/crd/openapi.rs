//! The custom resources' OpenAPI definitions, as kube publishes a CRD's schema: named
//! `<reversed group>.<version>.<Kind>` (`com.example.stable.v1.CronTab`), tagged with its
//! group/version/kind, `metadata` a reference to ObjectMeta, `apiVersion` and `kind` described.

use crate::store::openapi::CustomSchemas;
use crate::store::resources::ResourceDef;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// kube's definition name for a custom kind.
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The definition of one served version.
pub fn definition(def: &ResourceDef) -> Value {
    let schema = def.custom.as_ref().and_then(|c| c.schema.clone());
    let mut d = schema.unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if !d["properties"].is_object() {
        d["properties"] = json!({});
    }
    let props = d["properties"].as_object_mut().expect("object");
    props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
    props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
    props.insert("metadata".into(), json!({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
    d["type"] = json!("object");
    d["x-kubernetes-group-version-kind"] = json!([{"group": def.group, "version": def.version, "kind": def.kind}]);
    d
}

/// The definitions of every served custom version.
pub fn schemas(defs: &[ResourceDef]) -> CustomSchemas {
    let mut kinds = Vec::new();
    let mut definitions = Map::new();
    for d in defs {
        let name = definition_name(&d.group, &d.version, &d.kind);
        definitions.insert(name.clone(), definition(d));
        kinds.push((d.group.clone(), d.version.clone(), d.kind.clone(), name));
    }
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&definitions).unwrap_or_default());
    let fingerprint = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    CustomSchemas { kinds, definitions, fingerprint }
}
