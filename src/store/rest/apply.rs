//! Server-side apply (`application/apply-patch+yaml`) with simple field ownership: the
//! manager owns the fields of its applied configuration; fields it applied before and
//! dropped now are removed unless another manager owns them too; a field another manager set
//! to a different value is a conflict unless `force=true`.

use super::object::{is_entry, record_managed};
use super::write::{
    check_name, check_namespace, check_type, create_value, guaranteed_update, precondition, prepare_update,
};
use super::Target;
use crate::api::status::StatusCause;
use crate::api::Status;
use crate::filters::Reply;
use crate::store::{schema, Store};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// The leaf paths of a FieldsV1 set: `f:` steps by name, and a list item's `v:`/`k:` step as
/// it is written.
fn leaves(set: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(m) = set.as_object() else { return };
    if m.keys().all(|k| k == ".") && !prefix.is_empty() {
        out.push(prefix.clone());
        return;
    }
    for (k, v) in m {
        let step = match k.strip_prefix("f:") {
            Some(name) => name.to_string(),
            None if k.starts_with("v:") || k.starts_with("k:") => k.clone(),
            None => continue,
        };
        prefix.push(step);
        leaves(v, prefix, out);
        prefix.pop();
    }
}

pub(super) fn paths(set: &Value) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    leaves(set, &mut Vec::new(), &mut out);
    out
}

/// What names a list item: a set's item is its value (`v:`), a map list's its keys (`k:`).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Form {
    Value,
    Keys(Vec<String>),
}

/// A `v:`/`k:` step as one text whatever its spelling (a set held in managedFields may come
/// from a client), and the form of item key it names. None for a step that is neither, or
/// not JSON.
fn step_key(step: &str) -> Option<(Form, String)> {
    if let Some(v) = step.strip_prefix("v:") {
        let v: Value = serde_json::from_str(v).ok()?;
        return Some((Form::Value, format!("v:{v}")));
    }
    let Value::Object(keys) = serde_json::from_str(step.strip_prefix("k:")?).ok()? else { return None };
    Some((Form::Keys(keys.keys().cloned().collect()), format!("k:{}", Value::Object(keys))))
}

/// The key of list item `item` in `form`, as `step_key` writes a step; None for a map list's
/// item without every key, which no step names.
fn item_key(form: &Form, item: &Value) -> Option<String> {
    let Form::Keys(names) = form else { return Some(format!("v:{item}")) };
    let mut keys = Map::new();
    for name in names {
        keys.insert(name.clone(), item.get(name)?.clone());
    }
    Some(format!("k:{}", Value::Object(keys)))
}

/// List items found by their `v:`/`k:` steps through an index per list and form, built when
/// first asked: a search per step, parsing the step for every item, made an apply of n list
/// items n² of them (~130k finalizers: minutes of CPU). A list is known by its address, so an
/// index is only good while its list is not changed.
#[derive(Default)]
struct Items {
    index: HashMap<(usize, Form), HashMap<String, usize>>,
}

impl Items {
    /// Where in `list` the item `step` names is (the first, if several).
    fn position(&mut self, list: &[Value], step: &str) -> Option<usize> {
        let (form, key) = step_key(step)?;
        let index = self.index.entry((list.as_ptr() as usize, form)).or_insert_with_key(|(_, form)| {
            let mut at = HashMap::with_capacity(list.len());
            for (n, item) in list.iter().enumerate() {
                if let Some(k) = item_key(form, item) {
                    at.entry(k).or_insert(n);
                }
            }
            at
        });
        index.get(&key).copied()
    }

    /// The value at a leaf path of a set.
    fn lookup<'a>(&mut self, v: &'a Value, path: &[String]) -> Option<&'a Value> {
        path.iter().try_fold(v, |cur, step| match cur {
            Value::Array(a) => self.position(a, step).map(|n| &a[n]),
            _ => cur.get(step),
        })
    }

    fn lookup_mut<'a>(&mut self, v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
        path.iter().try_fold(v, |cur, step| match cur {
            Value::Array(a) => self.position(a, step).map(move |n| &mut a[n]),
            _ => cur.get_mut(step.as_str()),
        })
    }
}

