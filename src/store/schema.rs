//! kube's schemas for the built-in kinds frontdoor serves, taken from the `k8s-openapi` crate
//! (its `schemars` feature, Kubernetes 1.37's API): one source for decoding (unknown fields,
//! types, base64), for the checks that keep every stored object decodable by a typed client
//! (required fields), for server-side apply's list types and for `/openapi/v2` and `/openapi/v3`.
//!
//! k8s-openapi's schemas carry no `x-kubernetes-list-type` or patch strategy; its `DeepMerge`
//! implementations do, and `LIST_TYPES` below transcribes them for the served kinds.

use k8s_openapi::api::{authentication, authorization, coordination, core, events, flowcontrol, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// Every definition by kube's name (`io.k8s.api.core.v1.ConfigMap`), with `$ref`s of the
/// form `#/definitions/<name>`, and the kinds that have one.
pub struct Schemas {
    pub definitions: Map<String, Value>,
    /// (group, version, kind, definition name)
    kinds: Vec<(&'static str, &'static str, &'static str, String)>,
}

/// The schemas, built once.
pub fn get() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(build)
}

const DEFINITIONS: &str = "#/definitions/";

/// The definition a `$ref` names.
pub fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(DEFINITIONS)
}

/// List fields' kube list types (`x-kubernetes-list-type`, map keys, patch strategy), as
/// k8s-openapi's `DeepMerge` implementations merge them: (definition, property, type, keys).
const LIST_TYPES: &[(&str, &str, &str, &[&str])] = &[
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "set", &[]),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "map", &["uid"]),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "managedFields", "atomic", &[]),
    ("io.k8s.api.core.v1.NamespaceSpec", "finalizers", "atomic", &[]),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", "map", &["type"]),
    ("io.k8s.api.core.v1.ServiceAccount", "imagePullSecrets", "atomic", &[]),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", "map", &["name"]),
    ("io.k8s.api.rbac.v1.Role", "rules", "atomic", &[]),
    ("io.k8s.api.rbac.v1.ClusterRole", "rules", "atomic", &[]),
    ("io.k8s.api.rbac.v1.AggregationRule", "clusterRoleSelectors", "atomic", &[]),
    ("io.k8s.api.rbac.v1.RoleBinding", "subjects", "atomic", &[]),
    ("io.k8s.api.rbac.v1.ClusterRoleBinding", "subjects", "atomic", &[]),
    ("io.k8s.api.rbac.v1.PolicyRule", "apiGroups", "atomic", &[]),
    ("io.k8s.api.rbac.v1.PolicyRule", "nonResourceURLs", "atomic", &[]),
    ("io.k8s.api.rbac.v1.PolicyRule", "resourceNames", "atomic", &[]),
    ("io.k8s.api.rbac.v1.PolicyRule", "resources", "atomic", &[]),
    ("io.k8s.api.rbac.v1.PolicyRule", "verbs", "atomic", &[]),
    ("io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus", "conditions", "map", &["type"]),
    ("io.k8s.api.flowcontrol.v1.FlowSchemaSpec", "rules", "atomic", &[]),
    ("io.k8s.api.flowcontrol.v1.FlowSchemaStatus", "conditions", "map", &["type"]),
    ("io.k8s.api.flowcontrol.v1.PolicyRulesWithSubjects", "subjects", "atomic", &[]),
    ("io.k8s.api.flowcontrol.v1.PolicyRulesWithSubjects", "resourceRules", "atomic", &[]),
    ("io.k8s.api.flowcontrol.v1.PolicyRulesWithSubjects", "nonResourceRules", "atomic", &[]),
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "verbs", "set", &[]),
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "apiGroups", "set", &[]),
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "resources", "set", &[]),
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "namespaces", "set", &[]),
    ("io.k8s.api.flowcontrol.v1.NonResourcePolicyRule", "verbs", "set", &[]),
    ("io.k8s.api.flowcontrol.v1.NonResourcePolicyRule", "nonResourceURLs", "set", &[]),
    ("io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus", "conditions", "map", &["type"]),
];

