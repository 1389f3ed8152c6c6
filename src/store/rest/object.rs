//! Shared pieces of the verbs: storage errors as kube Statuses, list envelopes, continue
//! tokens, output (JSON or Table) and managedFields.

use super::negotiate::Output;
use super::Target;
use crate::api::Status;
use crate::filters::Reply;
use crate::store::backend::{StorageError, Stored};
use crate::store::fields_v1::{self, Wire};
use crate::store::resources::ResourceDef;
use crate::store::table::{self, IncludeObject};
use crate::store::Store;
use bytes::Bytes;
use serde_json::{json, Value};
use std::borrow::Cow;

/// A storage error as kube words it for `t`'s object `name`.
pub fn status(t: &Target, name: &str, e: StorageError) -> Status {
    let (g, r) = (&t.def.group, &t.def.resource);
    match e {
        StorageError::AlreadyExists => Status::already_exists(g, r, name),
        StorageError::NotFound => Status::not_found(g, r, name),
        StorageError::Conflict => Status::conflict(g, r, name, &e.to_string()),
        StorageError::Expired { .. } => Status::gone("The resourceVersion for the provided list is too old."),
        StorageError::TooLarge { asked, current } => {
            let mut s =
                Status::failure(504, "Timeout", format!("Too large resource version: {asked}, current: {current}"));
            s.details = Some(crate::api::status::StatusDetails { retry_after_seconds: 1, ..Default::default() });
            s
        }
        StorageError::Internal(m) => Status::internal_error(m),
    }
}

/// The object as served, with kind and apiVersion set: borrowed when that is the stored object
/// as it is (most often), so replies and watch events serialize it without copying it.
pub fn present<'a>(store: &Store, t: &Target, obj: &'a Value) -> Cow<'a, Value> {
    present_as(store, t.def, obj)
}

/// `present` for a resource without the rest of a request's target (a detached watch).
pub fn present_as<'a>(store: &Store, def: &ResourceDef, obj: &'a Value) -> Cow<'a, Value> {
    served_kind(def, store.present(def, obj))
}

/// `o` with the kind and apiVersion `def` serves (another version's, a stored object's own).
pub fn served_kind<'a>(def: &ResourceDef, mut o: Cow<'a, Value>) -> Cow<'a, Value> {
    let served = o["kind"] == def.kind.as_str() && o["apiVersion"].as_str().is_some_and(|v| def.is_api_version(v));
    if o.is_object() && !served {
        let m = o.to_mut().as_object_mut().expect("object");
        m.insert("kind".into(), json!(def.kind));
        m.insert("apiVersion".into(), json!(def.api_version()));
    }
    o
}

/// The metadata-only form of `o` (PartialObjectMetadata).
pub fn partial(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()})
}

/// One object as JSON or as a one-row Table.
pub fn reply_object(store: &Store, t: &Target, code: u16, obj: &Value) -> Reply {
    reply_object_raw(store, t, code, obj, None)
}

/// A stored object as JSON or as a one-row Table: JSON of the object as stored is the bytes
/// the backend keeps beside it, not serialized again.
pub fn reply_stored(store: &Store, t: &Target, code: u16, obj: &Stored) -> Reply {
    reply_object_raw(store, t, code, &obj.value, obj.raw.as_ref())
}

/// `reply_object`, with `obj`'s `raw_json` when known.
fn reply_object_raw(store: &Store, t: &Target, code: u16, obj: &Value, raw: Option<&Bytes>) -> Reply {
    let o = present(store, t, obj);
    if t.partial {
        return Reply::json(code, &Wire(&partial(&o)));
    }
    if t.table {
        let meta = json!({"resourceVersion": o["metadata"]["resourceVersion"].clone()});
        let include = IncludeObject::parse(t.query.include_object.as_deref());
        return Reply::json(code, &table::table_of(t.def, &[o], meta, include));
    }
    if let (Output::Json, Cow::Borrowed(_), Some(raw)) = (t.output, &o, raw) {
        return Reply::new(code, "application/json", raw.clone());
    }
    encoded(t.output, code, &Wire(&o), || crate::store::protobuf::encode(&o))
}