/// Removes the values at `paths` (leaf paths of a set) from `v`: the deepest first, so a list
/// is changed only once every path through it has been followed, and each list's items once.
fn remove_paths(v: &mut Value, paths: &[Vec<String>]) {
    let mut by_parent: HashMap<&[String], Vec<&str>> = HashMap::new();
    for p in paths {
        if let Some((last, parent)) = p.split_last() {
            by_parent.entry(parent).or_default().push(last);
        }
    }
    let mut parents: Vec<_> = by_parent.into_iter().collect();
    parents.sort_by_key(|(parent, _)| std::cmp::Reverse(parent.len()));
    let mut items = Items::default();
    for (parent, lasts) in parents {
        match items.lookup_mut(v, parent) {
            Some(Value::Array(a)) => {
                let mut gone: HashMap<Form, HashSet<String>> = HashMap::new();
                for (form, key) in lasts.iter().filter_map(|s| step_key(s)) {
                    gone.entry(form).or_default().insert(key);
                }
                a.retain(|item| !gone.iter().any(|(f, keys)| item_key(f, item).is_some_and(|k| keys.contains(&k))));
            }
            Some(Value::Object(m)) => {
                for last in lasts {
                    m.remove(last);
                }
            }
            _ => {}
        }
    }
}

/// The paths a manager applied before and no longer applies, to remove: a list item it no
/// longer applies at all goes whole (not field by field, which would leave the item without its
/// key), items before their fields.
fn no_longer_applied(before: &[Vec<String>], wanted: &[Vec<String>]) -> Vec<Vec<String>> {
    // by hash, not by search: applies of many list items compare many paths
    let wanted_paths: HashSet<&[String]> = wanted.iter().map(Vec::as_slice).collect();
    let wanted_prefixes: HashSet<&[String]> = wanted.iter().flat_map(|w| (1..=w.len()).map(move |n| &w[..n])).collect();
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    let mut gone: Vec<Vec<String>> = Vec::new();
    for p in before.iter().filter(|p| !wanted_paths.contains(p.as_slice())) {
        let item_gone = p
            .iter()
            .enumerate()
            .find(|(i, s)| (s.starts_with("k:") || s.starts_with("v:")) && !wanted_prefixes.contains(&p[..=*i]));
        let p = match item_gone {
            Some((i, _)) => p[..=i].to_vec(),
            None => p.clone(),
        };
        if seen.insert(p.clone()) {
            gone.push(p);
        }
    }
    gone.sort_by_key(Vec::len);
    gone
}

/// Where a value sits in its kind's schema: the definition and the property path from it
/// (`[]` for a list's items), to ask list types of.
struct At<'a> {
    def: Option<&'a str>,
    /// A custom resource's schema (its CRD's openAPIV3Schema), whose lists say their type
    /// with `x-kubernetes-list-type` (metadata's are ObjectMeta's).
    custom: Option<&'a Value>,
    path: Vec<String>,
}

impl<'a> At<'a> {
    fn of(def: &'a crate::store::resources::ResourceDef) -> Self {
        let custom = def.custom.as_ref().and_then(|c| c.schema.as_ref());
        At { def: schema::get().kind(&def.group, &def.version, &def.kind), custom, path: Vec::new() }
    }

    fn list_type(&self) -> (String, Vec<String>) {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        if let Some(custom) = self.custom {
            if path.first() == Some(&"metadata") {
                return schema::get().list_type("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", &path[1..]);
            }
            return crate::store::crd::structural::list_type_at(custom, &path);
        }
        let Some(def) = self.def else { return ("atomic".into(), Vec::new()) };
        schema::get().list_type(def, &path)
    }

    /// An atomic map or struct here: a custom resource's `x-kubernetes-map-type: atomic`, a
    /// built-in kind's `+structType=atomic` (a binding's roleRef).
    fn atomic_map(&self) -> bool {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        match (self.custom, self.def) {
            _ if path.is_empty() => false,
            (Some(c), _) if path[0] != "metadata" => crate::store::crd::structural::atomic_map_at(c, &path),
            (Some(_), _) => false,
            (None, Some(def)) => schema::get().atomic_map(def, &path),
            (None, None) => false,
        }
    }
}