/// Structs kube marks `+structType=atomic` (its OpenAPI's `x-kubernetes-map-type: atomic`):
/// owned, replaced and compared whole by server-side apply and managedFields, never field by
/// field (kube's cluster-admin binding shows `"f:roleRef":{}`).
const ATOMIC_STRUCTS: &[&str] = &["io.k8s.api.rbac.v1.RoleRef", "io.k8s.api.core.v1.ObjectReference"];

fn build() -> Schemas {
    let mut settings = schemars::generate::SchemaSettings::draft07();
    settings.definitions_path = "/definitions".into();
    let mut gen = settings.into_generator();
    let mut kinds = Vec::new();
    macro_rules! kinds {
        ($($group:literal, $version:literal, $kind:literal => $t:ty;)*) => {$(
            let s = gen.subschema_for::<$t>();
            let name = ref_name(s.as_value()).expect("a named schema").to_string();
            kinds.push(($group, $version, $kind, name));
        )*};
    }
    kinds! {
        "", "v1", "Namespace" => core::v1::Namespace;
        "", "v1", "ConfigMap" => core::v1::ConfigMap;
        "", "v1", "Secret" => core::v1::Secret;
        "", "v1", "ServiceAccount" => core::v1::ServiceAccount;
        "", "v1", "Event" => core::v1::Event;
        "events.k8s.io", "v1", "Event" => events::v1::Event;
        "rbac.authorization.k8s.io", "v1", "Role" => rbac::v1::Role;
        "rbac.authorization.k8s.io", "v1", "ClusterRole" => rbac::v1::ClusterRole;
        "rbac.authorization.k8s.io", "v1", "RoleBinding" => rbac::v1::RoleBinding;
        "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding" => rbac::v1::ClusterRoleBinding;
        "apiregistration.k8s.io", "v1", "APIService" => apiregistration::APIService;
        "coordination.k8s.io", "v1", "Lease" => coordination::v1::Lease;
        "flowcontrol.apiserver.k8s.io", "v1", "FlowSchema" => flowcontrol::v1::FlowSchema;
        "flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration" => flowcontrol::v1::PriorityLevelConfiguration;
        "apiextensions.k8s.io", "v1", "CustomResourceDefinition" => apiextensions::CustomResourceDefinition;
        "authentication.k8s.io", "v1", "TokenReview" => authentication::v1::TokenReview;
        "authentication.k8s.io", "v1", "TokenRequest" => authentication::v1::TokenRequest;
        "authentication.k8s.io", "v1", "SelfSubjectReview" => authentication::v1::SelfSubjectReview;
        "authorization.k8s.io", "v1", "SubjectAccessReview" => authorization::v1::SubjectAccessReview;
        "authorization.k8s.io", "v1", "SelfSubjectAccessReview" => authorization::v1::SelfSubjectAccessReview;
        "authorization.k8s.io", "v1", "LocalSubjectAccessReview" => authorization::v1::LocalSubjectAccessReview;
        "authorization.k8s.io", "v1", "SelfSubjectRulesReview" => authorization::v1::SelfSubjectRulesReview;
        "", "v1", "DeleteOptions" => meta::DeleteOptions;
        "", "v1", "Status" => meta::Status;
    }
    let mut definitions = gen.take_definitions(false);
    // a CRD schema's `default`, `example` and `enum` values are any JSON (k8s-openapi says object)
    if let Some(Value::Object(d)) = definitions.get_mut("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON")
    {
        d.remove("type");
    }
    for def in ATOMIC_STRUCTS {
        if let Some(d) = definitions.get_mut(*def) {
            d["x-kubernetes-map-type"] = json!("atomic");
        }
    }
    for (def, prop, list_type, keys) in LIST_TYPES {
        let Some(p) = definitions.get_mut(*def).and_then(|d| d["properties"].get_mut(*prop)) else {
            continue;
        };
        p["x-kubernetes-list-type"] = json!(list_type);
        match *list_type {
            "map" => {
                p["x-kubernetes-list-map-keys"] = json!(keys);
                p["x-kubernetes-patch-strategy"] = json!("merge");
                p["x-kubernetes-patch-merge-key"] = json!(keys[0]);
            }
            "set" => p["x-kubernetes-patch-strategy"] = json!("merge"),
            _ => {}
        }
    }
    // every kind is named by its group/version/kind, as kube's documents name them
    for (g, v, k, name) in &kinds {
        if let Some(d) = definitions.get_mut(name.as_str()) {
            let gvks = d.as_object_mut().expect("object").entry("x-kubernetes-group-version-kind").or_insert(json!([]));
            let g = if *k == "DeleteOptions" || *k == "Status" { "meta.k8s.io" } else { g };
            if let Some(a) = gvks.as_array_mut() {
                a.push(json!({"group": g, "version": v, "kind": k}));
            }
        }
    }
    kinds.retain(|(_, _, k, _)| *k != "DeleteOptions" && *k != "Status");
    Schemas { definitions, kinds }
}

