//! The API's view of the RBAC policy, kept as kube keeps it, by one background thread:
//!
//! - kube's bootstrap roles and bindings are stored objects, created at startup when missing
//!   (with kube's `rbac.authorization.kubernetes.io/autoupdate` annotation) and reconciled
//!   when present (reconcile.rs); in between they are the cluster's to edit or delete, as in
//!   kube (which also puts them back only on a restart): once the store is read, the
//!   authorizer compiles the stored versions alone, so a deletion revokes what the object
//!   granted until the restart that recreates it.
//! - the policy files' objects are mirrored into the store, annotated with their file, so that
//!   `kubectl get`/`describe` show them; the file is their source: the API refuses to change
//!   them (admission.rs), the mirror follows every file reload, and a mirror deleted or edited
//!   behind the API's back is put back. Replicas sharing one etcd should share the same files.
//! - kube's ClusterRole aggregation controller: a stored ClusterRole with an aggregationRule has
//!   its `rules` set to the union of the ClusterRoles its selectors match (what the authorizer
//!   grants for it), so user-created `aggregate-to-*` roles show in admin/edit/view.

use super::{RbacAuthorizer, RbacObject};
use crate::authz::Authorization;
use crate::store::resources::ResourceDef;
use crate::store::Store;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::validation::GROUP;
/// kube's bootstrap-policy annotation.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The policy file a mirrored object comes from.
pub const POLICY_FILE: &str = "frontdoor.io/policy-file";
/// How often the controller looks for a reload of the policy files (which does not write the
/// store, so sends no change).
const POLL: Duration = Duration::from_secs(1);

/// Writes the bootstrap objects and the policy files' mirrors into the store, before the
/// authorizer follows the store: a fresh store takes dozens of writes here, and each would
/// otherwise recompile the whole policy (the authorizer then compiles the result once).
pub fn seed(store: &Store, authz: &Authorization) {
    if store.def(GROUP, "clusterroles").is_none() {
        return;
    }
    // kube writes its bootstrap policy whenever the RBAC API is served, whatever the
    // authorizers (RBAC may join the chain on a reload, and then reads the store alone)
    let Some(rbac) = authz.rbac() else {
        create_bootstrap(store, &super::bootstrap(), |_| false);
        return;
    };
    create_bootstrap(store, &rbac.static_objects().0, file_defines(&rbac));
    sync_files(store, &rbac);
}

/// Starts the controller when RBAC is in the chain and the store serves RBAC objects (after
/// `seed`, and once the authorizer follows the store).
pub fn start(store: &Arc<Store>, authz: &Authorization) {
    let Some(rbac) = authz.rbac() else { return };
    if store.def(GROUP, "clusterroles").is_none() {
        return;
    }
    let (kick, wake) = mpsc::channel::<()>();
    for resource in super::RESOURCES {
        let kick = std::sync::Mutex::new(kick.clone());
        let hook = move |_: Vec<Value>| {
            let _ = kick.lock().map(|k| k.send(()));
        };
        store.on_change(GROUP, resource, Box::new(hook));
    }
    // the first aggregation before serving, so the first request already sees the whole policy
    aggregate(store, &rbac);
    let weak: Weak<Store> = Arc::downgrade(store);
    let mut seen = rbac.files_generation();
    let spawned = std::thread::Builder::new().name("rbac-controller".into()).spawn(move || loop {
        let kicked = match wake.recv_timeout(POLL) {
            Ok(()) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => return, // the store is gone
        };
        while wake.try_recv().is_ok() {}
        if !kicked && rbac.files_generation() == seen {
            continue;
        }
        seen = rbac.files_generation();
        let Some(store) = weak.upgrade() else { return };
        sync_files(&store, &rbac);
        aggregate(&store, &rbac);
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the RBAC controller");
    }
}

fn def<'a>(store: &'a Store, o: &RbacObject) -> Option<&'a ResourceDef> {
    store.def(GROUP, o.resource())
}

fn key(def: &ResourceDef, o: &RbacObject) -> String {
    def.key(&o.meta().namespace, &o.meta().name)
}

/// A new stored object's JSON: the object plus what the store would have set on create.
fn new_object(o: &RbacObject, annotations: Value) -> Value {
    let mut v = o.to_json();
    v["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    v["metadata"]["creationTimestamp"] = json!(crate::store::rest::now());
    v["metadata"]["annotations"] = annotations;
    v
}

/// Whether a policy file defines the object (then it is the file's, not the bootstrap's).
fn file_defines(rbac: &RbacAuthorizer) -> impl Fn(&RbacObject) -> bool + '_ {
    |o| rbac.defined_by_file(o.kind(), &o.meta().namespace, &o.meta().name).is_some()
}