/// The key step of a list item: `v:<json>` in a set, `k:{"<key>":..}` in a map list.
fn item_step(list_type: &str, keys: &[String], item: &Value) -> Option<String> {
    match list_type {
        "set" => Some(format!("v:{item}")),
        "map" => {
            let k: Map<String, Value> = keys.iter().map(|k| (k.clone(), item[k.as_str()].clone())).collect();
            Some(format!("k:{}", Value::Object(k)))
        }
        _ => None,
    }
}

/// The FieldsV1 set of an applied configuration, lists by their kube list type: a set's items
/// as `v:` entries, a map list's as `k:` entries, an atomic list whole.
fn fields_of(v: &Value, at: &mut At) -> Value {
    match v {
        Value::Object(_) if at.atomic_map() => json!({}),
        // in key order already, so the map is built in one pass, not by a search per key
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, child)| {
                    at.path.push(k.clone());
                    let f = fields_of(child, at);
                    at.path.pop();
                    (super::object::field_key(k), f)
                })
                .collect(),
        ),
        Value::Array(items) => {
            let (t, keys) = at.list_type();
            let mut out = Map::new();
            for item in items {
                let Some(step) = item_step(&t, &keys, item) else { return json!({}) };
                // a map list's item is a field beside its own (`.`); a set's item is a leaf
                let inner = match t.as_str() {
                    "map" => {
                        at.path.push("[]".into());
                        let mut inner = fields_of(item, at);
                        at.path.pop();
                        if let Some(m) = inner.as_object_mut() {
                            m.insert(".".into(), json!({}));
                        }
                        inner
                    }
                    _ => json!({}),
                };
                out.insert(step, inner);
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// What an Update owns of list `new` at `path` (property names from the object's root), and
/// what it removes from everyone: structured-merge-diff's Compare of the list's old value
/// (None: absent) with it, Added and Modified, and Removed, by the list's kube type. An atomic
/// list is one field, changed whole; a set's items are `v:` fields; a map list's items are `k:`
/// entries, compared field by field. What is new is a field of its own, `.` beside what it
/// holds (a new list, a new map-list item, a map new within one).
pub(super) fn list_changes(
    def: &crate::store::resources::ResourceDef,
    path: &[&str],
    old: Option<&Value>,
    new: &Value,
) -> (Option<Value>, Option<Value>) {
    let mut at = At::of(def);
    at.path = path.iter().map(|s| s.to_string()).collect();
    compare(old, new, &mut at)
}

/// Whether the map or struct at `path` of `def`'s kind is owned whole (atomic).
pub(super) fn atomic_at(def: &crate::store::resources::ResourceDef, path: &[&str]) -> bool {
    let mut at = At::of(def);
    at.path = path.iter().map(|s| s.to_string()).collect();
    at.atomic_map()
}

/// `list_changes` of any value within a list (or the list itself): (changed, removed), each
/// None when empty.
fn compare(old: Option<&Value>, new: &Value, at: &mut At) -> (Option<Value>, Option<Value>) {
    let (mut changed, mut removed) = (Map::new(), Map::new());
    let mut put = |k: String, (c, r): (Option<Value>, Option<Value>), changed: &mut Map<String, Value>| {
        if let Some(c) = c {
            changed.insert(k.clone(), c);
        }
        if let Some(r) = r {
            removed.insert(k, r);
        }
    };
    match new {
        Value::Array(items) => {
            let (t, keys) = at.list_type();
            let steps: Option<Vec<String>> = items.iter().map(|i| item_step(&t, &keys, i)).collect();
            let Some(steps) = steps else {
                // atomic (or an item with no key): one field
                return (old.is_none_or(|o| o != new).then(|| json!({})), None);
            };
            let olds: Vec<(String, &Value)> = match old {
                Some(Value::Array(o)) => o.iter().filter_map(|i| Some((item_step(&t, &keys, i)?, i))).collect(),
                _ => Vec::new(),
            };
            // indexed, as structured-merge-diff indexes both sides: a search per item made an
            // update of a list of n items n² comparisons (100k finalizers: minutes of CPU)
            let mut by_step: HashMap<&str, &Value> = HashMap::with_capacity(olds.len());
            for (step, item) in &olds {
                by_step.entry(step.as_str()).or_insert(*item);
            }
            let new_steps: HashSet<&str> = steps.iter().map(String::as_str).collect();
            for (step, item) in steps.iter().zip(items) {
                match (t.as_str(), by_step.get(step.as_str()).copied()) {
                    ("set", Some(_)) => {}
                    ("set", None) => {
                        changed.insert(step.clone(), json!({}));
                    }
                    (_, was) => {
                        at.path.push("[]".into());
                        let c = compare(was, item, at);
                        at.path.pop();
                        put(step.clone(), c, &mut changed);
                    }
                }
            }
            for (step, _) in olds.iter().filter(|(s, _)| !new_steps.contains(s.as_str())) {
                removed.insert(step.clone(), json!({}));
            }
        }
        Value::Object(m) if !at.atomic_map() => {
            let was = old.and_then(Value::as_object);
            for (k, v) in m {
                at.path.push(k.clone());
                let c = compare(was.and_then(|o| o.get(k)), v, at);
                at.path.pop();
                put(super::object::field_key(k), c, &mut changed);
            }
            for k in was.into_iter().flatten().map(|(k, _)| k).filter(|k| !m.contains_key(*k)) {
                removed.insert(super::object::field_key(k), json!({}));
            }
        }
        _ => return (old.is_none_or(|o| o != new).then(|| json!({})), None),
    }
    let removed = (!removed.is_empty()).then_some(Value::Object(removed));
    let added =
        !matches!((old, new), (Some(Value::Array(_)), Value::Array(_)) | (Some(Value::Object(_)), Value::Object(_)));
    if added && !changed.is_empty() {
        changed.insert(".".into(), json!({}));
    }
    let changed = (added || !changed.is_empty()).then_some(Value::Object(changed));
    (changed, removed)
}

/// What an applied configuration `obj` of `def`'s kind owns, in FieldsV1 form.
pub fn applied_fields(def: &crate::store::resources::ResourceDef, obj: &Value) -> Value {
    let o = super::object::managed_part(obj);
    fields_of(&o, &mut At::of(def))
}

/// Merges an applied configuration into the object: maps merge, a set takes the applied items
/// it lacks, a map list merges items by key, anything else is replaced.
fn merge(target: &mut Value, config: &Value, at: &mut At) {
    match (target, config) {
        (target @ Value::Object(_), Value::Object(_)) if at.atomic_map() => *target = config.clone(),
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                at.path.push(k.clone());
                match t.get_mut(k) {
                    Some(slot) => merge(slot, v, at),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
                at.path.pop();
            }
        }
        (Value::Array(t), Value::Array(c)) => {
            let (lt, keys) = at.list_type();
            match lt.as_str() {
                // the items found by an index, not a search per item (n² for lists of n)
                "set" => {
                    let mut have: HashSet<String> = t.iter().map(Value::to_string).collect();
                    for item in c {
                        if have.insert(item.to_string()) {
                            t.push(item.clone());
                        }
                    }
                }
                "map" => {
                    // (an item without every key names no other)
                    let form = Form::Keys(keys.clone());
                    let key_of = |i: &Value| item_key(&form, i);
                    let mut index: HashMap<String, usize> = HashMap::with_capacity(t.len());
                    for (n, i) in t.iter().enumerate() {
                        if let Some(k) = key_of(i) {
                            index.entry(k).or_insert(n);
                        }
                    }
                    for item in c {
                        let key = key_of(item);
                        at.path.push("[]".into());
                        match key.as_ref().and_then(|k| index.get(k)).copied() {
                            Some(n) => merge(&mut t[n], item, at),
                            None => {
                                if let Some(k) = key {
                                    index.insert(k, t.len());
                                }
                                t.push(item.clone());
                            }
                        }
                        at.path.pop();
                    }
                }
                _ => *t = c.clone(),
            }
        }
        (target, _) => *target = config.clone(),
    }
}

/// Removes `paths` from a FieldsV1 set (a manager losing fields to a forced apply).
pub(super) fn remove_fields(set: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else { return };
    let key = if first.starts_with("v:") || first.starts_with("k:") { first.clone() } else { format!("f:{first}") };
    let Some(m) = set.as_object_mut() else { return };
    if rest.is_empty() {
        m.remove(&key);
        return;
    }
    if let Some(child) = m.get_mut(&key) {
        remove_fields(child, rest);
        if child.as_object().is_some_and(|c| c.keys().all(|k| k == ".")) {
            m.remove(&key);
        }
    }
}

/// kube's BuildManagerIdentifier, as JSON: the manager, its operation, an updater's
/// apiVersion, the subresource (what conflicts are grouped and ordered by).
fn manager_identifier(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    // Go's field order: manager, operation, apiVersion, subresource
    let mut out = format!("{{\"manager\":{},\"operation\":{}", json!(s("manager")), json!(s("operation")));
    if s("operation") == "Update" && !s("apiVersion").is_empty() {
        out.push_str(&format!(",\"apiVersion\":{}", json!(s("apiVersion"))));
    }
    if !s("subresource").is_empty() {
        out.push_str(&format!(",\"subresource\":{}", json!(s("subresource"))));
    }
    out.push('}');
    out
}

/// kube's printManager: the manager quoted, its subresource, and for an updater the
/// apiVersion it used.
fn print_manager(e: &Value) -> String {
    let quote = crate::api::field::quote;
    let mut out = quote(e["manager"].as_str().unwrap_or(""));
    if let Some(sub) = e["subresource"].as_str().filter(|s| !s.is_empty()) {
        out.push_str(&format!(" with subresource {}", quote(sub)));
    }
    if e["operation"] == "Update" {
        out.push_str(&format!(" using {}", e["apiVersion"].as_str().unwrap_or("")));
    }
    out
}

/// kube's getConflictMessage: one conflict on one line; more grouped by manager, in the order
/// of their identifiers, a path per line.
fn conflict_message(conflicts: &[(String, String, String)]) -> String {
    if let [(_, m, path)] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {m}: {path}");
    }
    let mut by: std::collections::BTreeMap<&str, (&str, Vec<&str>)> = std::collections::BTreeMap::new();
    for (id, m, path) in conflicts {
        by.entry(id.as_str()).or_insert((m.as_str(), Vec::new())).1.push(path.as_str());
    }
    let mut lines = Vec::new();
    for (m, paths) in by.values() {
        lines.push(format!("conflicts with {m}:"));
        lines.extend(paths.iter().map(|p| format!("- {p}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// A field's path as structured-merge-diff's Path.String words it in a conflict: `.name` for a
/// field, `[key=value,...]` for a map list's item, `[=value]` for a set's (a string value
/// quoted, as value.ToString quotes it).
fn path_string(p: &[String]) -> String {
    let shown = |v: &Value| match v {
        Value::String(s) => Value::String(s.clone()).to_string(),
        v => v.to_string(),
    };
    let mut out = String::new();
    for step in p {
        if let Some(Ok(Value::Object(keys))) = step.strip_prefix("k:").map(serde_json::from_str::<Value>) {
            let pairs: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={}", shown(v))).collect();
            out.push_str(&format!("[{}]", pairs.join(",")));
        } else if let Some(Ok(v)) = step.strip_prefix("v:").map(serde_json::from_str::<Value>) {
            out.push_str(&format!("[={}]", shown(&v)));
        } else {
            out.push('.');
            out.push_str(step);
        }
    }
    out
}

/// kubectl's client-side apply annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kube's lastAppliedUpdater: a server-side apply by kubectl's own manager keeps an object's
/// client-side apply annotation, where it has one, in step with what was applied (so a later
/// client-side apply diffs against it); dropped when the annotations would grow too large.
fn sync_last_applied(manager: &str, live: &mut Value, applied: &Value) {
    let has = live["metadata"]["annotations"][LAST_APPLIED].as_str().is_some_and(|v| !v.is_empty());
    if manager != "kubectl" || !has {
        return;
    }
    let mut config = applied.clone();
    if let Some(a) = config.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        a.remove(LAST_APPLIED);
    }
    let value = go_json(&config);
    let Some(annotations) = live.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) else {
        return;
    };
    annotations.insert(LAST_APPLIED.into(), Value::String(value));
    let size: usize = annotations.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
    if size > crate::store::validate_object::TOTAL_ANNOTATION_SIZE {
        annotations.remove(LAST_APPLIED);
    }
}

/// JSON as Go's encoding/json Encoder writes it: `api::go_json` and a newline at the end.
fn go_json(v: &Value) -> String {
    let mut out = crate::api::go_json(v);
    out.push('\n');
    out
}

pub fn apply(store: &Store, t: &Target, body: &[u8]) -> Result<Reply, Status> {
    let manager = t.query.field_manager.clone();
    if manager.is_empty() {
        return Err(Status::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![crate::api::field::required("fieldManager", "is required for apply patch")],
        ));
    }
    let crate::api::decode::Strict { value: mut config, duplicates } = crate::api::decode::yaml_strict(body)
        .map_err(|e| Status::bad_request(format!("error decoding YAML: error converting YAML to JSON: {e}")))?;
    super::typed::check_apply(t, &mut config, duplicates)?;
    check_type(t, &mut config)?;
    check_name(t, &mut config)?;
    check_namespace(t, &mut config)?;
    // through /status only the status is applied (kube's status strategy resets the rest), and
    // owned as that subresource's: another manager's status fields conflict as anywhere else
    let mine = match t.subresource.as_str() {
        "status" => match config.get("status") {
            Some(status) => fields_of(&json!({ "status": status }), &mut At::of(t.def)),
            None => json!({}),
        },
        _ => applied_fields(t.def, &config),
    };
    let wanted = paths(&mine);
    let wanted_paths: HashSet<&[String]> = wanted.iter().map(Vec::as_slice).collect();
    let own = |e: &Value| is_entry(e, &manager, "Apply", &t.subresource);
    // an apply creates a missing object when its writer may create it (kube's patch handler
    // authorizes that as `create`), and never through a subresource (kube's subresource stores
    // update with forceAllowCreate off): what was authorized is a patch of the subresource.
    // One gone between that check and this write is NotFound (kube would ask then).
    let missing = || match t.create_right.is_some() {
        true => {
            let mut obj = config.clone();
            sync_last_applied(&manager, &mut obj, &config);
            create_value(store, t, obj, &manager, "Apply")
        }
        false => Err(Status::not_found(&t.def.group, &t.def.resource, &t.name)),
    };
    // a resourceVersion the configuration names is a precondition, as for any update (the
    // applied object carries it into the store's compare), and is not retried
    let want = precondition(&config)?;
    guaranteed_update(store, t, want.is_none(), missing, |existing| {
        if want.is_some_and(|w| w != existing.rev) {
            return Err(super::object::status(t, &t.name, crate::store::backend::StorageError::Conflict));
        }
        // ownership is read and edited here: the sets as trees
        let mut items = Items::default();
        let mut new = (*existing.value).clone();
        crate::store::fields_v1::expand(&mut new);
        let managed: Vec<Value> = new["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        // conflicts: another manager owns a field this apply sets to a different value
        if !t.query.force {
            let mut conflicts = Vec::new();
            for entry in managed.iter().filter(|e| e["manager"] != manager.as_str()) {
                for p in paths(&entry["fieldsV1"]).iter().filter(|p| wanted_paths.contains(p.as_slice())) {
                    if items.lookup(&existing.value, p) != items.lookup(&config, p) {
                        conflicts.push((manager_identifier(entry), print_manager(entry), path_string(p)));
                    }
                }
            }
            if !conflicts.is_empty() {
                let mut s = Status::failure(409, "Conflict", conflict_message(&conflicts));
                s.details = Some(crate::api::status::StatusDetails {
                    causes: conflicts
                        .iter()
                        .map(|(_, m, f)| StatusCause {
                            reason: "FieldManagerConflict".into(),
                            message: format!("conflict with {m}"),
                            field: f.clone(),
                        })
                        .collect(),
                    ..Default::default()
                });
                return Err(s);
            }
        }
        let before = managed.iter().find(|e| own(e)).map(|e| paths(&e["fieldsV1"])).unwrap_or_default();
        // a field this manager stops applying goes only when no other manager owns it (or,
        // for a list item, anything in it), as structured-merge-diff prunes
        let others: Vec<Vec<String>> = managed.iter().filter(|e| !own(e)).flat_map(|e| paths(&e["fieldsV1"])).collect();
        let owned_below: HashSet<&[String]> = others.iter().flat_map(|o| (1..=o.len()).map(move |n| &o[..n])).collect();
        let gone: Vec<Vec<String>> =
            no_longer_applied(&before, &wanted).into_iter().filter(|g| !owned_below.contains(g.as_slice())).collect();
        remove_paths(&mut new, &gone);
        merge(&mut new, &config, &mut At::of(t.def));
        sync_last_applied(&manager, &mut new, &config);
        if t.query.force {
            // a forced apply takes the fields it set to another value away from their managers
            let mut entries: Vec<Value> = new["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
            for e in entries.iter_mut().filter(|e| e["manager"] != manager.as_str()) {
                for p in paths(&e["fieldsV1"]).iter().filter(|p| wanted_paths.contains(p.as_slice())) {
                    if items.lookup(&existing.value, p) != items.lookup(&config, p) {
                        remove_fields(&mut e["fieldsV1"], p);
                    }
                }
            }
            entries.retain(|e| e["fieldsV1"].as_object().is_none_or(|m| !m.is_empty()));
            new["metadata"]["managedFields"] = Value::Array(entries);
        }
        record_managed(&mut new, mine.clone(), &t.def.api_version(), &manager, "Apply", &t.subresource);
        prepare_update(t, &existing.value, new, "Apply")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> crate::store::resources::ResourceDef {
        crate::store::resources::defaults().into_iter().find(|d| d.resource == "configmaps").unwrap()
    }

    #[test]
    fn leaf_paths_and_merge() {
        let f = applied_fields(&cm(), &json!({"metadata": {"labels": {"a": "b"}}, "data": {"k": "v", "j": "w"}}));
        let mut p = paths(&f);
        p.sort();
        assert_eq!(
            p,
            vec![
                vec!["data".to_string(), "j".into()],
                vec!["data".into(), "k".into()],
                vec!["metadata".into(), "labels".into(), "a".into()]
            ]
        );
        let def = schema::get().kind("", "v1", "ConfigMap");
        let mut t = json!({"data": {"k": "1", "x": "2"}});
        merge(&mut t, &json!({"data": {"k": "3"}}), &mut At { def, custom: None, path: Vec::new() });
        remove_paths(&mut t, &[vec!["data".to_string(), "x".to_string()]]);
        assert_eq!(t, json!({"data": {"k": "3"}}));
    }

    /// Items are found by their steps however a step is spelled, and many paths are removed
    /// in one pass per list: set items, map-list items, and fields within map-list items.
    #[test]
    fn list_items_found_and_removed_by_their_steps() {
        let s = |x: &str| x.to_string();
        let obj = json!({"metadata": {"finalizers": ["a", "b", "c", "b"], "ownerReferences": [
            {"uid": "1", "name": "x", "kind": "K"}, {"uid": "2", "name": "y"}, {"name": "no uid"}]}});
        let mut items = Items::default();
        let owners = [s("metadata"), s("ownerReferences")];
        assert_eq!(items.lookup(&obj, &[s("metadata"), s("finalizers"), s(r#"v:"b""#)]), Some(&json!("b")));
        assert_eq!(
            items.lookup(&obj, &[owners[0].clone(), owners[1].clone(), s(r#"k:{ "uid" : "2" }"#), s("name")]),
            Some(&json!("y"))
        );
        assert_eq!(items.lookup(&obj, &[s("metadata"), s("finalizers"), s(r#"v:"z""#)]), None);
        assert_eq!(items.lookup(&obj, &[owners[0].clone(), owners[1].clone(), s(r#"k:{"uid":"3"}"#)]), None);
        let mut t = obj.clone();
        remove_paths(
            &mut t,
            &[
                vec![s("metadata"), s("finalizers"), s(r#"v:"a""#)],
                vec![s("metadata"), s("finalizers"), s(r#"v:"b""#)],
                vec![s("metadata"), s("ownerReferences"), s(r#"k:{"uid":"1"}"#), s("kind")],
                vec![s("metadata"), s("ownerReferences"), s(r#"k:{"uid":"2"}"#)],
            ],
        );
        assert_eq!(
            t["metadata"],
            json!({"finalizers": ["c"], "ownerReferences": [{"uid": "1", "name": "x"}, {"name": "no uid"}]})
        );
    }

    #[test]
    fn finalizers_are_a_set() {
        let f = applied_fields(&cm(), &json!({"metadata": {"finalizers": ["a/x"]}}));
        assert_eq!(f, json!({"f:metadata": {"f:finalizers": {"v:\"a/x\"": {}}}}));
        assert_eq!(paths(&f), vec![vec!["metadata".to_string(), "finalizers".into(), "v:\"a/x\"".into()]]);
        let def = schema::get().kind("", "v1", "ConfigMap");
        let mut t = json!({"metadata": {"finalizers": ["b/y"]}});
        merge(&mut t, &json!({"metadata": {"finalizers": ["a/x"]}}), &mut At { def, custom: None, path: Vec::new() });
        assert_eq!(t["metadata"]["finalizers"], json!(["b/y", "a/x"]));
        remove_paths(&mut t, &paths(&f)[..1]);
        assert_eq!(t["metadata"]["finalizers"], json!(["b/y"]));
        let owners = applied_fields(&cm(), &json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "n"}]}}));
        assert!(owners["f:metadata"]["f:ownerReferences"].get("k:{\"uid\":\"u1\"}").is_some());
    }
}

#[cfg(test)]
mod conflict_tests {
    use super::*;

    #[test]
    fn conflicts_are_worded_and_grouped_as_kube_words_them() {
        let applier = json!({"manager": "m1", "operation": "Apply", "apiVersion": "v1"});
        let updater = json!({"manager": "kubectl-patch", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z"});
        let status = json!({"manager": "ctl", "operation": "Update", "apiVersion": "v1", "subresource": "status"});
        assert_eq!(print_manager(&applier), r#""m1""#);
        assert_eq!(print_manager(&updater), r#""kubectl-patch" using v1"#);
        assert_eq!(print_manager(&status), r#""ctl" with subresource "status" using v1"#);
        let c = |e: &Value, p: &str| (manager_identifier(e), print_manager(e), p.to_string());
        assert_eq!(
            conflict_message(&[c(&updater, ".data.k")]),
            r#"Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.k"#
        );
        let steps = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let owner = steps(&["metadata", "ownerReferences", r#"k:{"uid":"u1"}"#, "name"]);
        assert_eq!(path_string(&owner), r#".metadata.ownerReferences[uid="u1"].name"#);
        let finalizer = steps(&["metadata", "finalizers", r#"v:"a/x""#]);
        assert_eq!(path_string(&finalizer), r#".metadata.finalizers[="a/x"]"#);
        let port = steps(&["spec", "ports", r#"k:{"port":80,"protocol":"TCP"}"#, "name"]);
        assert_eq!(path_string(&port), r#".spec.ports[port=80,protocol="TCP"].name"#);
        let many = [c(&applier, ".data.a"), c(&updater, ".data.k"), c(&applier, ".data.b")];
        assert_eq!(
            conflict_message(&many),
            "Apply failed with 3 conflicts: conflicts with \"kubectl-patch\" using v1:\n- .data.k\nconflicts with \"m1\":\n- .data.a\n- .data.b"
        );
    }
}
