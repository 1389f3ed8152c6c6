//! create, update (and the status subresource), patch, delete and deletecollection, with
//! kube's optimistic concurrency, finalizers, namespace lifecycle and dryRun.

use super::object::{
    disown, field_changes, manager, owned_fields_text, present, record_managed, reply_object, reply_stored, same_value,
    settle_managed_fields, status,
};
use super::{decode, now, Target};
use crate::api::status::StatusDetails;
use crate::api::Status;
use crate::filters::Reply;
use crate::store::backend::{StorageError, Stored};
use crate::store::fields_v1;
use crate::store::gc::{self, Propagation};
use crate::store::namespace;
use crate::store::resources::ResourceDef;
use crate::store::schema;
use crate::store::validation::{generate_suffix, rule_for, validate_name};
use crate::store::{patch as patches, Store, SYSTEM_NAMESPACES};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Read-modify-write attempts before a patch or unconditional update gives up.
pub(crate) const RETRIES: usize = 10;

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("object")
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v["metadata"][field].as_str().unwrap_or("")
}

/// Whether the resource keeps metadata.generation (kube does for spec-bearing kinds other
/// than the core and RBAC ones it serves here).
fn tracks_generation(def: &ResourceDef) -> bool {
    !matches!(def.group.as_str(), "" | "rbac.authorization.k8s.io" | "coordination.k8s.io" | "events.k8s.io")
}

pub(super) fn not_an_object() -> Status {
    Status::bad_request("the body of the request was not a JSON object")
}

/// Checks the body's kind and apiVersion against the endpoint, filling them when absent.
pub(super) fn check_type(t: &Target, obj: &mut Value) -> Result<(), Status> {
    if !obj.is_object() {
        return Err(not_an_object());
    }
    let want_av = t.def.api_version();
    match obj["apiVersion"].as_str() {
        Some(av) if av != want_av => {
            return Err(Status::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
        _ => obj["apiVersion"] = json!(want_av),
    }
    match obj["kind"].as_str() {
        Some(k) if k != t.def.kind => {
            return Err(Status::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                t.def.kind
            )))
        }
        _ => obj["kind"] = json!(t.def.kind),
    }
    Ok(())
}

pub(super) fn check_namespace(t: &Target, obj: &mut Value) -> Result<(), Status> {
    let m = meta(obj);
    if !t.def.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    match m.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != t.namespace => Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            m.insert("namespace".into(), json!(t.namespace));
            Ok(())
        }
    }
}

/// Resource-specific defaults on create (kube's strategies' PrepareForCreate).
fn defaults_on_create(def: &ResourceDef, obj: &mut Value) {
    match (def.group.as_str(), def.resource.as_str()) {
        ("", "namespaces") => {
            let name = str_of(obj, "name").to_string();
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            let m = meta(obj);
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        ("", "secrets") if obj["type"].as_str().unwrap_or("").is_empty() => {
            obj["type"] = json!("Opaque");
        }
        (crate::store::crd::GROUP, crate::store::crd::RESOURCE) => {
            obj["status"] = crate::store::crd::controller::initial_status(obj);
        }
        _ if def.has_status() => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        _ => {}
    }
    fold_string_data(def, obj);
    api_defaults(def, obj);
    omit_empty(def, obj);
}

/// kube's `omitempty`: ObjectMeta's labels, annotations, finalizers and ownerReferences (of every
/// kind, custom ones' too: kube coerces their metadata through ObjectMeta), and a ConfigMap's or
/// Secret's data, are never stored or served empty. Kept, `labels: {}` would read as a change
/// to GitOps diffs and be owned in managedFields, where kube has no such field.
fn omit_empty(def: &ResourceDef, obj: &mut Value) {
    // (each of these is a map or a list: its zero value is the empty one, or null)
    let omit = |m: &mut Map<String, Value>, keys: &[&str]| {
        for k in keys {
            if m.get(*k).is_some_and(crate::api::is_go_zero) {
                m.remove(*k);
            }
        }
    };
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        omit(m, &["labels", "annotations", "finalizers", "ownerReferences"]);
    }
    let data: &[&str] = match (def.group.as_str(), def.resource.as_str()) {
        ("", "configmaps") => &["data", "binaryData"],
        ("", "secrets") => &["data"],
        _ => &[],
    };
    if let Some(m) = obj.as_object_mut() {
        omit(m, data);
    }
}

/// kube's defaulting of the kinds that have defaults it applies on every decode.
fn api_defaults(def: &ResourceDef, obj: &mut Value) {
    if def.group == crate::flowcontrol::apf::ensurer::GROUP {
        crate::flowcontrol::apf::validation::set_defaults(&def.resource, obj);
    }
    // kube-aggregator's: a service's port is 443 unless given
    if def.group == "apiregistration.k8s.io" {
        if let Some(svc) = obj.pointer_mut("/spec/service").and_then(Value::as_object_mut) {
            if svc.get("port").is_none_or(Value::is_null) {
                svc.insert("port".into(), json!(443));
            }
        }
    }
}