/// `value` written as negotiated; protobuf falls back to JSON for what has no protobuf form.
pub(super) fn encoded(
    output: Output,
    code: u16,
    value: &impl serde::Serialize,
    protobuf: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Reply {
    match output {
        Output::Protobuf => match protobuf() {
            Ok(b) => Reply::new(code, super::negotiate::PROTOBUF, b),
            Err(e) => {
                tracing::debug!(error = e, "answering JSON: no protobuf form");
                Reply::json(code, value)
            }
        },
        Output::Yaml => match serde_yaml::to_string(value) {
            Ok(y) => Reply::new(code, "application/yaml", y),
            Err(_) => Reply::json(code, value),
        },
        Output::Json => Reply::json(code, value),
    }
}

/// `f:<name>`, the FieldsV1 key of a field (made once per key of every map a manager owns:
/// without the formatting machinery).
pub fn field_key(name: &str) -> String {
    let mut k = String::with_capacity(name.len() + 2);
    k.push_str("f:");
    k.push_str(name);
    k
}

/// The fields of `obj` a manager owns (everything but kind, apiVersion, status and the
/// server-set metadata), as a set's JSON text: written without building its tree (for a large
/// map the tree was an allocation and a tree node per key, kept for the object's life).
/// A list is owned by its kube list type (`apply::list_changes`), its items for a set or a map
/// list, as an Update over an object without it owns it.
pub fn owned_fields_text(def: &ResourceDef, obj: &Value) -> Value {
    let mut out = Vec::new();
    let mut first = true;
    let mut path = Vec::new();
    out.push(b'{');
    for (k, v) in obj.as_object().into_iter().flatten().filter(|(k, _)| !unmanaged(k)) {
        path.push(k.as_str());
        match v.as_object().filter(|_| k == "metadata") {
            Some(meta) => {
                let mut kept = meta.iter().filter(|(k, _)| managed_meta(k)).peekable();
                if kept.peek().is_none() {
                    path.pop();
                    continue;
                }
                field_key_text(&mut out, k, &mut first);
                out.push(b'{');
                let mut first = true;
                for (k, v) in kept {
                    field_key_text(&mut out, k, &mut first);
                    path.push(k.as_str());
                    set_text(&mut out, def, &mut path, v);
                    path.pop();
                }
                out.push(b'}');
            }
            None => {
                field_key_text(&mut out, k, &mut first);
                set_text(&mut out, def, &mut path, v);
            }
        }
        path.pop();
    }
    out.push(b'}');
    fields_v1::from_text(String::from_utf8(out).expect("written from strings"))
}

/// `new_fields(v)` as JSON text (`.` sorts before every `f:` key).
fn set_text<'a>(out: &mut Vec<u8>, def: &ResourceDef, path: &mut Vec<&'a str>, v: &'a Value) {
    match v {
        Value::Object(_) if super::apply::atomic_at(def, path) => out.extend_from_slice(b"{}"),
        Value::Object(m) => {
            out.push(b'{');
            let mut first = true;
            if !m.is_empty() && !in_zero_object(def, path) {
                out.extend_from_slice(br#"".":{}"#);
                first = false;
            }
            for (k, child) in m {
                field_key_text(out, k, &mut first);
                path.push(k);
                set_text(out, def, path, child);
                path.pop();
            }
            out.push(b'}');
        }
        Value::Array(_) => {
            let set = super::apply::list_changes(def, path, None, v).0.unwrap_or_else(|| json!({}));
            out.extend_from_slice(serde_json::to_string(&set).expect("a set serializes").as_bytes());
        }
        _ => out.extend_from_slice(b"{}"),
    }
}

/// The set an Update owns of `v` at `path`, new where it is: `fields_v1`, with lists owned by
/// their kube list type, and a map or struct that holds something a field of its own (`.`)
/// beside what it holds, as structured-merge-diff's Compare finds it added (`kubectl label`
/// owns `f:labels: {".": {}, "f:x": {}}`); not a struct Go's zero value of the kind already
/// has, since kube compares a create with that ([`in_zero_object`]). An atomic one is a
/// single field (`"f:roleRef":{}`).
fn new_fields<'a>(def: &ResourceDef, path: &mut Vec<&'a str>, v: &'a Value) -> Value {
    match v {
        Value::Object(_) if super::apply::atomic_at(def, path) => json!({}),
        Value::Object(m) => {
            let mut set: serde_json::Map<String, Value> = m
                .iter()
                .map(|(k, child)| {
                    path.push(k);
                    let f = new_fields(def, path, child);
                    path.pop();
                    (field_key(k), f)
                })
                .collect();
            if !m.is_empty() && !in_zero_object(def, path) {
                set.insert(".".into(), json!({}));
            }
            Value::Object(set)
        }
        Value::Array(_) => super::apply::list_changes(def, path, None, v).0.unwrap_or_else(|| json!({})),
        _ => json!({}),
    }
}

