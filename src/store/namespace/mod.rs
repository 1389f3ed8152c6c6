//! Namespace lifecycle, as kube-apiserver's namespace storage and kube-controller-manager's
//! namespace controller share it: DELETE only marks the namespace (deletionTimestamp, phase
//! Terminating); a background deleter (deleter.rs) empties it, reports progress in its status
//! conditions (conditions.rs), drops the `kubernetes` finalizer and removes it.
//!
//! Every write here is a compare-and-swap on the revision read, so several replicas on one
//! etcd may run the same steps for the same namespace: the loser of a race re-reads.

mod conditions;
pub mod defaults;
mod deleter;

pub use deleter::{start, sync, Deleter, Outcome};

use super::backend::{StorageError, Stored};
use super::resources::ResourceDef;
use super::Store;
use crate::api::status::{StatusCause, StatusDetails};
use crate::api::Status;
use serde_json::{json, Value};

/// The finalizer the namespace deleter owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";

/// Whether `def` is the core namespaces resource.
pub fn is_namespaces(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.resource == "namespaces"
}

/// Whether an object has been asked to go (its deletionTimestamp is set).
pub(crate) fn terminating(ns: &Value) -> bool {
    ns["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null())
}

fn list_len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

/// The NamespaceLifecycle admission check for a create: the namespace must exist and not be
/// terminating (kube's texts, and its `NamespaceTerminating` cause).
pub fn admit_create(store: &Store, def: &ResourceDef, namespace: &str, name: &str) -> Result<(), Status> {
    if !def.namespaced {
        return Ok(());
    }
    let Some(ns_def) = store.def("", "namespaces") else {
        return Ok(());
    };
    let Some(ns) = store.storage.get(&ns_def.key("", namespace)) else {
        return Err(Status::not_found("", "namespaces", namespace));
    };
    if ns.value["status"]["phase"] != "Terminating" && !terminating(&ns.value) {
        return Ok(());
    }
    let why = format!("unable to create new content in namespace {namespace} because it is being terminated");
    let mut s = Status::forbidden(&def.group, &def.resource, name, &why);
    let details = s.details.get_or_insert_with(StatusDetails::default);
    details.causes.push(StatusCause {
        reason: "NamespaceTerminating".into(),
        message: format!("namespace {namespace} is being terminated"),
        field: "metadata.namespace".into(),
    });
    Err(s)
}

/// kube's namespace REST Delete: the first call marks the namespace terminating and hands it
/// to the deleter; later calls remove it only once `spec.finalizers` and
/// `metadata.finalizers` are both empty. Returns the object and whether it is gone.
pub fn delete(
    store: &Store,
    def: &ResourceDef,
    existing: &Stored,
    dry_run: bool,
    policy: Option<crate::store::gc::Propagation>,
) -> Result<(Value, bool), StorageError> {
    let mut current = existing.clone();
    for _ in 0..super::rest::write::RETRIES {
        if terminating(&current.value) {
            let obj = (*current.value).clone();
            if list_len(&obj["spec"]["finalizers"]) > 0 || list_len(&obj["metadata"]["finalizers"]) > 0 || dry_run {
                return Ok((obj, false));
            }
            let gone = store.delete(def, &current.key, Some(current.rev))?;
            return Ok(((*gone.value).clone(), true));
        }
        let mut marked = (*current.value).clone();
        // the garbage collector's finalizers, as for any object (kube's namespace REST Delete)
        let (changed, finalizers) = crate::store::gc::deletion_finalizers(def, &marked, policy);
        if changed {
            marked["metadata"]["finalizers"] = json!(finalizers);
            if finalizers.is_empty() {
                marked["metadata"].as_object_mut().map(|m| m.remove("finalizers"));
            }
        }
        marked["metadata"]["deletionTimestamp"] = json!(super::rest::now());
        if !marked["status"].is_object() {
            marked["status"] = json!({});
        }
        marked["status"]["phase"] = json!("Terminating");
        if dry_run {
            return Ok((marked, false));
        }
        match store.update(def, &current.key, marked, Some(current.rev)) {
            Ok(s) => {
                let name = s.value["metadata"]["name"].as_str().unwrap_or_default().to_string();
                store.namespaces.after_grace_period(&name);
                return Ok(((*s.value).clone(), false));
            }
            Err(StorageError::Conflict) => {
                current = store.storage.get(&current.key).ok_or(StorageError::NotFound)?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Conflict)
}

/// What an update may change of a namespace (kube's namespace strategies): `spec.finalizers`
/// only through the `finalize` subresource, never through the object or its status.
pub fn prepare_update(subresource: &str, existing: &Value, new: &mut Value) {
    // kube's defaulting: a status without a phase is Active
    if subresource == "status" && new["status"]["phase"].as_str().is_none_or(str::is_empty) {
        match new.get_mut("status").and_then(Value::as_object_mut) {
            Some(status) => drop(status.insert("phase".into(), json!("Active"))),
            None => new["status"] = json!({"phase": "Active"}),
        }
    }
    if subresource == "finalize" {
        omit_empty_finalizers(new);
        return;
    }
    match existing["spec"].get("finalizers") {
        Some(f) => {
            if !new["spec"].is_object() {
                new["spec"] = json!({});
            }
            new["spec"]["finalizers"] = f.clone();
        }
        None => {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
        }
    }
}

/// An empty `spec.finalizers` is left out, as kube's omitempty serializes it.
pub(crate) fn omit_empty_finalizers(ns: &mut Value) {
    if let Some(spec) = ns.get_mut("spec").and_then(Value::as_object_mut) {
        if spec.get("finalizers").is_some_and(|f| list_len(f) == 0) {
            spec.remove("finalizers");
        }
    }
}

/// Whether an update leaves `obj` to be removed: being deleted with no finalizer left (for a
/// namespace, none in `spec.finalizers` either: kube's ShouldDeleteNamespaceDuringUpdate).
pub fn emptied_by_update(def: &ResourceDef, obj: &Value) -> bool {
    terminating(obj)
        && list_len(&obj["metadata"]["finalizers"]) == 0
        && (!is_namespaces(def) || list_len(&obj["spec"]["finalizers"]) == 0)
}

#[cfg(test)]
mod tests;
