//! What a DELETE's propagation policy does to the object's finalizers (kube's store.go:
//! shouldOrphanDependents, shouldDeleteDependents, deletionFinalizersForGarbageCollection).

use super::{FOREGROUND, ORPHAN};
use crate::store::resources::ResourceDef;
use serde_json::Value;

/// metav1.DeletionPropagation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    /// A `propagationPolicy` value (validated before: anything else is None).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Orphan" => Some(Propagation::Orphan),
            "Background" => Some(Propagation::Background),
            "Foreground" => Some(Propagation::Foreground),
            _ => None,
        }
    }

    /// The deprecated `orphanDependents` option, which wins over `propagationPolicy`.
    pub fn from_options(orphan_dependents: Option<bool>, policy: Option<Propagation>) -> Option<Self> {
        match orphan_dependents {
            Some(true) => Some(Propagation::Orphan),
            Some(false) => Some(Propagation::Background),
            None => policy,
        }
    }
}

/// The kind's DefaultGarbageCollectionPolicy: orphaning for the workload kinds of the old API
/// versions kube keeps it for (core/v1 ReplicationController, extensions/v1beta1 and
/// apps/v1beta1/v1beta2 workloads), deleting dependents for every other kind.
fn orphans_by_default(def: &ResourceDef) -> bool {
    let workload = matches!(def.resource.as_str(), "replicasets" | "deployments" | "daemonsets" | "statefulsets");
    match (def.group.as_str(), def.version.as_str()) {
        ("", "v1") => def.resource == "replicationcontrollers",
        ("extensions", "v1beta1") | ("apps", "v1beta1") | ("apps", "v1beta2") => workload,
        _ => false,
    }
}

fn has(obj: &Value, finalizer: &str) -> bool {
    obj["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == finalizer))
}

/// The finalizers `obj` has once deleted with `policy` (None: the request named none), and
/// whether they changed: the explicit policy wins, then a GC finalizer the object already
/// has, then the kind's default.
pub fn deletion_finalizers(def: &ResourceDef, obj: &Value, policy: Option<Propagation>) -> (bool, Vec<Value>) {
    let current: Vec<Value> = obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    let (orphan, foreground) = match policy {
        Some(p) => (p == Propagation::Orphan, p == Propagation::Foreground),
        None if has(obj, ORPHAN) => (true, false),
        None if has(obj, FOREGROUND) => (false, true),
        None => (orphans_by_default(def), false),
    };
    let mut out: Vec<Value> = current.iter().filter(|f| *f != ORPHAN && *f != FOREGROUND).cloned().collect();
    if orphan {
        out.push(Value::from(ORPHAN));
    }
    if foreground {
        out.push(Value::from(FOREGROUND));
    }
    let same = out.len() == current.len() && out.iter().all(|f| current.contains(f));
    (!same, if same { current } else { out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(group: &str, version: &str, resource: &str) -> ResourceDef {
        let mut d = crate::store::resources::defaults()[1].clone();
        (d.group, d.version, d.resource) = (group.into(), version.into(), resource.into());
        d
    }

    #[test]
    fn policy_then_finalizer_then_kind_default() {
        let cm = def("", "v1", "configmaps");
        let plain = json!({"metadata": {"finalizers": ["example.com/x"]}});
        assert_eq!(deletion_finalizers(&cm, &plain, None), (false, vec![json!("example.com/x")]));
        let (changed, f) = deletion_finalizers(&cm, &plain, Some(Propagation::Foreground));
        assert!(changed);
        assert_eq!(f, vec![json!("example.com/x"), json!("foregroundDeletion")]);
        // an explicit policy replaces the GC finalizer the object had; none keeps it
        let orphaning = json!({"metadata": {"finalizers": ["orphan"]}});
        assert_eq!(deletion_finalizers(&cm, &orphaning, None), (false, vec![json!("orphan")]));
        assert_eq!(deletion_finalizers(&cm, &orphaning, Some(Propagation::Background)), (true, vec![]));
        // kinds that orphan by default, for the API versions kube keeps it for
        let none = json!({"metadata": {}});
        assert_eq!(deletion_finalizers(&def("", "v1", "replicationcontrollers"), &none, None).1, vec![json!("orphan")]);
        assert_eq!(deletion_finalizers(&def("apps", "v1beta2", "deployments"), &none, None).1, vec![json!("orphan")]);
        assert!(deletion_finalizers(&def("apps", "v1", "deployments"), &none, None).1.is_empty());
        assert_eq!(Propagation::from_options(Some(true), Some(Propagation::Foreground)), Some(Propagation::Orphan));
    }
}