/// kube's bootstrap: each missing bootstrap object is created, each stored one reconciled
/// (but one a policy file redefines is the file's).
fn create_bootstrap(store: &Store, bootstrap: &[RbacObject], file_defines: impl Fn(&RbacObject) -> bool) {
    for o in bootstrap {
        let Some(def) = def(store, o) else { continue };
        if file_defines(o) {
            continue;
        }
        let key = key(def, o);
        let result = match store.storage.get(&key) {
            None => store.create(def, &key, new_object(o, json!({ AUTOUPDATE: "true" }))).map(drop),
            Some(s) => match super::reconcile::reconcile(&s.value, o) {
                Some(next) => store.update(def, &key, next, Some(s.rev)).map(drop),
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::debug!(key, error = %e, "bootstrap object not written");
        }
    }
}

/// What of a mirrored object the file decides (an aggregated role's rules are the
/// aggregation's).
fn mirrored_part(v: &Value) -> Value {
    let mut part = json!({
        "labels": v["metadata"]["labels"],
        "file": v["metadata"]["annotations"][POLICY_FILE],
        "aggregationRule": v["aggregationRule"],
        "roleRef": v["roleRef"],
        "subjects": v["subjects"],
    });
    if v["aggregationRule"].is_null() {
        part["rules"] = v["rules"].clone();
    }
    part
}

/// The policy files' objects into the store: created, updated to match, and removed once no
/// file defines them.
fn sync_files(store: &Store, rbac: &RbacAuthorizer) {
    let (_, files) = rbac.static_objects();
    let mut wanted = Vec::new();
    for (path, o) in &files {
        let Some(def) = def(store, o) else { continue };
        if terminating(store, &o.meta().namespace) {
            continue; // not to hold up the namespace's deletion
        }
        let key = key(def, o);
        wanted.push(key.clone());
        let desired = new_object(o, json!({ POLICY_FILE: path_text(path) }));
        let result = match store.storage.get(&key) {
            None => store.create(def, &key, desired).map(drop),
            Some(s) if mirrored_part(&s.value) != mirrored_part(&desired) => {
                let mut next = desired;
                for k in ["uid", "creationTimestamp"] {
                    next["metadata"][k] = s.value["metadata"][k].clone();
                }
                if next["aggregationRule"].is_object() {
                    next["rules"] = s.value["rules"].clone();
                }
                store.update(def, &key, next, Some(s.rev)).map(drop)
            }
            Some(_) => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(key, error = %e, "policy file object not mirrored (retried on the next change)");
        }
    }
    let mut removed = false;
    for resource in super::RESOURCES {
        let Some(def) = store.def(GROUP, resource) else { continue };
        let Ok((items, _)) = store.storage.list(&def.prefix(), None) else { continue };
        for s in items {
            let mirrored = s.value["metadata"]["annotations"].get(POLICY_FILE).is_some();
            if mirrored && !wanted.contains(&s.key) {
                removed |= store.delete(def, &s.key, Some(s.rev)).is_ok();
            }
        }
    }
    if removed {
        // a file no longer redefining a bootstrap object
        create_bootstrap(store, &rbac.static_objects().0, file_defines(rbac));
    }
}

/// Whether `namespace` is being deleted.
fn terminating(store: &Store, namespace: &str) -> bool {
    let Some(ns) = store.def("", "namespaces").filter(|_| !namespace.is_empty()) else { return false };
    store.storage.get(&ns.key("", namespace)).is_some_and(|n| n.value["metadata"].get("deletionTimestamp").is_some())
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// kube's ClusterRole aggregation controller: each stored aggregated ClusterRole's rules are
/// set to what the compiled policy aggregates for it.
fn aggregate(store: &Store, rbac: &RbacAuthorizer) {
    let Some(def) = store.def(GROUP, "clusterroles") else { return };
    let Ok((items, _)) = store.storage.list(&def.prefix(), None) else { return };
    let policy = rbac.policy();
    for s in items {
        let selectors = &s.value["aggregationRule"]["clusterRoleSelectors"];
        if selectors.as_array().is_none_or(|a| a.is_empty()) {
            continue;
        }
        let name = s.value["metadata"]["name"].as_str().unwrap_or_default();
        let Some(rules) = policy.role_rules("ClusterRole", "", name) else { continue };
        let rules = serde_json::to_value(rules).unwrap_or_default();
        if s.value["rules"] == rules {
            continue;
        }
        let mut next = (*s.value).clone();
        next["rules"] = rules;
        if let Err(e) = store.update(def, &s.key, next, Some(s.rev)) {
            tracing::debug!(name, error = %e, "aggregated rules not written (retried on the next change)");
        }
    }
}

#[cfg(test)]
mod tests;
