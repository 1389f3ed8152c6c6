//! A custom object against its CRD's structural schema, as kube's apiextensions-apiserver
//! treats it: unknown fields pruned (kept under `x-kubernetes-preserve-unknown-fields`),
//! `default`s applied, then validated with kube's texts (`spec.replicas: Invalid value:
//! "string": spec.replicas in body must be of type integer: "string"`).
//!
//! Our own walk over the openAPIV3Schema subset a structural schema may use, rather than a
//! JSON Schema crate: pruning and defaulting need the same walk, and kube's wording and field
//! paths (`spec.tags[1]`) come from the walk itself, not from a generic error to rewrite.

use crate::api::field::{self, cause};
use crate::api::status::StatusCause;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// Prunes `obj` (the whole object; its apiVersion, kind and metadata are kept) by `schema`
/// and applies its defaults. Returns the paths of the pruned fields (`spec.foo`).
pub fn prune_and_default(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    let Some(m) = obj.as_object_mut() else { return pruned };
    let props = schema["properties"].as_object();
    apply_defaults(schema, m);
    let preserve = preserves(schema);
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(s) => walk(s, m.get_mut(&k).expect("key"), &k, &mut pruned),
            None if preserve => {}
            None => {
                m.remove(&k);
                pruned.push(k);
            }
        }
    }
    pruned
}

/// Whether `prune_and_default` would change `obj`: read in place, so an object that already
/// is in its schema's form (most of them, on most reads) is served as stored, uncopied.
pub fn needs_prune_or_default(schema: &Value, obj: &Value) -> bool {
    let Some(m) = obj.as_object() else { return false };
    if lacks_defaults(schema, m) {
        return true;
    }
    let props = schema["properties"].as_object();
    let preserve = preserves(schema);
    m.iter().filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")).any(|(k, v)| {
        match props.and_then(|p| p.get(k)) {
            Some(s) => walk_needs(s, v),
            None => !preserve,
        }
    })
}

/// Whether `apply_defaults` would set anything in `m`.
fn lacks_defaults(schema: &Value, m: &Map<String, Value>) -> bool {
    schema["properties"].as_object().into_iter().flatten().any(|(k, s)| {
        s.get("default").is_some()
            && match m.get(k) {
                None => true,
                Some(Value::Null) => s["nullable"] != json!(true),
                _ => false,
            }
    })
}

/// Whether `walk` would change `v`.
fn walk_needs(schema: &Value, v: &Value) -> bool {
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        return false;
    }
    match v {
        Value::Object(m) => {
            if lacks_defaults(schema, m) {
                return true;
            }
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = preserves(schema);
            let embedded = schema["x-kubernetes-embedded-resource"] == json!(true);
            m.iter().any(|(k, child)| {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    return false;
                }
                match (props.and_then(|p| p.get(k)), extra) {
                    (Some(s), _) | (None, Some(s)) => walk_needs(s, child),
                    (None, None) => !preserve,
                }
            })
        }
        Value::Array(a) => match schema.get("items").filter(|i| i.is_object()) {
            Some(items) => a.iter().any(|item| walk_needs(items, item)),
            None => false,
        },
        _ => false,
    }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == json!(true)
}