/// Whether the field at `path` is a struct (not a pointer to one) of a built-in kind, so
/// present in Go's zero value of the kind: `{"spec":{}}` for a Lease. kube's create compares
/// the new object with that zero value, so such a struct is never added and owns no `.`; a
/// map (labels, data) or a pointer is nil in it, and a custom resource's zero value is empty.
/// A built-in kind's top-level objects are taken for structs (every kind's spec is one, a kind
/// added by `--resources-file` too) but for the maps and pointers listed; below them only the
/// structs listed are (a nested struct of an added kind is taken for a pointer).
fn in_zero_object(def: &ResourceDef, path: &[&str]) -> bool {
    const TOP_NOT_STRUCTS: &[(&str, &str, &str)] = &[
        ("", "ConfigMap", "data"),
        ("", "ConfigMap", "binaryData"),
        ("", "Secret", "data"),
        ("", "Secret", "stringData"),
        ("", "Event", "series"),
        ("events.k8s.io", "Event", "series"),
        ("rbac.authorization.k8s.io", "ClusterRole", "aggregationRule"),
    ];
    const NESTED_STRUCTS: &[(&str, &str, &[&str])] = &[
        ("flowcontrol.apiserver.k8s.io", "FlowSchema", &["spec", "priorityLevelConfiguration"]),
        ("apiextensions.k8s.io", "CustomResourceDefinition", &["spec", "names"]),
    ];
    let this_kind = |group: &str, kind: &str| group == def.group && kind == def.kind;
    match path {
        // the object itself, and its metadata (`{"creationTimestamp":null}` in any kind's)
        [] | ["metadata"] => true,
        _ if def.custom.is_some() => false,
        [top] => !TOP_NOT_STRUCTS.iter().any(|(g, k, f)| this_kind(g, k) && f == top),
        _ => NESTED_STRUCTS.iter().any(|(g, k, p)| this_kind(g, k) && *p == path),
    }
}

/// `"f:<name>":`, a comma before it unless `first`; escaped as serde_json escapes a string.
fn field_key_text(out: &mut Vec<u8>, name: &str, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    out.extend_from_slice(b"\"f:");
    if name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.extend_from_slice(name.as_bytes());
    } else {
        let quoted = serde_json::to_string(name).expect("a string serializes");
        out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    }
    out.extend_from_slice(b"\":");
}

/// Top-level fields no manager owns.
fn unmanaged(field: &str) -> bool {
    matches!(field, "kind" | "apiVersion" | "status")
}

/// The metadata fields a manager owns; the rest are the server's (kube's stripMetaManager
/// strips name, namespace, uid, resourceVersion, generation, creationTimestamp, selfLink and
/// managedFields: `generateName` stays, owned by the manager that created with it).
fn managed_meta(field: &str) -> bool {
    matches!(field, "labels" | "annotations" | "finalizers" | "ownerReferences" | "generateName")
}

/// `obj` without what no manager owns: kind, apiVersion, status and the server-set metadata.
pub fn managed_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.retain(|k, _| !unmanaged(k));
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| managed_meta(k));
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    o
}

/// kube's default field manager name: the user agent up to the first `/`.
pub fn manager(t: &Target) -> String {
    if !t.query.field_manager.is_empty() {
        return t.query.field_manager.clone();
    }
    let ua = t.user_agent.split('/').next().unwrap_or("").trim();
    if ua.is_empty() {
        "unknown".into()
    } else {
        ua.into()
    }
}