impl Schemas {
    /// The definition name of a kind, if it has a schema.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds.iter().find(|(g, v, k, _)| *g == group && *v == version && *k == kind).map(|(.., n)| n.as_str())
    }

    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }

    /// `schema` with its `$ref` followed, and the definition name it came from.
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
        match ref_name(schema) {
            Some(n) => (self.definitions.get(n).unwrap_or(schema), Some(n)),
            None => (schema, None),
        }
    }

    /// The schema at a field path (property names) below a definition, `$ref`s followed;
    /// list items are entered by a `[]` step.
    pub fn at(&self, def: &str, path: &[&str]) -> Option<&Value> {
        let mut cur = self.definitions.get(def)?;
        for step in path {
            let next = if *step == "[]" { cur.get("items")? } else { cur.get("properties")?.get(*step)? };
            cur = self.resolve(next).0;
        }
        Some(cur)
    }

    /// Whether the struct or map at `path` is atomic (`x-kubernetes-map-type: atomic`).
    pub fn atomic_map(&self, def: &str, path: &[&str]) -> bool {
        !path.is_empty() && self.at(def, path).is_some_and(|s| s["x-kubernetes-map-type"] == "atomic")
    }

    /// The list type (`atomic`, `set`, `map` with its keys) of the list at `path`; kube's
    /// default for a list without one is atomic.
    pub fn list_type(&self, def: &str, path: &[&str]) -> (String, Vec<String>) {
        let (parent, last) = match path.split_last() {
            Some((last, init)) => (self.at(def, init), *last),
            None => return ("atomic".into(), Vec::new()),
        };
        let Some(p) = parent.and_then(|p| p.get("properties")).and_then(|p| p.get(last)) else {
            return ("atomic".into(), Vec::new());
        };
        let t = p["x-kubernetes-list-type"].as_str().unwrap_or("atomic").to_string();
        let keys = p["x-kubernetes-list-map-keys"]
            .as_array()
            .map(|a| a.iter().filter_map(|k| k.as_str().map(String::from)).collect());
        (t, keys.unwrap_or_default())
    }
}

/// What decoding an object against its schema found, as kube's decoder reports it.
#[derive(Debug, Default)]
pub struct Decoded {
    /// `unknown field "<path>"` for each field the schema has not (pruned from the object).
    pub unknown: Vec<String>,
    /// The first type error (Go's `json: cannot unmarshal ...`, or a base64 error): the
    /// object cannot be decoded.
    pub error: Option<String>,
}

/// Decodes `obj` as the definition `def` as kube's (Go) decoder would: fields the schema has
/// not are removed and reported; a value of the wrong type is an error; `null`s become what Go
/// would encode again (omitted, or the zero value); bytes must be base64.
pub fn decode(schemas: &Schemas, def: &str, obj: &mut Value) -> Decoded {
    decode_at(schemas, def, obj, "")
}