/// Sets each absent (or null and not nullable) property that has a default.
fn apply_defaults(schema: &Value, m: &mut Map<String, Value>) {
    for (k, s) in schema["properties"].as_object().into_iter().flatten() {
        let Some(d) = s.get("default") else { continue };
        let missing = match m.get(k) {
            None => true,
            Some(Value::Null) => s["nullable"] != json!(true),
            _ => false,
        };
        if missing {
            m.insert(k.clone(), d.clone());
        }
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, pruned: &mut Vec<String>) {
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        return;
    }
    match v {
        Value::Object(m) => {
            apply_defaults(schema, m);
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = preserves(schema);
            let embedded = schema["x-kubernetes-embedded-resource"] == json!(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child = format!("{path}.{k}");
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match (props.and_then(|p| p.get(&k)), extra) {
                    (Some(s), _) | (None, Some(s)) => walk(s, m.get_mut(&k).expect("key"), &child, pruned),
                    (None, None) if preserve => {}
                    (None, None) => {
                        m.remove(&k);
                        pruned.push(child);
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
                for (i, item) in a.iter_mut().enumerate() {
                    walk(items, item, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// The list type (`atomic`, `set`, `map` with its keys) of the list at `path` (property names,
/// `[]` for items) in a CRD schema; kube's default is atomic.
pub fn list_type_at(schema: &Value, path: &[&str]) -> (String, Vec<String>) {
    let Some(cur) = schema_at(schema, path) else { return ("atomic".into(), Vec::new()) };
    let t = cur["x-kubernetes-list-type"].as_str().unwrap_or("atomic").to_string();
    let keys =
        cur["x-kubernetes-list-map-keys"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from);
    (t, keys.collect())
}

/// The schema at `path` (property names, `[]` for items) below `schema`.
pub fn schema_at<'a>(schema: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = schema;
    for step in path {
        cur = if *step == "[]" {
            cur.get("items")?
        } else {
            cur["properties"].get(*step).or_else(|| cur.get("additionalProperties").filter(|a| a.is_object()))?
        };
    }
    Some(cur)
}

/// Whether the map or struct at `path` is `x-kubernetes-map-type: atomic` (replaced whole by
/// server-side apply, owned as one field).
pub fn atomic_map_at(schema: &Value, path: &[&str]) -> bool {
    schema_at(schema, path).is_some_and(|s| s["x-kubernetes-map-type"] == "atomic")
}

/// The JSON type name kube's validator reports a value by.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as Go's field errors print it: strings quoted, numbers and booleans bare.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => field::quote(s),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn invalid(path: &str, v: &Value, detail: String) -> StatusCause {
    field::invalid(path, &shown(v), &detail)
}

/// A schema node with CEL rules, the value there and its stored value: its rules run once
/// the schema's own checks are done.
struct Rules<'a> {
    schema: &'a Value,
    v: &'a Value,
    old: Option<&'a Value>,
    path: String,
}

/// Validates `obj` (apiVersion, kind and metadata aside) against `schema`: kube's causes. As
/// kube's strategy does, the CEL rules run after the schema's checks, within one cost budget,
/// and not at all when those found an error that makes the object's size or shape unknown
/// (`hasBlockingErr`: too many items, too long, a wrong type, a value not supported): a rule
/// over a list past its `maxItems` would cost what `maxItems` bounds.
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let Some(m) = obj.as_object() else { return out };
    let mut rules = Vec::new();
    let props = schema["properties"].as_object();
    for (k, v) in m {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)) {
            check(s, v, old.and_then(|o| o.get(k)), k, &mut out, &mut rules);
        }
    }
    for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if !m.contains_key(r) {
            out.push(field::required(r, ""));
        }
    }
    const BLOCKING: [&str; 4] =
        ["FieldValueNotSupported", "FieldValueTooLong", "FieldValueTooMany", "FieldValueTypeInvalid"];
    if out.iter().any(|c| BLOCKING.contains(&c.reason.as_str())) {
        let why = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
        out.push(cause("FieldValueInvalid", "<nil>", format!("Invalid value: \"null\": {why}")));
        return out;
    }
    let mut budget = super::cel::COST_BUDGET;
    // rules at the root see the whole object, of its metadata only the name and generateName
    // (kube's WithTypeAndObjectMeta)
    if schema.get("x-kubernetes-validations").is_some() {
        let (root, old_root) = (cel_root(obj), old.map(cel_root));
        super::cel::check(schema, &root, old_root.as_ref(), "", &mut out, &mut budget);
    }
    for r in rules {
        super::cel::check(r.schema, r.v, r.old, &r.path, &mut out, &mut budget);
    }
    out
}

/// The object as a root rule sees it.
fn cel_root(obj: &Value) -> Value {
    let mut root = obj.clone();
    if let Some(m) = root.get_mut("metadata").and_then(Value::as_object_mut) {
        m.retain(|k, _| k == "name" || k == "generateName");
    }
    root
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn fmt_num(n: &Value) -> String {
    n.to_string()
}

fn check<'a>(
    schema: &'a Value,
    v: &'a Value,
    old: Option<&'a Value>,
    path: &str,
    out: &mut Vec<StatusCause>,
    rules: &mut Vec<Rules<'a>>,
) {
    if v.is_null() {
        if schema["nullable"] == json!(true) {
            return;
        }
        if schema.get("type").is_some() || schema["x-kubernetes-int-or-string"] == json!(true) {
            let t = schema["type"].as_str().unwrap_or("string");
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"null\": {path} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            let t = type_name(v);
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"{t}\": {path} in body must be of type integer,string: \"{t}\""),
            ));
        }
        return;
    }
    if let Some(want) = schema["type"].as_str() {
        let have = type_name(v);
        let ok = match want {
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15),
            other => have == other,
        };
        if !ok {
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"{have}\": {path} in body must be of type {want}: \"{have}\""),
            ));
            return;
        }
    }
    if schema.get("x-kubernetes-validations").is_some() {
        rules.push(Rules { schema, v, old, path: path.to_string() });
    }
    composition(schema, v, path, out);
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(v) {
            let supported: Vec<String> = values.iter().map(shown).collect();
            out.push(cause(
                "FieldValueNotSupported",
                path,
                format!("Unsupported value: {}: supported values: {}", shown(v), supported.join(", ")),
            ));
        }
    }
    match v {
        Value::Number(_) => {
            let n = number(v).unwrap_or(0.0);
            if let Some(min) = schema.get("minimum").filter(|m| m.is_number()) {
                let excl = schema["exclusiveMinimum"] == json!(true);
                let lo = number(min).unwrap_or(0.0);
                if (excl && n <= lo) || n < lo {
                    let rel = if excl { "greater than" } else { "greater than or equal to" };
                    out.push(invalid(path, v, format!("{path} in body should be {rel} {}", fmt_num(min))));
                }
            }
            if let Some(max) = schema.get("maximum").filter(|m| m.is_number()) {
                let excl = schema["exclusiveMaximum"] == json!(true);
                let hi = number(max).unwrap_or(0.0);
                if (excl && n >= hi) || n > hi {
                    let rel = if excl { "less than" } else { "less than or equal to" };
                    out.push(invalid(path, v, format!("{path} in body should be {rel} {}", fmt_num(max))));
                }
            }
            if let Some(m) = schema["multipleOf"].as_f64().filter(|m| *m > 0.0) {
                if (n / m).fract() != 0.0 {
                    out.push(invalid(
                        path,
                        v,
                        format!("{path} in body should be a multiple of {}", schema["multipleOf"]),
                    ));
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64().filter(|m| len > *m) {
                out.push(field::too_long(path, max));
            }
            if let Some(min) = schema["minLength"].as_u64().filter(|m| len < *m) {
                out.push(invalid(path, v, format!("{path} in body should be at least {min} chars long")));
            }
            if let Some(p) = schema["pattern"].as_str() {
                match pattern(p) {
                    Some(re) if !re.is_match(s) => {
                        out.push(invalid(path, v, format!("{path} in body should match '{p}'")));
                    }
                    _ => {}
                }
            }
        }
        Value::Array(a) => {
            if let Some(max) = schema["maxItems"].as_u64().filter(|m| a.len() as u64 > *m) {
                out.push(cause(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {}: must have at most {max} items", a.len()),
                ));
            }
            if let Some(min) = schema["minItems"].as_u64().filter(|m| (a.len() as u64) < *m) {
                out.push(invalid(path, v, format!("{path} in body should have at least {min} items")));
            }
            if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
                // the items of a map list are matched to their stored selves by key, for the
                // rules that name oldSelf (kube's correlation)
                let keys = map_keys(schema);
                let stored: HashMap<String, &Value> = match (&keys, old.and_then(Value::as_array)) {
                    (Some(keys), Some(old)) => old.iter().map(|o| (key_of(keys, o), o)).collect(),
                    _ => HashMap::new(),
                };
                for (i, item) in a.iter().enumerate() {
                    let was = keys.as_ref().and_then(|k| stored.get(&key_of(k, item)).copied());
                    check(items, item, was, &format!("{path}[{i}]"), out, rules);
                }
            }
            list_type(schema, a, path, out);
        }
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if let Some(s) = props.and_then(|p| p.get(k)).or(extra) {
                    check(s, child, old.and_then(|o| o.get(k)), &format!("{path}.{k}"), out, rules);
                }
            }
            for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    out.push(field::required(&format!("{path}.{r}"), ""));
                }
            }
            if let Some(max) = schema["maxProperties"].as_u64().filter(|x| m.len() as u64 > *x) {
                out.push(cause(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {}: must have at most {max} items", m.len()),
                ));
            }
            if let Some(min) = schema["minProperties"].as_u64().filter(|x| (m.len() as u64) < *x) {
                out.push(invalid(path, v, format!("{path} in body should have at least {min} properties")));
            }
        }
        _ => {}
    }
}