/// What an Update changes, in FieldsV1 form: the fields `new` sets differently from `old`
/// (added or modified: the updater takes them) and the fields `old` had that `new` has not
/// (removed: no one owns them any longer).
/// A list is compared by its kube list type (`apply::list_changes`): a set's or a map list's
/// items are owned and removed one by one.
pub fn field_changes(def: &ResourceDef, old: &Value, new: &Value) -> (Value, Value) {
    // compared in place, walking both maps in key order side by side (no search per key: a
    // 265k-key map cost ~40 ms that way); kind and apiVersion are no one's, and of the
    // metadata only what `managed_meta` names
    type Pairs = Vec<(String, Value)>;
    fn diff<'a>(
        def: &ResourceDef,
        path: &mut Vec<&'a str>,
        old: &Value,
        new: &'a Value,
        keep: &dyn Fn(&str) -> bool,
        top: bool,
    ) -> (Pairs, Pairs) {
        let (mut out, mut gone) = (Vec::new(), Vec::new());
        let Some(n) = new.as_object() else { return (out, gone) };
        let mut olds = old.as_object().into_iter().flatten().filter(|(k, _)| keep(k)).peekable();
        let removed = |k: &String, gone: &mut Pairs| gone.push((field_key(k), json!({})));
        for (k, v) in n.iter().filter(|(k, _)| keep(k)) {
            // one comparison of the keys per step (a 265k-key update made three per key)
            let o = loop {
                match olds.peek().map(|(ok, _)| ok.as_str().cmp(k)) {
                    Some(std::cmp::Ordering::Less) => removed(olds.next().expect("peeked").0, &mut gone),
                    Some(std::cmp::Ordering::Equal) => break olds.next().map(|(_, o)| o),
                    _ => break None,
                }
            };
            let meta = top && k == "metadata" && v.is_object();
            path.push(k);
            let atomic = v.is_object() && super::apply::atomic_at(def, path);
            path.pop();
            // two maps are compared by walking them below, once, not also here (an atomic
            // one is a value like any other)
            let maps = !atomic && matches!((o, v), (Some(Value::Object(_)), Value::Object(_)));
            if !meta && !maps && o.is_some_and(|o| same_value(o, v)) {
                continue;
            }
            path.push(k);
            let sub = match (o, v) {
                _ if meta => Some(diff(def, path, o.unwrap_or(&Value::Null), v, &managed_meta, false)),
                (Some(o @ Value::Object(_)), Value::Object(_)) if !atomic => {
                    Some(diff(def, path, o, v, &|_| true, false))
                }
                (o, Value::Array(_)) => {
                    let (changed, lost) = super::apply::list_changes(def, path, o, v);
                    let pairs = |s: Option<Value>| match s {
                        Some(Value::Object(m)) => m.into_iter().collect(),
                        _ => Vec::new(),
                    };
                    // a list that is new, or an atomic one changed, is a field of its own
                    match changed {
                        Some(c) if c.as_object().is_some_and(|m| m.is_empty()) => None,
                        c => Some((pairs(c), pairs(lost))),
                    }
                }
                _ => None,
            };
            let new_map = sub.is_none() && v.is_object();
            let owned = if new_map { new_fields(def, path, v) } else { json!({}) };
            path.pop();
            match sub {
                Some((changed, lost)) => {
                    if !changed.is_empty() {
                        out.push((field_key(k), Value::Object(changed.into_iter().collect())));
                    }
                    if !lost.is_empty() {
                        gone.push((field_key(k), Value::Object(lost.into_iter().collect())));
                    }
                }
                None => out.push((field_key(k), owned)),
            }
        }
        for (ok, _) in olds {
            removed(ok, &mut gone);
        }
        (out, gone)
    }
    let (changed, removed) = diff(def, &mut Vec::new(), old, new, &|k| !matches!(k, "kind" | "apiVersion"), true);
    (Value::Object(changed.into_iter().collect()), Value::Object(removed.into_iter().collect()))
}

/// `a == b`, with two empty strings found equal without comparing their bytes: an empty
/// String's pointer is dangling, and glibc's AVX-512 memcmp reads it with a masked load that
/// costs a microcode assist (~50 ns; a 265k-key ConfigMap of empty values spent ~15 ms there).
pub fn same_value(a: &Value, b: &Value) -> bool {
    let same_str = |x: &str, y: &str| x.len() == y.len() && (x.is_empty() || x == y);
    match (a, b) {
        (Value::String(x), Value::String(y)) => same_str(x, y),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, v), (l, w))| same_str(k, l) && same_value(v, w))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_value(v, w)),
        _ => a == b,
    }
}