/// `decode` of a field `at` an object's path (a custom object's `metadata`, decoded as
/// ObjectMeta): its unknown fields are reported under that path.
pub fn decode_at(schemas: &Schemas, def: &str, obj: &mut Value, at: &str) -> Decoded {
    let mut w = Walk { s: schemas, out: Decoded::default(), go_path: Vec::new() };
    let Some(schema) = schemas.definition(def) else { return w.out };
    let strukt = short_struct(def);
    let mut path = at.to_string();
    w.walk(obj, schema, &mut path, strukt, at.is_empty());
    w.out.unknown.sort();
    w.out
}

/// Appends `[<map key>]` to a field path (once per key walked: no string is made for it).
fn push_key(path: &mut String, key: &str) {
    path.push('[');
    path.push_str(key);
    path.push(']');
}

/// Appends `[<list index>]` to a field path.
fn push_index(path: &mut String, i: usize) {
    use std::fmt::Write;
    let _ = write!(path, "[{i}]");
}

/// `io.k8s.api.core.v1.ConfigMap` → `ConfigMap`.
fn short_struct(def: &str) -> &str {
    def.rsplit('.').next().unwrap_or(def)
}

/// Go's name for the type a schema decodes into (`string`, `int32`, `map[string]string`,
/// `v1.ObjectMeta`, `[]uint8`).
fn go_type(s: &Schemas, schema: &Value) -> String {
    if let Some(n) = ref_name(schema) {
        let mut parts = n.rsplitn(3, '.');
        let (t, v) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        return match n {
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => "intstr.IntOrString".into(),
            "io.k8s.apimachinery.pkg.api.resource.Quantity" => "resource.Quantity".into(),
            _ if s.definitions.contains_key(n) => format!("{v}.{t}"),
            _ => t.to_string(),
        };
    }
    match schema["type"].as_str() {
        Some("string") if schema["format"] == "byte" => "[]uint8".into(),
        Some("string") => "string".into(),
        Some("integer") => schema["format"].as_str().unwrap_or("int").to_string(),
        Some("number") => "float64".into(),
        Some("boolean") => "bool".into(),
        Some("array") => format!("[]{}", go_type(s, &schema["items"])),
        Some("object") if schema.get("additionalProperties").is_some_and(Value::is_object) => {
            format!("map[string]{}", go_type(s, &schema["additionalProperties"]))
        }
        _ => "interface {}".into(),
    }
}

/// How Go's decoder names JSON value `v` in a type error, for a target of a number type or not
/// (Go names a number by its text only when the target is a number type).
pub(crate) fn json_kind_into(v: &Value, number_target: bool) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) if number_target => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

struct Walk<'s> {
    s: &'s Schemas,
    out: Decoded,
    /// Go's field stack: JSON names of struct fields from the root (no indices, no map keys).
    go_path: Vec<String>,
}

