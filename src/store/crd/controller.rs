//! The CRD controllers of kube's apiextensions-apiserver, as one: the naming and establishing
//! controllers (`status.acceptedNames`, the `NamesAccepted` and `Established` conditions,
//! `storedVersions`) and the finalizer (a deleted CRD is `Terminating` while its objects are
//! deleted, then goes). Which versions are served follows every CRD write at once (a change
//! hook); the status written here follows shortly after, as in kube.

use super::names::{self, Names};
use super::{CLEANUP_FINALIZER, GROUP, RESOURCE};
use crate::store::backend::{Event, StorageError};
use crate::store::controller::Controller;
use crate::store::gc::Propagation;
use crate::store::resources::ResourceDef;
use crate::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts serving `store`'s CRDs (a change hook) and their controller.
pub fn start(store: &Store) {
    let Some(def) = store.def(GROUP, RESOURCE).cloned() else { return };
    let weak = Arc::downgrade(&store.shared);
    store.on_change(
        GROUP,
        RESOURCE,
        Box::new(move |crds| {
            if let Some(shared) = weak.upgrade() {
                Store { shared }.set_custom(super::served_defs(&crds));
            }
        }),
    );
    let prefix = def.prefix();
    crate::store::controller::start(store, "crd-controller", move |_| CrdController {
        def: def.clone(),
        prefix: prefix.clone(),
        dirty: true,
        retry: None,
    });
}

struct CrdController {
    def: ResourceDef,
    prefix: String,
    dirty: bool,
    /// When a terminating CRD's cleanup is tried again.
    retry: Option<Instant>,
}

impl Controller for CrdController {
    fn observe(&mut self, ev: &Event) {
        // a CRD's change, or a terminating CRD's object going
        if ev.key.starts_with(&self.prefix) || self.retry.is_some() {
            self.dirty = true;
        }
    }

    fn work(&mut self, store: &Store) {
        let due = self.retry.is_some_and(|r| r <= Instant::now());
        if !(self.dirty || due) {
            return;
        }
        self.dirty = false;
        self.retry = None;
        if !reconcile(store, &self.def) {
            self.retry = Some(Instant::now() + Duration::from_millis(500));
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.retry
    }
}

/// One pass over every CRD; false when a terminating one must be looked at again.
fn reconcile(store: &Store, def: &ResourceDef) -> bool {
    let crds: Vec<(String, Value, u64)> = match store.storage.list(&def.prefix(), None) {
        Ok((items, _)) => items.into_iter().map(|s| (s.key.clone(), (*s.value).clone(), s.rev)).collect(),
        Err(_) => return false,
    };
    let values: Vec<Value> = crds.iter().map(|(_, v, _)| v.clone()).collect();
    let accepted = names::accept(&values);
    let mut done = true;
    for (key, crd, rev) in crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let Some(verdict) = accepted.get(&name) else { continue };
        let status = desired_status(&crd, verdict, &super::super::rest::now());
        let mut new = crd.clone();
        new["status"] = status;
        let mut rev = rev;
        if comparable(&new["status"]) != comparable(&crd["status"]) {
            match store.update(def, &key, new.clone(), Some(rev)) {
                Ok(s) => rev = s.rev,
                Err(_) => {
                    done = false;
                    continue;
                }
            }
        }
        if new["metadata"]["deletionTimestamp"].is_string() && !finalize(store, def, &key, &new, rev) {
            done = false;
        }
    }
    done
}

/// Conditions without their transition times, to tell a real change.
fn comparable(status: &Value) -> Value {
    let mut s = status.clone();
    for c in s["conditions"].as_array_mut().into_iter().flatten() {
        if let Some(m) = c.as_object_mut() {
            m.remove("lastTransitionTime");
        }
    }
    s
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": if ok { "True" } else { "False" }, "reason": reason, "message": message})
}