/// A Secret's stringData is write-only: merged into data, base64-encoded.
fn fold_string_data(def: &ResourceDef, obj: &mut Value) {
    if def.group.is_empty() && def.resource == "secrets" {
        if !(obj["data"].is_object() || obj["data"].is_null()) {
            return; // a malformed data field is stored as sent, never indexed into
        }
        if let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
            use base64::Engine;
            for (k, v) in sd {
                let enc = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or("").as_bytes());
                obj["data"][k.as_str()] = json!(enc);
            }
        }
    }
}

pub fn create(store: &Store, t: &Target, body: &[u8], _user: &str) -> Result<Reply, Status> {
    let obj = super::decode_typed(t, body)?;
    create_value(store, t, obj, &manager(t), "Update")
}

/// create, for a decoded object; `operation` is how managedFields records it.
pub fn create_value(
    store: &Store,
    t: &Target,
    mut obj: Value,
    manager: &str,
    operation: &str,
) -> Result<Reply, Status> {
    // an apply owns the fields it sent, not what defaulting adds to them (kube's managed
    // fields of an apply are the applied configuration's), or a second apply of the same
    // configuration would drop the defaults as no longer applied
    let applied = (operation == "Apply").then(|| super::apply::applied_fields(t.def, &obj));
    check_type(t, &mut obj)?;
    check_namespace(t, &mut obj)?;
    let m = meta(&mut obj);
    if m.get("name").and_then(Value::as_str).unwrap_or("").is_empty() {
        if let Some(g) = m.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty()) {
            // kube's SimpleNameGenerator: the base is cut to 58 characters, so the name fits a label
            let base: String = g.chars().take(58).collect();
            let name = format!("{base}{}", generate_suffix());
            m.insert("name".into(), json!(name));
        }
    }
    let name = str_of(&obj, "name").to_string();
    let causes = validate_name(rule_for(&t.def.group, &t.def.resource), &name);
    if !causes.is_empty() {
        return Err(Status::invalid(&t.def.group, &t.def.kind, &name, causes));
    }
    if !str_of(&obj, "resourceVersion").is_empty() {
        return Err(Status::bad_request("resourceVersion should not be set on objects to be created"));
    }
    namespace::admit_create(store, t.def, &t.namespace, &name)?;
    let m = meta(&mut obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now()));
    for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"] {
        m.remove(k);
    }
    if tracks_generation(t.def) {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    defaults_on_create(t.def, &mut obj);
    if operation != "Apply" {
        settle_managed_fields(&mut obj, None);
    }
    // RBAC's own checks (its validation, in kube's words, and escalation) come first, as the
    // RBAC storage runs them before the generic store's
    if let Some(admit) = &t.admit {
        admit(None, Some(&mut obj))?;
    }
    validate(t, &mut obj, None)?;
    // a writer without `create` learns what is wrong with the object first, as from kube
    if let Some(Err(refused)) = &t.create_right {
        return Err(refused.clone());
    }
    let fields = applied.unwrap_or_else(|| owned_fields_text(t.def, &obj));
    record_managed(&mut obj, fields, &t.def.api_version(), manager, operation, "");
    let key = t.def.key(&t.namespace, &name);
    let refused = |e: StorageError| {
        let mut s = status(t, &name, e);
        // kube's generic store says when the one in the way is on its way out
        if s.code == 409 && store.storage.get(&key).is_some_and(|o| namespace::terminating(&o.value)) {
            s.message = format!("object is being deleted: {}", s.message);
        }
        s
    };
    if t.query.dry_run() {
        // kube's DryRunnableStorage.Create: one in the way is found as the create would find it
        if store.storage.get(&key).is_some() {
            return Err(refused(StorageError::AlreadyExists));
        }
        return Ok(reply_object(store, t, 201, &obj));
    }
    let stored = store.create(t.def, &key, obj).map_err(refused)?;
    Ok(reply_stored(store, t, 201, &stored))
}