impl Walk<'_> {
    fn type_error(&mut self, v: &Value, strukt: &str, schema: &Value) {
        if self.out.error.is_some() {
            return;
        }
        let target = go_type(self.s, schema);
        let what = json_kind_into(v, matches!(schema["type"].as_str(), Some("integer" | "number")));
        self.out.error = Some(if self.go_path.is_empty() {
            format!("json: cannot unmarshal {what} into Go value of type {target}")
        } else {
            format!(
                "json: cannot unmarshal {what} into Go struct field {strukt}.{} of type {target}",
                self.go_path.join(".")
            )
        });
    }

    /// Whether `schema` is a string that `walk` checks for nothing but being one.
    fn plain_string(&self, schema: &Value) -> bool {
        matches!(Check::of(self.s.resolve(schema).0), Check::String)
    }

    /// Walks `v` against `schema`; `path` is the field path for unknown-field reports
    /// (`spec.rules[0].verbs`), `strukt` the innermost Go struct's name.
    fn walk(&mut self, v: &mut Value, schema: &Value, path: &mut String, strukt: &str, root: bool) {
        let (schema_r, name) = self.s.resolve(schema);
        let strukt_here = name.map(short_struct).unwrap_or(strukt);
        if v.is_null() {
            return; // the caller decides what a null becomes
        }
        match Check::of(schema_r) {
            Check::IntOrString => {
                if !(v.is_string() || v.as_i64().is_some() || v.as_u64().is_some()) {
                    self.type_error(v, strukt, schema);
                }
            }
            Check::Object { props, extra } => {
                let Some(m) = v.as_object_mut() else { return self.type_error(v, strukt, schema) };
                if props.is_none() && extra.is_none() {
                    return; // free-form (FieldsV1, RawExtension): Go keeps it as it is
                }
                // a map of plain strings (a ConfigMap's data, labels): its string values need
                // no walk, and their schema is resolved once, not once per key
                let plain_strings = extra.is_some_and(|e| self.plain_string(e));
                let mut remove = Vec::new();
                for (k, child) in m.iter_mut() {
                    if root && (k == "apiVersion" || k == "kind") && child.is_string() {
                        continue;
                    }
                    let (child_schema, is_field) = match (props.and_then(|p| p.get(k)), extra) {
                        (Some(s), _) => (s, true),
                        (None, Some(_)) if plain_strings && child.is_string() => continue,
                        (None, Some(s)) => (s, false),
                        (None, None) => {
                            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                            self.out.unknown.push(format!("unknown field \"{p}\""));
                            remove.push(k.clone());
                            continue;
                        }
                    };
                    if child.is_null() {
                        if is_field {
                            remove.push(k.clone());
                        } else {
                            *child = zero(self.s, child_schema);
                        }
                        continue;
                    }
                    let len = path.len();
                    if is_field {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(k);
                        self.go_path.push(k.clone());
                    } else {
                        push_key(path, k);
                    }
                    self.walk(child, child_schema, path, strukt_here, false);
                    if is_field {
                        self.go_path.pop();
                    }
                    path.truncate(len);
                }
                for k in remove {
                    m.remove(&k);
                }
            }
            Check::Array(items) => {
                let Some(a) = v.as_array_mut() else { return self.type_error(v, strukt, schema) };
                for (i, child) in a.iter_mut().enumerate() {
                    if child.is_null() {
                        *child = zero(self.s, items);
                        continue;
                    }
                    let len = path.len();
                    push_index(path, i);
                    self.walk(child, items, path, strukt_here, false);
                    path.truncate(len);
                }
            }
            Check::Bytes => match v {
                Value::String(s) => {
                    if let Err(e) = go_base64(s) {
                        if self.out.error.is_none() {
                            self.out.error = Some(e);
                        }
                    }
                }
                // Go decodes an array of bytes into []byte too; kube stores it as base64
                Value::Array(a) if a.iter().all(|b| b.as_u64().is_some_and(|b| b <= 255)) => {
                    use base64::Engine;
                    let bytes: Vec<u8> = a.iter().filter_map(|b| b.as_u64().map(|b| b as u8)).collect();
                    *v = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
                }
                _ => self.type_error(v, strukt, schema),
            },
            Check::DateTime => match v.as_str() {
                None => self.type_error(v, strukt, schema),
                Some(s) => {
                    if chrono::DateTime::parse_from_rfc3339(s).is_err() && self.out.error.is_none() {
                        self.out.error = Some(format!(
                            "parsing time \"{s}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{s}\" as \"2006\""
                        ));
                    }
                }
            },
            Check::String if !v.is_string() => self.type_error(v, strukt, schema),
            Check::Integer { int32 } => {
                let ok =
                    if int32 { v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()) } else { v.as_i64().is_some() };
                if !ok {
                    self.type_error(v, strukt, schema);
                }
            }
            Check::Number if !v.is_number() => self.type_error(v, strukt, schema),
            Check::Boolean if !v.is_boolean() => self.type_error(v, strukt, schema),
            Check::String | Check::Number | Check::Boolean | Check::Any => {}
        }
    }
}