/// Records that `manager` owns `fields` of `obj` through `operation` (Update: added to what
/// it owned before; Apply: replacing it).
pub fn record_managed(
    obj: &mut Value,
    fields: Value,
    api_version: &str,
    manager: &str,
    operation: &str,
    subresource: &str,
) {
    let meta = &mut obj["metadata"];
    let mut list: Vec<Value> = match meta.get_mut("managedFields").map(Value::take) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    let same = |e: &Value| is_entry(e, manager, operation, subresource);
    let mut fields = fields;
    if operation != "Apply" {
        // the entry is replaced below: its fields are taken, not copied (nor parsed)
        if let Some(prev) = list.iter_mut().find(|e| same(e)) {
            fields = fields_v1::union(prev["fieldsV1"].take(), &fields);
        }
    }
    let fields = fields_v1::as_text(fields);
    list.retain(|e| !same(e));
    // every set is kept as text (an apply or a client's round trip may have made trees of them)
    fields_v1::hold_entries_as_text(&mut list);
    if !fields_v1::is_empty(&fields) {
        let mut entry = json!({
            "manager": manager, "operation": operation, "apiVersion": api_version,
            "time": super::now(), "fieldsType": "FieldsV1",
        });
        entry["fieldsV1"] = fields; // moved: json! would copy it
        if !subresource.is_empty() {
            entry["subresource"] = json!(subresource);
        }
        list.push(entry);
    }
    if list.is_empty() {
        if let Some(m) = meta.as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        meta["managedFields"] = Value::Array(list);
    }
}

/// kube's decodeManagedFields on a write: the managedFields the written object carries stand
/// when there are some and every entry decodes; else the live object's stand (`live`: none on a
/// create), so a client that does not know managedFields (a PUT of a manifest, a typed
/// client's fresh object) leaves every manager's ownership as it was. `[{}]` alone clears them.
pub fn settle_managed_fields(obj: &mut Value, live: Option<&Value>) {
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let (reset, stand) = match m.get("managedFields") {
        Some(Value::Array(list)) if list.len() == 1 && list[0].as_object().is_some_and(|e| e.is_empty()) => {
            (true, false)
        }
        Some(Value::Array(list)) => (false, !list.is_empty() && list.iter().all(entry_decodes)),
        _ => (false, false),
    };
    if stand {
        return;
    }
    match live.filter(|l| !reset && l.as_array().is_some_and(|a| !a.is_empty())) {
        Some(l) => m.insert("managedFields".into(), l.clone()),
        None => m.remove("managedFields"),
    };
}

/// Whether a managedFields entry decodes as kube's DecodeManagedFields reads one.
fn entry_decodes(e: &Value) -> bool {
    let text = |k: &str| e.get(k).is_none_or(|v| v.is_null() || v.is_string());
    matches!(e["operation"].as_str(), Some("Apply" | "Update"))
        && e["apiVersion"].as_str().is_some_and(|v| !v.is_empty())
        && e["fieldsType"] == "FieldsV1"
        && ["manager", "time", "subresource"].into_iter().all(text)
        && e.get("fieldsV1").is_none_or(|f| f.is_null() || fields_v1::decodes(f))
}

/// Whether managedFields entry `e` is the one of `manager` through `operation` (and
/// `subresource`): one entry per such triple, as kube keeps them.
pub(super) fn is_entry(e: &Value, manager: &str, operation: &str, subresource: &str) -> bool {
    e["manager"] == manager
        && e["operation"] == operation
        && e.get("subresource").and_then(Value::as_str).unwrap_or("") == subresource
}