fn owners(m: &serde_json::Map<String, Value>) -> &[Value] {
    m.get("managedFields").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// Whether two objects differ only in what the server maintains in their metadata (a no-op
/// update), compared in place. Who owns which fields is not server-maintained: a manager newly
/// owning a field (an apply that agrees with the object) is a change, a new timestamp is not.
fn same_but_server_fields(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
    let kept = |(k, _): &(&String, &Value)| !matches!(k.as_str(), "resourceVersion" | "managedFields" | "generation");
    let untimed = |(k, _): &(&String, &Value)| k.as_str() != "time";
    let same_owners = |m: &serde_json::Map<String, Value>, w: &serde_json::Map<String, Value>| {
        let (x, y) = (owners(m), owners(w));
        x.len() == y.len()
            && x.iter().zip(y).all(|(e, f)| match (e.as_object(), f.as_object()) {
                (Some(e), Some(f)) => {
                    // a set compares by the fields it names, held as text or as a tree
                    let (mut e, mut f) = (e.iter().filter(untimed), f.iter().filter(untimed));
                    loop {
                        match (e.next(), f.next()) {
                            (None, None) => break true,
                            (Some((k, v)), Some((l, w))) if k == l => {
                                let same = if k == "fieldsV1" { fields_v1::same(v, w) } else { v == w };
                                if !same {
                                    break false;
                                }
                            }
                            _ => break false,
                        }
                    }
                }
                _ => e == f,
            })
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| match (b.get(k), v.as_object().filter(|_| k == "metadata")) {
            (None, _) => false,
            (Some(Value::Object(w)), Some(m)) => m.iter().filter(kept).eq(w.iter().filter(kept)) && same_owners(m, w),
            (Some(w), _) => same_value(v, w),
        })
}

/// The spec-ish part of an object, whose change bumps metadata.generation.
fn spec_of(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// Builds the object to store from the incoming one and the current one (kube's
/// PrepareForUpdate plus ObjectMeta's immutable fields).
pub(super) fn prepare_update(
    t: &Target,
    existing: &Value,
    mut incoming: Value,
    operation: &str,
) -> Result<Value, Status> {
    let name = t.name.clone();
    // a uid in the object is a precondition (kube's UpdatedObjectInfo.Preconditions)
    let (want_uid, have_uid) = (str_of(&incoming, "uid"), str_of(existing, "uid"));
    if !want_uid.is_empty() && want_uid != have_uid {
        return Err(Status::conflict(
            &t.def.group,
            &t.def.resource,
            &name,
            &format!("Precondition failed: UID in precondition: {want_uid}, UID in object meta: {have_uid}"),
        ));
    }
    let mut new = if t.subresource == "status" {
        let mut n = existing.clone();
        n["status"] = incoming.get("status").cloned().unwrap_or(Value::Null);
        if n["status"].is_null() {
            n.as_object_mut().expect("object").remove("status");
        }
        if operation == "Apply" {
            // an apply's ownership is worked out before (and is of the status it applied)
            match incoming["metadata"].get_mut("managedFields").map(Value::take) {
                Some(m) => meta(&mut n).insert("managedFields".into(), m),
                None => meta(&mut n).remove("managedFields"),
            };
        }
        n
    } else {
        if t.def.has_status() {
            match existing.get("status") {
                Some(s) => incoming["status"] = s.clone(),
                None => {
                    incoming.as_object_mut().expect("object").remove("status");
                }
            }
        }
        incoming
    };
    fold_string_data(t.def, &mut new);
    api_defaults(t.def, &mut new);
    omit_empty(t.def, &mut new);
    if namespace::is_namespaces(t.def) {
        namespace::prepare_update(&t.subresource, existing, &mut new);
    }
    let old_meta = &existing["metadata"];
    // kube's BeforeUpdate and ValidateObjectMetaUpdate: a deleting object's deletionTimestamp
    // is kept whatever is sent (a client's own time format for it is no change), so only one
    // set on a live object is refused; a grace period sent must be the stored one (as a number)
    let immutable = |k: &str, v: &Value| {
        let shown = v.as_str().map_or_else(|| v.to_string(), crate::api::field::quote);
        let cause = crate::api::field::invalid(&format!("metadata.{k}"), &shown, "field is immutable");
        Status::invalid(&t.def.group, &t.def.kind, str_of(existing, "name"), vec![cause])
    };
    let sent = |k: &str| new["metadata"].get(k).filter(|v| !v.is_null()).cloned();
    if let (Some(v), None) = (sent("deletionTimestamp"), old_meta.get("deletionTimestamp")) {
        return Err(immutable("deletionTimestamp", &v));
    }
    if let Some(v) = sent("deletionGracePeriodSeconds") {
        if old_meta["deletionGracePeriodSeconds"].as_i64() != v.as_i64() {
            return Err(immutable("deletionGracePeriodSeconds", &v));
        }
    }
    let m = meta(&mut new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
        "generation",
    ] {
        match old_meta.get(k) {
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
    if operation != "Apply" {
        settle_managed_fields(&mut new, old_meta.get("managedFields"));
    }
    let m = meta(&mut new);
    if old_meta.get("deletionTimestamp").is_some() {
        let old: Vec<&Value> = old_meta["finalizers"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        let mut added: Vec<&str> = m
            .get("finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| !old.contains(f))
            .filter_map(Value::as_str)
            .collect();
        if !added.is_empty() {
            // kube's ValidateNoNewFinalizers: the set of new ones, sorted, as Go's %#v prints it
            added.sort_unstable();
            added.dedup();
            let listed: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            let message = format!(
                "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                listed.join(", ")
            );
            return Err(Status::invalid(
                &t.def.group,
                &t.def.kind,
                &name,
                vec![crate::api::field::forbidden("metadata.finalizers", &message)],
            ));
        }
    }
    if tracks_generation(t.def) && spec_of(&new) != spec_of(existing) {
        let g = old_meta["generation"].as_i64().unwrap_or(0) + 1;
        meta(&mut new).insert("generation".into(), json!(g));
    }
    if operation != "Apply" {
        let (fields, removed) = field_changes(t.def, existing, &new);
        let manager = manager(t);
        disown(&mut new, &fields, &removed, &manager, operation, &t.subresource);
        record_managed(&mut new, fields, &t.def.api_version(), &manager, operation, &t.subresource);
    }
    Ok(new)
}

/// kube's validation of the object about to be stored (over `old` on an update): a 422.
pub(crate) fn validate(t: &Target, obj: &mut Value, old: Option<&Value>) -> Result<(), Status> {
    // a custom object is stored pruned and defaulted, whichever verb made it (apply, patch)
    if let Some(schema) = t.def.custom.as_ref().and_then(|c| c.schema.as_ref()) {
        crate::store::crd::structural::prune_and_default(schema, obj);
    }
    if crate::store::crd::is_crds(t.def) {
        crate::store::crd::validate::set_defaults(obj);
    }
    let obj = &*obj;
    if t.def.custom.is_some() {
        let warnings = finalizer_warnings(obj, old);
        t.warnings.lock().unwrap_or_else(|e| e.into_inner()).extend(warnings);
    }
    let causes = crate::store::validate_object::validate(t.def, obj, old);
    if causes.is_empty() {
        return Ok(());
    }
    Err(Status::invalid(&t.def.group, &t.def.kind, str_of(obj, "name"), causes))
}

/// kube's CRD handler warns of each finalizer a write adds to a custom object whose name has
/// no path (`generateWarningsFromObj`): another writer may use the same name.
fn finalizer_warnings(obj: &Value, old: Option<&Value>) -> Vec<String> {
    let names = |o: &Value| -> Vec<String> {
        let f = o["metadata"]["finalizers"].as_array();
        f.into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let before = old.map(names).unwrap_or_default();
    let standard = ["orphan", "foregroundDeletion", "kubernetes"];
    names(obj)
        .into_iter()
        .filter(|f| !before.contains(f) && !f.contains('/') && !standard.contains(&f.as_str()))
        .map(|f| {
            let path = if f.contains('.') { " including a path (/)" } else { "" };
            let f = crate::api::field::quote(&f);
            format!("metadata.finalizers: {f}: prefer a domain-qualified finalizer name{path} to avoid accidental conflicts with other finalizer writers")
        })
        .collect()
}

/// What a patch made of a stored object is held to the same nesting bound as a body.
fn check_depth(v: &Value) -> Result<(), Status> {
    let depth = crate::api::decode::value_depth(v);
    if depth > crate::api::decode::MAX_DEPTH {
        return Err(Status::bad_request(format!(
            "the object is nested {depth} levels deep, more than the {} allowed",
            crate::api::decode::MAX_DEPTH
        )));
    }
    Ok(())
}

/// The request's precondition on the object's revision, from metadata.resourceVersion.
pub(super) fn precondition(obj: &Value) -> Result<Option<u64>, Status> {
    super::query::parse_rv(str_of(obj, "resourceVersion"))
}

/// Stores `new` over `existing`; a no-op answers the current object unchanged. Removes an
/// object whose last finalizer went away while it was being deleted.
pub(super) fn commit_update(store: &Store, t: &Target, existing: &Stored, new: Value) -> Result<Stored, StorageError> {
    if same_but_server_fields(&new, &existing.value) {
        return Ok(existing.clone());
    }
    if t.query.dry_run() {
        return Ok(Stored { value: Arc::new(new), raw: None, ..existing.clone() });
    }
    let key = t.def.key(&t.namespace, &t.name);
    let done = namespace::emptied_by_update(t.def, &new);
    let stored = store.update(t.def, &key, new, Some(existing.rev))?;
    if done {
        store.delete(t.def, &key, Some(stored.rev))?;
    }
    Ok(stored)
}

pub(super) fn check_name(t: &Target, obj: &mut Value) -> Result<(), Status> {
    let m = meta(obj);
    match m.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != t.name => Err(Status::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({})",
            t.name
        ))),
        _ => {
            m.insert("name".into(), json!(t.name));
            Ok(())
        }
    }
}

pub fn update(store: &Store, t: &Target, body: &[u8]) -> Result<Reply, Status> {
    let incoming = || -> Result<Value, Status> {
        let mut v = super::decode_typed(t, body)?;
        check_type(t, &mut v)?;
        check_name(t, &mut v)?;
        check_namespace(t, &mut v)?;
        Ok(v)
    };
    let first = std::cell::RefCell::new(Some(incoming()?));
    let want = precondition(first.borrow().as_ref().expect("just decoded"))?;
    // the first try takes the object; a retry after a lost race decodes the body again
    // (rare, where a copy kept for it cost every large update more than its validation)
    let take = || first.borrow_mut().take().map_or_else(incoming, Ok);
    let missing = || {
        if t.create_right.is_none() {
            return Err(Status::not_found(&t.def.group, &t.def.resource, &t.name));
        }
        // kube's create on update: the object is created as sent, a resourceVersion ignored
        let mut obj = take()?;
        meta(&mut obj).remove("resourceVersion");
        create_value(store, t, obj, &manager(t), "Update")
    };
    // a pinned resourceVersion is not retried: the caller asked for that version
    guaranteed_update(store, t, want.is_none(), missing, |existing| {
        if want.is_some_and(|w| w != existing.rev) {
            return Err(status(t, &t.name, StorageError::Conflict));
        }
        if want.is_none() && !unconditional_update(t.def) {
            let cause =
                crate::api::field::invalid("metadata.resourceVersion", "0x0", "must be specified for an update");
            return Err(Status::invalid(&t.def.group, &t.def.kind, &t.name, vec![cause]));
        }
        prepare_update(t, &existing.value, take()?, "Update")
    })
}

/// kube's `AllowUnconditionalUpdate`: whether a PUT without a resourceVersion replaces
/// whatever is stored. Custom objects, CustomResourceDefinitions and APIServices must name the
/// version they replace (a controller's lost update is refused, not silently made).
fn unconditional_update(def: &ResourceDef) -> bool {
    def.custom.is_none() && !crate::store::crd::is_crds(def) && def.group != "apiregistration.k8s.io"
}

/// kube's `AllowCreateOnUpdate`: a PUT of a missing RBAC object, event or lease creates it
/// (when the writer may also create it: `Target::create_right`); anything else is NotFound.
fn create_on_update(def: &ResourceDef) -> bool {
    def.custom.is_none()
        && matches!(
            (def.group.as_str(), def.resource.as_str()),
            ("rbac.authorization.k8s.io", _) | ("" | "events.k8s.io", "events") | ("coordination.k8s.io", "leases")
        )
}

/// Whether this write creates the object when it is missing: a PUT where the resource allows
/// it, and a server-side apply of any resource (never through a subresource). kube's update
/// and patch handlers authorize such a create as `create` (`Target::create_right`).
pub fn may_create_missing(t: &Target, verb: &str) -> bool {
    t.subresource.is_empty()
        && match verb {
            "update" => create_on_update(t.def),
            "patch" => matches!(patch_type(&t.content_type), Ok(PatchType::Apply)),
            _ => false,
        }
}

/// kube's GuaranteedUpdate: `next` turns the stored object into the new one, which is
/// committed against the revision it was read at; a lost write race (Conflict) is retried
/// from a fresh read when `retry_conflict`. `missing` answers when there is no object.
pub(super) fn guaranteed_update(
    store: &Store,
    t: &Target,
    retry_conflict: bool,
    missing: impl FnOnce() -> Result<Reply, Status>,
    mut next: impl FnMut(&Stored) -> Result<Value, Status>,
) -> Result<Reply, Status> {
    let key = t.def.key(&t.namespace, &t.name);
    for attempt in 1..=RETRIES {
        let Some(existing) = store.storage.get(&key) else {
            return missing();
        };
        let mut new = next(&existing)?;
        if let Some(admit) = &t.admit {
            admit(Some(&existing.value), Some(&mut new))?;
        }
        validate(t, &mut new, Some(&existing.value))?;
        match commit_update(store, t, &existing, new) {
            Ok(s) => return Ok(reply_stored(store, t, 200, &s)),
            // (the last lost race is the answer: no wait for a view no try will read)
            Err(StorageError::Conflict) if retry_conflict && attempt < RETRIES => {
                wait_changed(store, &key, existing.rev)
            }
            Err(e) => return Err(status(t, &t.name, e)),
        }
    }
    Err(status(t, &t.name, StorageError::Conflict))
}

/// After a lost write race, waits (at most a second) for this replica's view of `key` to move
/// past `rev`: another replica's write reaches the etcd mirror a moment after it committed,
/// and a retry on the old view would only lose again (kube retries from the state the failed
/// transaction read).
pub(crate) fn wait_changed(store: &Store, key: &str, rev: u64) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while store.storage.get(key).is_some_and(|s| s.rev == rev) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

fn patch_type(ct: &str) -> Result<PatchType, Status> {
    match ct.split(';').next().unwrap_or("").trim() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        other => Err(Status::failure(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"),
        )),
    }
}

pub fn patch(store: &Store, t: &Target, body: &[u8]) -> Result<Reply, Status> {
    let kind = patch_type(&t.content_type)?;
    // kube's CRD handler takes no strategic merge patch: a custom object has no patch strategy
    if kind == PatchType::Strategic && t.def.custom.is_some() {
        return Err(Status::failure(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    if kind == PatchType::Apply {
        return super::apply::apply(store, t, body);
    }
    let crate::api::decode::Strict { value: p, duplicates } =
        crate::api::decode::json_strict(body).map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
    if kind == PatchType::Json {
        check_json_patch_list(t, &p)?;
    }
    // a JSON patch's own unknown and duplicate keys are its operations', reported as such
    let duplicates = if kind == PatchType::Json { json_patch_findings(&p, &duplicates) } else { duplicates };
    let ops = p.as_array().map_or(0, Vec::len);
    if kind == PatchType::Json && ops > patches::MAX_JSON_PATCH_OPERATIONS {
        return Err(Status::failure(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {}, got {ops}",
                patches::MAX_JSON_PATCH_OPERATIONS
            ),
        ));
    }
    let missing = || Err(Status::not_found(&t.def.group, &t.def.resource, &t.name));
    guaranteed_update(store, t, true, missing, |existing| {
        let base = present(store, t, &existing.value).into_owned();
        let mut patched = match kind {
            PatchType::Json => {
                // a JSON patch may point into a set, or copy one elsewhere: the sets are trees
                let mut b = base;
                fields_v1::expand(&mut b);
                // kube answers a patch that does not apply with a generic 422, the cause unsaid
                // (NewGenericServerResponse): what kubectl shows is "The request is invalid"
                let mut patched = patches::json_patch(&b, &p).map_err(|e| {
                    tracing::debug!(error = %e, "JSON patch does not apply");
                    let mut s = Status::failure(
                        422,
                        "Invalid",
                        "the server rejected our request due to an error in our request",
                    );
                    s.details = Some(Default::default());
                    s
                })?;
                // held as text again: an object's depth is its own, not its sets' trees'
                fields_v1::hold_as_text(&mut patched);
                patched
            }
            PatchType::Merge => {
                let mut b = base;
                patches::merge_patch(&mut b, &p);
                b
            }
            _ => {
                let mut b = base;
                let def = crate::store::schema::get().kind(&t.def.group, &t.def.version, &t.def.kind);
                patches::strategic_merge_patch(&mut b, &p, def).map_err(Status::bad_request)?;
                b
            }
        };
        check_depth(&patched)?;
        super::typed::check(t, &mut patched, duplicates.clone(), super::typed::Source::Patch)?;
        check_type(t, &mut patched)?;
        check_name(t, &mut patched)?;
        check_namespace(t, &mut patched)?;
        let want = precondition(&patched)?;
        if want.is_some_and(|w| w != existing.rev) {
            return Err(status(t, &t.name, StorageError::Conflict));
        }
        prepare_update(t, &existing.value, patched, "Update")
    })
}

/// kube's reports on a JSON patch's operations: `json patch unknown field "[0].foo"` for a key
/// an operation has not, `json patch duplicate field "[1].path"` for one given twice.
/// A JSON patch is a list of operations, or Go's decoder refuses it: with fieldValidation
/// (Warn, the default, or Strict) kube decodes it into its own operations first, without it
/// json-patch's DecodePatch does; both are a 400 in Go's words (null is an empty patch).
fn check_json_patch_list(t: &Target, p: &Value) -> Result<(), Status> {
    if matches!(p, Value::Array(_) | Value::Null) {
        return Ok(());
    }
    let found = schema::json_kind_into(p, false);
    Err(Status::bad_request(match super::typed::directive(&t.query.field_validation) {
        super::typed::Directive::Ignore => {
            format!("json: cannot unmarshal {found} into Go value of type jsonpatch.Patch")
        }
        _ => {
            format!("error decoding patch: json: cannot unmarshal {found} into Go value of type []handlers.jsonPatchOp")
        }
    }))
}

fn json_patch_findings(ops: &Value, duplicates: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, op) in ops.as_array().into_iter().flatten().enumerate() {
        for k in op.as_object().into_iter().flat_map(|m| m.keys()) {
            if !matches!(k.as_str(), "op" | "path" | "value" | "from") {
                out.push(format!("json patch unknown field \"[{i}].{k}\""));
            }
        }
        let prefix = format!("duplicate field \"[{i}].");
        out.extend(duplicates.iter().filter(|d| d.starts_with(&prefix)).map(|d| format!("json patch {d}")));
    }
    out
}

/// The parts of DeleteOptions the store honours.
#[derive(Default)]
struct DeleteOptions {
    uid: Option<String>,
    rv: Option<String>,
    dry_run: bool,
    propagation: Option<Propagation>,
}

/// The OpenAPI definition a DeleteOptions body is decoded as.
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";

fn delete_options(t: &Target, body: &[u8]) -> Result<DeleteOptions, Status> {
    let q = &t.query;
    let propagation = Propagation::from_options(q.orphan_dependents, Propagation::parse(&q.propagation_policy));
    let mut o = DeleteOptions { dry_run: q.dry_run(), propagation, ..Default::default() };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(o);
    }
    let mut v = decode(body, &t.content_type, "DeleteOptions")?;
    // decoded as kube's Go decoder does: a value of the wrong type is an error (kube answers
    // it as an error of no known kind: 500), never a field silently read as absent
    if let Some(e) = schema::decode(schema::get(), DELETE_OPTIONS, &mut v).error {
        return Err(Status::failure(500, "", e));
    }
    o.uid = v["preconditions"]["uid"].as_str().map(String::from);
    o.rv = v["preconditions"]["resourceVersion"].as_str().map(String::from);
    // a body's options replace the query's, as kube decodes one or the other; a dry run asked
    // for in either is kept, so that no reading of the two deletes what was asked to be tried
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let body_options = super::Options {
        propagation_policy: text("propagationPolicy"),
        orphan_dependents: v["orphanDependents"].as_bool(),
        dry_run_values: v["dryRun"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.as_str().unwrap_or_default().into())
            .collect(),
        ..Default::default()
    };
    body_options.validate_delete()?;
    body_options.validate_write("delete")?;
    o.propagation =
        Propagation::from_options(body_options.orphan_dependents, Propagation::parse(&body_options.propagation_policy));
    o.dry_run |= body_options.dry_run();
    Ok(o)
}

fn deleted_status(t: &Target, obj: &Value) -> Reply {
    let mut s = Status::success();
    s.details = Some(StatusDetails {
        name: str_of(obj, "name").into(),
        group: t.def.group.clone(),
        kind: t.def.resource.clone(),
        uid: str_of(obj, "uid").into(),
        ..Default::default()
    });
    Reply::json(200, &s)
}

pub fn delete(store: &Store, t: &Target, body: &[u8]) -> Result<Reply, Status> {
    let opts = delete_options(t, body)?;
    let key = t.def.key(&t.namespace, &t.name);
    // a delete without a resourceVersion precondition is retried after a lost race, as kube's
    // conditionalDelete retries (another replica's write may have moved the object meanwhile)
    let mut tries = 1;
    let (obj, gone) = loop {
        let existing =
            store.storage.get(&key).ok_or_else(|| Status::not_found(&t.def.group, &t.def.resource, &t.name))?;
        let why = |what: &str, want: &str, have: &str| {
            format!("Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}")
        };
        if let Some(uid) = &opts.uid {
            if uid != str_of(&existing.value, "uid") {
                return Err(Status::conflict(
                    &t.def.group,
                    &t.def.resource,
                    &t.name,
                    &why("UID", uid, str_of(&existing.value, "uid")),
                ));
            }
        }
        if let Some(rv) = &opts.rv {
            if *rv != existing.rev.to_string() {
                return Err(Status::conflict(
                    &t.def.group,
                    &t.def.resource,
                    &t.name,
                    &why("ResourceVersion", rv, &existing.rev.to_string()),
                ));
            }
        }
        if let Some(admit) = &t.admit {
            admit(Some(&existing.value), None)?;
        }
        if t.def.group.is_empty() && t.def.resource == "namespaces" && SYSTEM_NAMESPACES[..3].contains(&t.name.as_str())
        {
            return Err(Status::forbidden("", "namespaces", &t.name, "this namespace may not be deleted"));
        }
        let deleted = if namespace::is_namespaces(t.def) {
            namespace::delete(store, t.def, &existing, opts.dry_run, opts.propagation)
        } else if crate::store::crd::is_crds(t.def) {
            crate::store::crd::controller::delete(store, t.def, &existing, opts.dry_run)
        } else {
            delete_one(store, t.def, &existing, opts.dry_run, opts.propagation)
        };
        match deleted {
            Err(StorageError::Conflict) if opts.rv.is_none() && tries < RETRIES => {
                tries += 1;
                wait_changed(store, &key, existing.rev);
            }
            deleted => break deleted.map_err(|e| status(t, &t.name, e))?,
        }
    };
    // a namespace answers with itself, even once gone (kube's ReturnDeletedObject)
    if gone && !namespace::is_namespaces(t.def) {
        Ok(deleted_status(t, &obj))
    } else {
        Ok(reply_object(store, t, 200, &obj))
    }
}

/// Deletes one object (not a namespace: namespace::delete) with a propagation policy (None:
/// the kind's default, or the GC finalizer it has): at once, or by marking it
/// (deletionTimestamp) while finalizers remain, the garbage collector's among them. Returns
/// the object and whether it is gone.
pub fn delete_one(
    store: &Store,
    def: &ResourceDef,
    existing: &Stored,
    dry_run: bool,
    policy: Option<Propagation>,
) -> Result<(Value, bool), StorageError> {
    let obj = &existing.value;
    let (changed, finalizers) = gc::deletion_finalizers(def, obj, policy);
    let deleting = namespace::terminating(obj);
    if !finalizers.is_empty() {
        if deleting && !changed {
            return Ok(((**obj).clone(), false));
        }
        let mut marked = (**obj).clone();
        let m = meta(&mut marked);
        m.insert("finalizers".into(), json!(finalizers));
        if !deleting {
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if dry_run {
            return Ok((marked, false));
        }
        let s = store.update(def, &existing.key, marked, Some(existing.rev))?;
        return Ok(((*s.value).clone(), false));
    }
    if dry_run {
        return Ok(((**obj).clone(), true));
    }
    let s = store.delete(def, &existing.key, Some(existing.rev))?;
    Ok(((*s.value).clone(), true))
}

pub fn delete_collection(store: &Store, t: &Target, body: &[u8]) -> Result<Reply, Status> {
    // namespaces have no deletecollection in kube: each is deleted, and emptied, on its own
    if namespace::is_namespaces(t.def) {
        return Err(Status::method_not_allowed("DELETE"));
    }
    let opts = delete_options(t, body)?;
    let mut all = Target {
        def: t.def,
        namespace: t.namespace.clone(),
        name: String::new(),
        subresource: String::new(),
        query: t.query.clone(),
        table: false,
        partial: false,
        output: t.output,
        content_type: t.content_type.clone(),
        user_agent: t.user_agent.clone(),
        admit: None,
        create_right: None,
        warnings: Default::default(),
    };
    all.query.limit = None;
    all.query.continue_.clear();
    let super::read::ListPage { items, rev, .. } = super::read::list_items(store, &all)?;
    // an item that may not be deleted refuses the whole collection before any is deleted
    if let Some(admit) = &t.admit {
        items.iter().try_for_each(|item| admit(Some(&item.value), None))?;
    }
    let mut deleted = Vec::new();
    for item in items {
        let name = str_of(&item.value, "name").to_string();
        let ns = str_of(&item.value, "namespace").to_string();
        let Some(existing) = store.storage.get(&t.def.key(&ns, &name)) else {
            continue;
        };
        match delete_one(store, t.def, &existing, opts.dry_run, opts.propagation) {
            Ok((obj, _)) => deleted.push(obj),
            Err(StorageError::NotFound) => {}
            Err(e) => return Err(status(t, &name, e)),
        }
    }
    let deleted = deleted.into_iter().map(Into::into).collect();
    Ok(super::list::reply_list(store, &all, deleted, json!({"resourceVersion": rev.to_string()})))
}

#[cfg(test)]
mod tests {
    use super::same_but_server_fields;
    use serde_json::json;

    #[test]
    fn a_no_op_update_is_told_apart_from_a_change_by_what_the_client_owns() {
        let stored = json!({"metadata": {"name": "a", "resourceVersion": "7", "generation": 2,
            "managedFields": [{"manager": "m", "time": "t1"}], "labels": {"x": "1"}}, "data": {"k": "v"}});
        // as the update path builds it: the manager's entry recorded again, at a later time
        let sent = json!({"metadata": {"name": "a", "labels": {"x": "1"},
            "managedFields": [{"manager": "m", "time": "t2"}]}, "data": {"k": "v"}});
        assert!(same_but_server_fields(&sent, &stored));
        // a manager newly owning fields is a change of the object, as in kube
        let owned = json!({"metadata": {"name": "a", "labels": {"x": "1"},
            "managedFields": [{"manager": "m", "time": "t1"}, {"manager": "n", "time": "t2"}]}, "data": {"k": "v"}});
        assert!(!same_but_server_fields(&owned, &stored));
        for changed in [
            json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "data": {"k": "v"}}),
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "w"}}),
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}, "immutable": true}),
            json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
            json!({"metadata": "a", "data": {"k": "v"}}),
            json!({"data": {"k": "v"}, "kind": "ConfigMap"}),
        ] {
            assert!(!same_but_server_fields(&changed, &stored), "{changed}");
        }
    }
}