/// What `walk` checks a value against, read once from a resolved schema: one reading that
/// the walk and its shortcut for maps of plain strings (`plain_string`) share.
enum Check<'s> {
    IntOrString,
    /// Declared fields and the schema of any other key (a map's values).
    Object {
        props: Option<&'s serde_json::Map<String, Value>>,
        extra: Option<&'s Value>,
    },
    Array(&'s Value),
    /// base64 (`format: byte`).
    Bytes,
    DateTime,
    /// A string checked for nothing but being one.
    String,
    Integer {
        int32: bool,
    },
    Number,
    Boolean,
    Any,
}

impl<'s> Check<'s> {
    fn of(r: &'s Value) -> Self {
        if r.get("x-kubernetes-int-or-string").is_some() {
            return Check::IntOrString;
        }
        match (r["type"].as_str(), r["format"].as_str()) {
            (Some("object"), _) => Check::Object {
                props: r.get("properties").and_then(Value::as_object),
                extra: r.get("additionalProperties").filter(|a| a.is_object()),
            },
            (Some("array"), _) => Check::Array(&r["items"]),
            (Some("string"), Some("byte")) => Check::Bytes,
            (Some("string"), Some("date-time")) => Check::DateTime,
            (Some("string"), _) => Check::String,
            (Some("integer"), format) => Check::Integer { int32: format == Some("int32") },
            (Some("number"), _) => Check::Number,
            (Some("boolean"), _) => Check::Boolean,
            _ => Check::Any,
        }
    }
}

/// The value Go encodes for a type's zero value.
fn zero(s: &Schemas, schema: &Value) -> Value {
    let (r, _) = s.resolve(schema);
    if r.get("x-kubernetes-int-or-string").is_some() {
        return json!(0);
    }
    match r["type"].as_str() {
        Some("string") => json!(""),
        Some("integer") | Some("number") => json!(0),
        Some("boolean") => json!(false),
        Some("object") if r.get("properties").is_some() => json!({}),
        _ => Value::Null,
    }
}

/// Go's `base64.StdEncoding` decode (newlines ignored), with its error text.
fn go_base64(s: &str) -> Result<(), String> {
    use base64::Engine;
    let clean: String = s.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    match base64::engine::general_purpose::STANDARD.decode(clean.as_bytes()) {
        Ok(_) => Ok(()),
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => i,
                base64::DecodeError::InvalidLength(n) => n - n % 4,
                base64::DecodeError::InvalidPadding => clean.len().saturating_sub(1),
            };
            Err(format!("illegal base64 data at input byte {at}"))
        }
    }
}