/// allOf, anyOf, oneOf and not (value validations only, in a structural schema), with
/// kube-openapi's texts.
fn composition(schema: &Value, v: &Value, path: &str, out: &mut Vec<StatusCause>) {
    // (a structural schema has no CEL rules in these)
    let passes = |s: &Value| {
        let mut o = Vec::new();
        check(s, v, None, path, &mut o, &mut Vec::new());
        o.is_empty()
    };
    for s in schema["allOf"].as_array().into_iter().flatten() {
        check(s, v, None, path, out, &mut Vec::new());
    }
    if let Some(any) = schema["anyOf"].as_array() {
        if !any.iter().any(passes) {
            out.push(invalid(path, v, format!("{path} in body must validate at least one schema (anyOf)")));
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        if one.iter().filter(|s| passes(s)).count() != 1 {
            out.push(invalid(path, v, format!("{path} in body must validate one and only one schema (oneOf)")));
        }
    }
    if let Some(not) = schema.get("not").filter(|n| n.is_object()) {
        if passes(not) {
            out.push(invalid(path, v, format!("{path} in body should not validate the given schema")));
        }
    }
}

/// `x-kubernetes-list-type`: a set has no duplicate, a map no two items with the same keys.
fn list_type(schema: &Value, a: &[Value], path: &str, out: &mut Vec<StatusCause>) {
    match schema["x-kubernetes-list-type"].as_str() {
        // (duplicates found by hashing: a list of 300k tiny items is compared once each)
        Some("set") => {
            let mut seen = HashSet::new();
            for (i, item) in a.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    out.push(cause(
                        "FieldValueDuplicate",
                        &format!("{path}[{i}]"),
                        format!("Duplicate value: {}", shown(item)),
                    ));
                }
            }
        }
        Some("map") => {
            let keys = map_keys(schema).unwrap_or_default();
            let mut seen = HashSet::new();
            for (i, item) in a.iter().enumerate() {
                let k = key_of(&keys, item);
                if !seen.insert(k.clone()) {
                    out.push(cause("FieldValueDuplicate", &format!("{path}[{i}]"), format!("Duplicate value: {k}")));
                }
            }
        }
        _ => {}
    }
}