/// kube's Update ownership (structured-merge-diff's `Updater.update`, forced): the fields an
/// update changed leave every other manager, and the fields it removed leave every manager,
/// the updater's own entry (`manager`/`operation`/`subresource`) too; `record_managed` then
/// adds the changed ones to it.
pub fn disown(obj: &mut Value, changed: &Value, removed: &Value, manager: &str, operation: &str, subresource: &str) {
    let own = |e: &Value| is_entry(e, manager, operation, subresource);
    let Some(Value::Array(list)) = obj["metadata"].get("managedFields") else { return };
    let others = list.iter().any(|e| !own(e));
    let removed = super::apply::paths(removed);
    if !others && removed.is_empty() {
        return;
    }
    let changed = if others { super::apply::paths(changed) } else { Vec::new() };
    let Some(Value::Array(list)) = obj["metadata"].get_mut("managedFields") else { return };
    for e in list.iter_mut() {
        let mine = own(e);
        let mut gone = removed.iter().chain(changed.iter().filter(|_| !mine)).peekable();
        if gone.peek().is_none() {
            continue; // a set nothing leaves is not read
        }
        // left a tree: `record_managed`, which follows, holds every set as text again
        let Some(set) = e.get_mut("fieldsV1") else { continue };
        let mut tree = fields_v1::tree(set).into_owned();
        for p in gone {
            super::apply::remove_fields(&mut tree, p);
        }
        *set = tree;
    }
    list.retain(|e| !fields_v1::is_empty(&e["fieldsV1"]));
    if list.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    pub(super) fn cm() -> ResourceDef {
        crate::store::resources::defaults().into_iter().find(|d| d.resource == "configmaps").unwrap()
    }

    /// `new_fields` of a new map `v` in a ConfigMap's data (what holds something owns `.`).
    fn fields_v1(v: &Value) -> Value {
        new_fields(&cm(), &mut vec!["data", "field"], v)
    }

    /// The set `owned_fields_text` writes, built as a tree (`managed_part` read in place).
    fn owned_fields(obj: &Value) -> Value {
        let Some(m) = obj.as_object() else { return json!({}) };
        let fields = m.iter().filter(|(k, _)| !unmanaged(k)).filter_map(|(k, v)| {
            let owned = match v.as_object().filter(|_| k == "metadata") {
                Some(meta) => {
                    let kept: Map<String, Value> = meta
                        .iter()
                        .filter(|(k, _)| managed_meta(k))
                        .map(|(k, v)| (field_key(k), new_fields(&cm(), &mut vec!["metadata", k], v)))
                        .collect();
                    if kept.is_empty() {
                        return None;
                    }
                    Value::Object(kept)
                }
                None => new_fields(&cm(), &mut vec![k.as_str()], v),
            };
            Some((field_key(k), owned))
        });
        Value::Object(fields.collect())
    }

    #[test]
    fn update_owns_only_what_it_changed() {
        let old = json!({"metadata": {"name": "x"}, "data": {"k": "1", "j": "2"}});
        let new = json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "data": {"k": "1", "j": "3"}});
        assert_eq!(
            field_changes(&cm(), &old, &new).0,
            json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:data": {"f:j": {}}})
        );
        // the server's metadata, kind and apiVersion are no one's; a new map is owned whole
        let old = json!({"kind": "ConfigMap", "metadata": {"name": "x", "resourceVersion": "1"}, "data": {"k": "1"}});
        let new = json!({"kind": "Other", "apiVersion": "v2", "metadata": {"name": "y", "resourceVersion": "2",
            "generation": 3}, "data": {"k": "1"}, "binaryData": {"b": "AA==", "c": "AA=="}});
        assert_eq!(field_changes(&cm(), &old, &new).0, json!({"f:binaryData": {".": {}, "f:b": {}, "f:c": {}}}));
        assert_eq!(field_changes(&cm(), &new, &new).0, json!({}));
    }

    #[test]
    fn the_side_by_side_walk_finds_what_a_search_per_key_finds() {
        // the earlier form of the diff: a search of `old` per key of `new`
        fn by_search(old: &Value, new: &Value) -> Value {
            let mut out = Map::new();
            for (k, v) in new.as_object().into_iter().flatten() {
                let o = old.get(k);
                match (o, v) {
                    _ if o == Some(v) => {}
                    (Some(o @ Value::Object(_)), Value::Object(_)) => {
                        let sub = by_search(o, v);
                        if sub.as_object().is_some_and(|m| !m.is_empty()) {
                            out.insert(field_key(k), sub);
                        }
                    }
                    (_, Value::Object(_)) => {
                        out.insert(field_key(k), fields_v1(v));
                    }
                    _ => {
                        out.insert(field_key(k), json!({}));
                    }
                }
            }
            Value::Object(out)
        }
        // keys in old only, in new only, in both alike or not, maps becoming scalars and back,
        // interleaved in key order (and prefixes of one another)
        let (mut old, mut new) = (Map::new(), Map::new());
        for i in 0..600u32 {
            let k = format!("{:x}", i.wrapping_mul(2654435761) % 4096);
            let v = |n: u32| if n.is_multiple_of(5) { json!({"x": n % 3, "y": {"z": n % 2}}) } else { json!(n % 4) };
            match i % 4 {
                0 => drop(old.insert(k, v(i))),
                1 => drop(new.insert(k, v(i))),
                2 => {
                    old.insert(k.clone(), v(i));
                    new.insert(k, v(i + (i % 3)));
                }
                _ => {
                    old.insert(k.clone(), v(i));
                    new.insert(k, v(i * 7));
                }
            }
        }
        let (old, new) = (json!({"data": old}), json!({"data": new}));
        let want = by_search(&old, &new);
        assert!(want["f:data"].as_object().is_some_and(|m| m.len() > 200), "the table exercises the diff");
        assert_eq!(field_changes(&cm(), &old, &new).0, want);
        assert_eq!(
            field_changes(&cm(), &json!({"data": "scalar"}), &new).0,
            by_search(&json!({"data": "scalar"}), &new)
        );
    }

    #[test]
    fn field_sets() {
        let f = owned_fields(&json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "data": {"k": "v"}}));
        // new maps are fields of their own beside what they hold, as kube's Compare adds them
        assert_eq!(f, json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:data": {".": {}, "f:k": {}}}));
        // read in place, it agrees with the fields of the managed part
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1", "status": {"s": 1},
            "metadata": {"name": "x", "uid": "u", "finalizers": ["a"], "annotations": {"n": "1"}},
            "data": {"k": "v", "nested": {"deep": [1]}}});
        assert_eq!(owned_fields(&obj), new_fields(&cm(), &mut Vec::new(), &managed_part(&obj)));
        let generated = json!({"metadata": {"name": "x-abcde", "generateName": "x-"}});
        assert_eq!(owned_fields(&generated), json!({"f:metadata": {"f:generateName": {}}}));
        let bare = json!({"metadata": {"name": "x"}, "data": {"k": "v"}});
        assert_eq!(owned_fields(&bare), json!({"f:data": {".": {}, "f:k": {}}}));
        // a struct Go's zero value of the kind has is no new field; a custom resource has none
        let lease = crate::store::resources::defaults().into_iter().find(|d| d.resource == "leases").unwrap();
        let spec = json!({"spec": {"holderIdentity": "a"}});
        assert_eq!(
            owned_fields_text(&lease, &spec),
            fields_v1::from_text(r#"{"f:spec":{"f:holderIdentity":{}}}"#.into())
        );
        // a built-in kind known only from --resources-file: its spec is a struct (what is below
        // it is a guess, taken for a pointer)
        let deployment = ResourceDef { group: "apps".into(), kind: "Deployment".into(), ..cm() };
        let d = json!({"spec": {"replicas": 1}});
        assert_eq!(owned_fields_text(&deployment, &d), fields_v1::from_text(r#"{"f:spec":{"f:replicas":{}}}"#.into()));
        let widget = ResourceDef { custom: Some(Default::default()), ..lease };
        assert_eq!(
            owned_fields_text(&widget, &spec),
            fields_v1::from_text(r#"{"f:spec":{".":{},"f:holderIdentity":{}}}"#.into())
        );
    }

    #[test]
    fn same_value_is_equality() {
        let values = [
            json!(""),
            json!("a"),
            json!("b"),
            json!(null),
            json!(1),
            json!({}),
            json!({"": ""}),
            json!({"": "x"}),
            json!({"k": ""}),
            json!({"k": "", "l": [""]}),
            json!({"k": "", "l": ["", {}]}),
            json!([]),
            json!([""]),
            json!(["", ""]),
            json!({"k": {"": {"x": ""}}}),
            json!({"k": {"": {"x": "y"}}}),
        ];
        for a in &values {
            for b in &values {
                assert_eq!(same_value(a, b), a == b, "{a} {b}");
            }
        }
    }

    #[test]
    fn the_owned_set_written_as_text_is_the_tree_serialized() {
        let mut many = Map::new();
        for i in 0..300 {
            many.insert(format!("k{i}"), json!(i));
        }
        for obj in [
            json!({"kind": "ConfigMap", "apiVersion": "v1", "status": {"s": 1},
                "metadata": {"name": "x", "uid": "u", "finalizers": ["a"], "annotations": {"n": "1", "q\"\\\u{1}\u{7f}\u{e9}/": "2"}},
                "data": {"k": "v", "nested": {"deep": [1], "e": {}}, "\u{0}": null}, "many": many}),
            json!({"metadata": {"name": "x"}, "data": {"k": "v"}}),
            json!({"metadata": null, "spec": 1}),
            json!({"metadata": {"labels": {}}}),
            json!({}),
            json!("not an object"),
        ] {
            let text = owned_fields_text(&cm(), &obj);
            let want = serde_json::to_string(&owned_fields(&obj)).unwrap();
            assert_eq!(fields_v1::text(&text), Some(want.as_str()), "{obj}");
        }
    }
}

#[cfg(test)]
mod ownership_tests {
    use super::tests::cm;
    use super::*;

    fn entry(manager: &str, operation: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": operation, "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    /// An Update owns a set's items (`v:`) and a map list's (`k:`, field by field), by kube's
    /// list markers (ObjectMeta's finalizers: +listType=set; ownerReferences: +listType=map,
    /// +listMapKey=uid), as structured-merge-diff's Compare finds them: a list or item that is
    /// new is a field of its own (`.`) beside its items or fields.
    #[test]
    fn an_update_owns_list_items_by_their_list_type() {
        let owner = |uid: &str, name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid});
        let created = json!({"metadata": {"name": "x", "finalizers": ["a/x"], "ownerReferences": [owner("u1", "p")]}});
        let set = fields_v1::tree(&owned_fields_text(&cm(), &created)).into_owned();
        let item = json!({".": {}, "f:apiVersion": {}, "f:kind": {}, "f:name": {}, "f:uid": {}});
        assert_eq!(
            set,
            json!({"f:metadata": {
                "f:finalizers": {".": {}, "v:\"a/x\"": {}},
                "f:ownerReferences": {".": {}, "k:{\"uid\":\"u1\"}": item}}})
        );
        assert_eq!(field_changes(&cm(), &json!({}), &created).0, set, "a create is an update over nothing");

        // an item added to a list there is the item alone; one changed, its changed fields
        let mut new = created.clone();
        new["metadata"]["finalizers"] = json!(["a/x", "b/y"]);
        new["metadata"]["ownerReferences"] = json!([owner("u1", "q"), owner("u2", "p")]);
        let (changed, removed) = field_changes(&cm(), &created, &new);
        assert_eq!(
            changed,
            json!({"f:metadata": {
                "f:finalizers": {"v:\"b/y\"": {}},
                "f:ownerReferences": {"k:{\"uid\":\"u1\"}": {"f:name": {}}, "k:{\"uid\":\"u2\"}": item}}})
        );
        assert_eq!(removed, json!({}));
        // items dropped are removed one by one; a list dropped whole goes whole
        let mut fewer = new.clone();
        fewer["metadata"]["finalizers"] = json!(["b/y"]);
        fewer["metadata"].as_object_mut().unwrap().remove("ownerReferences");
        let (changed, removed) = field_changes(&cm(), &new, &fewer);
        assert_eq!(changed, json!({}));
        assert_eq!(removed, json!({"f:metadata": {"f:finalizers": {"v:\"a/x\"": {}}, "f:ownerReferences": {}}}));
        // a list of no kube type (ConfigMap data holds none; a custom list without markers) is atomic
        let (changed, _) = field_changes(&cm(), &json!({"data": {"k": "1"}}), &json!({"data": {"k": "1"}, "x": [1]}));
        assert_eq!(changed, json!({"f:x": {}}));
    }

    /// structured-merge-diff's forced update: what an Update changes leaves the others, what it
    /// removes leaves everyone; an entry left with nothing goes.
    #[test]
    fn an_update_takes_what_it_changes_and_drops_what_it_removes() {
        let old = json!({"metadata": {"labels": {"x": "1", "y": "2"}}, "data": {"k1": "a", "k2": "b"}});
        let new = json!({"metadata": {"labels": {"y": "2"}}, "data": {"k1": "changed", "k2": "b", "k3": "c"}});
        let (changed, removed) = field_changes(&cm(), &old, &new);
        assert_eq!(changed, json!({"f:data": {"f:k1": {}, "f:k3": {}}}));
        assert_eq!(removed, json!({"f:metadata": {"f:labels": {"f:x": {}}}}));

        let mut obj = new.clone();
        obj["metadata"]["managedFields"] = json!([
            entry("a", "Apply", json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:data": {"f:k1": {}}})),
            entry("b", "Update", json!({"f:data": {"f:k1": {}, "f:k2": {}}})),
            entry("me", "Update", json!({"f:metadata": {"f:labels": {"f:x": {}, "f:y": {}}}})),
        ]);
        disown(&mut obj, &changed, &removed, "me", "Update", "");
        record_managed(&mut obj, changed, "v1", "me", "Update", "");
        let sets: Vec<(String, Value)> = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["manager"].as_str().unwrap().to_string(), fields_v1::tree(&e["fieldsV1"]).into_owned()))
            .collect();
        assert_eq!(
            sets,
            vec![
                ("b".to_string(), json!({"f:data": {"f:k2": {}}})),
                (
                    "me".to_string(),
                    json!({"f:metadata": {"f:labels": {"f:y": {}}}, "f:data": {"f:k1": {}, "f:k3": {}}})
                ),
            ],
            "a lost everything it had; b kept k2; me lost x, took k1 and k3"
        );
    }
}