/// The paths of the fields a schema marks required and `obj` lacks (but the root's metadata),
/// so that only objects every typed client can decode are stored.
pub fn missing_required(schemas: &Schemas, def: &str, obj: &Value) -> Vec<String> {
    /// `path` is extended in place: no string is made for a field that is present.
    fn walk(s: &Schemas, v: &Value, schema: &Value, path: &mut String, root: bool, out: &mut Vec<String>) {
        let (r, _) = s.resolve(schema);
        let len = path.len();
        match v {
            Value::Object(m) => {
                // the root's metadata is kube's own validation's (name or generateName)
                let reqs = r["required"].as_array().into_iter().flatten().filter_map(Value::as_str);
                for req in reqs.filter(|r| !(root && *r == "metadata")) {
                    if m.get(req).is_none_or(Value::is_null) {
                        out.push(if path.is_empty() { req.to_string() } else { format!("{path}.{req}") });
                    }
                }
                let props = r.get("properties").and_then(Value::as_object);
                let extra = r.get("additionalProperties").filter(|a| a.is_object());
                for (k, child) in m {
                    // only objects and lists can lack a required field
                    if !(child.is_object() || child.is_array()) {
                        continue;
                    }
                    let cs = match (props.and_then(|p| p.get(k)), extra) {
                        (Some(cs), _) => {
                            if !path.is_empty() {
                                path.push('.');
                            }
                            path.push_str(k);
                            cs
                        }
                        (None, Some(cs)) => {
                            push_key(path, k);
                            cs
                        }
                        _ => continue,
                    };
                    walk(s, child, cs, path, false, out);
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate().filter(|(_, c)| c.is_object() || c.is_array()) {
                    push_index(path, i);
                    walk(s, child, &r["items"], path, false, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(schema) = schemas.definition(def) {
        walk(schemas, obj, schema, &mut String::new(), true, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> &'static str {
        get().kind("", "v1", "ConfigMap").unwrap()
    }

    #[test]
    fn every_served_kind_has_its_schema() {
        let s = get();
        for def in crate::store::resources::defaults() {
            assert!(s.kind(&def.group, &def.version, &def.kind).is_some(), "{}", def.kind);
        }
        let d = s.definition(cm()).unwrap();
        assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], "ConfigMap");
        assert_eq!(s.list_type("io.k8s.api.core.v1.ConfigMap", &["metadata", "finalizers"]).0, "set");
        let (t, keys) = s.list_type("io.k8s.api.core.v1.ConfigMap", &["metadata", "ownerReferences"]);
        assert_eq!((t.as_str(), keys), ("map", vec!["uid".to_string()]));
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labelz": {}},
                           "datax": {"a": "b"}, "data": {"k": "v"}});
        let d = decode(get(), cm(), &mut o);
        assert_eq!(d.unknown, vec![r#"unknown field "datax""#, r#"unknown field "metadata.labelz""#]);
        assert!(d.error.is_none());
        assert_eq!(o, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}));
    }

    #[test]
    fn wrong_types_are_gos_errors() {
        let mut o = json!({"metadata": {"name": "x"}, "data": {"a": 1}});
        assert_eq!(
            decode(get(), cm(), &mut o).error.unwrap(),
            "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"
        );
        let mut o = json!({"metadata": {"name": "x", "labels": {"a": true}}});
        assert_eq!(
            decode(get(), cm(), &mut o).error.unwrap(),
            "json: cannot unmarshal bool into Go struct field ObjectMeta.metadata.labels of type string"
        );
        let mut o = json!({"metadata": "x"});
        assert_eq!(
            decode(get(), cm(), &mut o).error.unwrap(),
            "json: cannot unmarshal string into Go struct field ConfigMap.metadata of type v1.ObjectMeta"
        );
        let secret = get().kind("", "v1", "Secret").unwrap();
        let mut o = json!({"metadata": {"name": "x"}, "data": {"a": "not base64!"}});
        assert_eq!(decode(get(), secret, &mut o).error.unwrap(), "illegal base64 data at input byte 3");
        let mut o = json!({"metadata": {"name": "x"}, "data": {"a": "aGk="}});
        assert!(decode(get(), secret, &mut o).error.is_none());
    }

    #[test]
    fn free_form_objects_are_kept() {
        let mut o = json!({"metadata": {"name": "x", "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {}}}]}});
        let d = decode(get(), cm(), &mut o);
        assert!(d.unknown.is_empty(), "{:?}", d.unknown);
        assert_eq!(o["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:data": {}}));
    }

    #[test]
    fn nulls_become_what_go_encodes() {
        let mut o = json!({"metadata": {"name": "x", "labels": {"a": null}}, "data": null});
        let d = decode(get(), cm(), &mut o);
        assert!(d.error.is_none() && d.unknown.is_empty());
        assert_eq!(o, json!({"metadata": {"name": "x", "labels": {"a": ""}}}));
    }

    #[test]
    fn required_fields_below_the_root() {
        let o = json!({"metadata": {"name": "x", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "y"}]}});
        assert_eq!(missing_required(get(), cm(), &o), vec!["metadata.ownerReferences[0].uid"]);
    }
}