/// The key fields of a map list (`x-kubernetes-list-map-keys`), when the list is one.
fn map_keys(schema: &Value) -> Option<Vec<&str>> {
    (schema["x-kubernetes-list-type"] == "map").then(|| {
        schema["x-kubernetes-list-map-keys"].as_array().into_iter().flatten().filter_map(Value::as_str).collect()
    })
}

/// A map list item's key, as kube words it in a duplicate's error: `{"k":v,...}`.
fn key_of(keys: &[&str], item: &Value) -> String {
    let key: Map<String, Value> = keys.iter().map(|k| (k.to_string(), item[*k].clone())).collect();
    Value::Object(key).to_string()
}

/// A schema's `pattern`, compiled once per distinct text (checked on every write of every
/// string under it); None when it is not a valid regular expression.
fn pattern(p: &str) -> Option<std::sync::Arc<regex::Regex>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static PATTERNS: OnceLock<Mutex<HashMap<String, Option<Arc<regex::Regex>>>>> = OnceLock::new();
    let mut patterns = PATTERNS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    patterns.entry(p.to_string()).or_insert_with(|| regex::Regex::new(p).ok().map(Arc::new)).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kube's hasBlockingErr: past maxItems the rules do not run (one over the list would
    /// cost what maxItems bounds), and kube's error says so.
    #[test]
    fn rules_wait_for_the_schemas_blocking_errors() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "maxItems": 3, "items": {"type": "integer"},
                "x-kubernetes-validations": [{"rule": "size(self) < 0", "message": "never"}]}}}}});
        let obj = |n: i64| json!({"spec": {"items": (0..n).collect::<Vec<_>>()}});
        let messages = |v: Value| validate(&s, &v, None).into_iter().map(|c| c.message).collect::<Vec<_>>();
        assert_eq!(messages(obj(2)), vec!["Invalid value: \"array\": never"]);
        let m = messages(obj(4));
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0], "Too many: 4: must have at most 3 items");
        assert!(m[1].contains("some validation rules were not checked because the object was invalid"), "{m:?}");
    }

    /// A map list's items are matched to their stored selves by key, so a rule naming oldSelf
    /// on an item holds (an immutable port); a set's duplicates are still found.
    #[test]
    fn map_list_items_see_their_stored_selves() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "x-kubernetes-validations": [
                    {"rule": "self.port == oldSelf.port", "message": "port is immutable"}]}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}}});
        let old = json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 90}]}});
        let new = json!({"spec": {"ports": [{"name": "b", "port": 90}, {"name": "a", "port": 443}, {"name": "c", "port": 1}]}});
        let causes = validate(&s, &new, Some(&old));
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(
            (causes[0].field.as_str(), causes[0].message.as_str()),
            ("spec.ports[1]", "Invalid value: \"object\": port is immutable")
        );
        let dup = validate(&s, &json!({"spec": {"tags": ["x", "y", "x"]}}), None);
        assert_eq!(dup.len(), 1, "{dup:?}");
        assert_eq!(dup[0].field, "spec.tags[2]");
    }

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["image"], "properties": {
                "image": {"type": "string", "minLength": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "cron": {"type": "string", "pattern": "^\\d+$"},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "maxItems": 3, "items": {"type": "string"}},
                "port": {"x-kubernetes-int-or-string": true},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        }})
    }

    #[test]
    fn prunes_unknown_fields_and_applies_defaults() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "junk": 1,
            "spec": {"image": "i", "nope": true, "extra": {"anything": {"deep": 1}}, "labels": {"k": "v"}}});
        let pruned = prune_and_default(&schema(), &mut o);
        assert_eq!(pruned, vec!["junk".to_string(), "spec.nope".to_string()]);
        assert_eq!(o["spec"]["replicas"], 1);
        assert_eq!(o["spec"]["extra"]["anything"]["deep"], 1);
        assert_eq!(o["metadata"]["name"], "a");
        assert!(validate(&schema(), &o, None).is_empty());
    }

    #[test]
    fn the_read_only_check_agrees_with_pruning() {
        let embedded = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"a": {"type": "string"}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer", "default": 0}}}},
            "opt": {"type": "string", "nullable": true, "default": "d"},
        }}}});
        let cases = [
            (
                schema(),
                json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "anything": 1},
                "spec": {"image": "i", "replicas": 2, "extra": {"x": {"y": 1}}, "labels": {"k": "v"}, "port": "p"}}),
            ),
            (schema(), json!({"metadata": {}, "spec": {"image": "i", "replicas": 2}, "status": {"ready": true}})),
            (schema(), json!({"spec": {"image": "i"}})),
            (schema(), json!({"spec": {"image": "i", "replicas": null}})),
            (schema(), json!({"spec": {"image": "i", "replicas": 1}, "junk": 1})),
            (schema(), json!({"spec": {"image": "i", "replicas": 1}, "status": {"ready": true, "junk": 1}})),
            (schema(), json!({"spec": {"image": "i", "replicas": 1, "labels": {"k": "v"}, "port": {"any": 1}}})),
            (schema(), json!("not an object")),
            (
                embedded.clone(),
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "P", "metadata": {}, "a": "x"},
                "items": [{"n": 1}], "opt": null}}),
            ),
            (embedded.clone(), json!({"spec": {"template": {"a": "x", "b": 1}, "opt": null}})),
            (embedded.clone(), json!({"spec": {"items": [{"n": 1}, {}], "opt": "x"}})),
            (embedded.clone(), json!({"spec": {"opt": "x"}})),
            (embedded, json!({"spec": {}})),
        ];
        let mut unchanged = 0;
        for (schema, o) in cases {
            let mut pruned = o.clone();
            prune_and_default(&schema, &mut pruned);
            assert_eq!(needs_prune_or_default(&schema, &o), pruned != o, "{o}");
            unchanged += usize::from(pruned == o);
        }
        assert!(unchanged >= 4, "both answers are covered");
    }

    #[test]
    fn kube_texts() {
        let o = json!({"spec": {"replicas": "string", "mode": "c", "cron": "x", "tags": ["a", "a", "b", "c"], "port": true, "image": ""}});
        let c: Vec<String> =
            validate(&schema(), &o, None).iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        for want in [
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
            "spec.cron: Invalid value: \"x\": spec.cron in body should match '^\\d+$'",
            "spec.tags: Too many: 4: must have at most 3 items",
            "spec.tags[1]: Duplicate value: \"a\"",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "spec.image: Invalid value: \"\": spec.image in body should be at least 1 chars long",
        ] {
            assert!(c.contains(&want.to_string()), "{want} not in {c:#?}");
        }
        let one_of = json!({"type": "object", "properties": {"spec": {"type": "object",
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}], "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}}});
        assert!(validate(&one_of, &json!({"spec": {"a": "x"}}), None).is_empty());
        let c = validate(&one_of, &json!({"spec": {"a": "x", "b": "y"}}), None);
        assert!(c[0].message.ends_with("spec in body must validate one and only one schema (oneOf)"), "{:?}", c);
        let c = validate(&schema(), &json!({"spec": {"replicas": 0}}), None);
        let msgs: Vec<String> = c.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert!(msgs.contains(
            &"spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1".into()
        ));
        assert!(msgs.contains(&"spec.image: Required value".into()));
    }
}