/// The status kube's controllers would write for `crd` given its names' verdict (`now` for
/// conditions that change).
pub fn desired_status(crd: &Value, verdict: &Result<Names, names::Conflict>, now: &str) -> Value {
    let old = &crd["status"];
    let mut status = json!({
        "acceptedNames": match verdict {
            Ok(n) => n.to_json(),
            Err(_) => old.get("acceptedNames").cloned().unwrap_or(json!({"plural": "", "kind": ""})),
        },
    });
    let mut conditions = vec![match verdict {
        Ok(_) => condition("NamesAccepted", true, "NoConflicts", "no conflicts found"),
        Err((reason, message)) => condition("NamesAccepted", false, reason, message),
    }];
    conditions.push(match verdict {
        Ok(_) => condition("Established", true, "InitialNamesAccepted", "the initial names have been accepted"),
        Err(_) => condition("Established", false, "NotAccepted", "not all names are accepted"),
    });
    if crd["metadata"]["deletionTimestamp"].is_string() {
        conditions.push(condition(
            "Terminating",
            true,
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    // a condition keeps its transition time while its status stays
    for c in &mut conditions {
        let same = old["conditions"].as_array().into_iter().flatten().find(|o| o["type"] == c["type"]);
        c["lastTransitionTime"] = match same {
            Some(o) if o["status"] == c["status"] => o["lastTransitionTime"].clone(),
            _ => json!(now),
        };
    }
    status["conditions"] = json!(conditions);
    let mut stored: Vec<Value> = old["storedVersions"].as_array().cloned().unwrap_or_default();
    let storage = crd["spec"]["versions"].as_array().into_iter().flatten().find(|v| v["storage"] == json!(true));
    if let Some(v) = storage.map(|v| v["name"].clone()) {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    status["storedVersions"] = json!(stored);
    status
}

/// Deletes a terminating CRD's objects; once none is left, drops the cleanup finalizer (and
/// the CRD with it when it was the last). True when done.
fn finalize(store: &Store, crd_def: &ResourceDef, key: &str, crd: &Value, rev: u64) -> bool {
    let finalizers: Vec<Value> = crd["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        return true;
    }
    let (group, plural) = (crd["spec"]["group"].as_str().unwrap_or_default(), crd["spec"]["names"]["plural"].as_str());
    let objects = ResourceDef {
        group: group.to_string(),
        version: String::new(),
        resource: plural.unwrap_or_default().to_string(),
        namespaced: crd["spec"]["scope"] == "Namespaced",
        ..Default::default()
    };
    // a CRD naming a built-in resource was never served, and its objects' prefix is the
    // built-in's (kube keeps those under other keys): it has no objects to delete
    if !objects.resource.is_empty() && store.def(group, &objects.resource).is_none() {
        let Ok((items, _)) = store.storage.list(&objects.prefix(), None) else { return false };
        if !items.is_empty() {
            for item in items {
                match crate::store::rest::write::delete_one(
                    store,
                    &objects,
                    &item,
                    false,
                    Some(Propagation::Background),
                ) {
                    Ok(_) | Err(StorageError::NotFound) | Err(StorageError::Conflict) => {}
                    Err(e) => tracing::warn!(error = %e, key = item.key, "cannot delete a custom object"),
                }
            }
            return false;
        }
    }
    let mut new = crd.clone();
    new["metadata"]["finalizers"] =
        json!(finalizers.into_iter().filter(|f| f != CLEANUP_FINALIZER).collect::<Vec<_>>());
    let emptied = new["metadata"]["finalizers"].as_array().is_some_and(Vec::is_empty);
    match store.update(crd_def, key, new, Some(rev)) {
        Ok(s) if emptied => store.delete(crd_def, key, Some(s.rev)).is_ok(),
        Ok(_) => true,
        Err(_) => false,
    }
}

/// A new CRD's status, as kube's strategy sets it on create: no names accepted yet, the
/// storage version stored (the controller fills in the rest).
pub fn initial_status(crd: &Value) -> Value {
    let storage = crd["spec"]["versions"].as_array().into_iter().flatten().find(|v| v["storage"] == json!(true));
    let stored: Vec<Value> = storage.map(|v| v["name"].clone()).into_iter().collect();
    json!({"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": stored})
}

/// Deletes a CRD as kube's CRD storage does: marked (deletionTimestamp, the cleanup
/// finalizer) for the controller to empty it first. Returns the object and whether it is gone.
pub fn delete(
    store: &Store,
    def: &ResourceDef,
    existing: &crate::store::backend::Stored,
    dry_run: bool,
) -> Result<(Value, bool), StorageError> {
    let mut marked = (*existing.value).clone();
    if marked["metadata"]["deletionTimestamp"].is_string() {
        return Ok((marked, false));
    }
    let now = crate::store::rest::now();
    marked["metadata"]["deletionTimestamp"] = json!(now);
    marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    let mut finalizers = marked["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        finalizers.push(json!(CLEANUP_FINALIZER));
    }
    marked["metadata"]["finalizers"] = json!(finalizers);
    if dry_run {
        return Ok((marked, false));
    }
    let s = store.update(def, &existing.key, marked, Some(existing.rev))?;
    Ok(((*s.value).clone(), false))
}
