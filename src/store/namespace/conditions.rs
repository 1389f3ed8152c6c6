//! The status conditions kube's namespace deleter keeps on a terminating namespace
//! (namespace_condition_utils.go), in its order, reasons and messages, so `kubectl describe
//! ns` explains what holds a deletion up.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What one pass over a namespace's content found.
#[derive(Debug, Default)]
pub struct Totals {
    /// Objects left per `resource.group`.
    pub remaining: BTreeMap<String, usize>,
    /// Objects left per finalizer they carry.
    pub finalizers: BTreeMap<String, usize>,
    /// Per-resource deletion failures, as messages.
    pub errors: Vec<String>,
}

impl Totals {
    pub fn remaining(&self) -> usize {
        self.remaining.values().sum()
    }
}

/// (type, ok reason, ok message), in kube's order.
const TYPES: [(&str, &str, &str); 5] = [
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
];

fn failures(t: &Totals) -> BTreeMap<&'static str, (&'static str, String)> {
    let mut out = BTreeMap::new();
    if !t.errors.is_empty() {
        let mut msgs = t.errors.clone();
        msgs.sort();
        let msg = format!("Failed to delete all resource types, {} remaining: {}", msgs.len(), msgs.join(", "));
        out.insert("NamespaceDeletionContentFailure", ("ContentDeletionFailed", msg));
    }
    let counted = |m: &BTreeMap<String, usize>, f: &dyn Fn(&str, usize) -> String| {
        let mut v: Vec<String> = m.iter().filter(|(_, n)| **n > 0).map(|(k, n)| f(k, *n)).collect();
        v.sort();
        v.join(", ")
    };
    if !t.remaining.is_empty() {
        let list = counted(&t.remaining, &|r, n| format!("{r} has {n} resource instances"));
        out.insert(
            "NamespaceContentRemaining",
            ("SomeResourcesRemain", format!("Some resources are remaining: {list}")),
        );
    }
    if !t.finalizers.is_empty() {
        let list = counted(&t.finalizers, &|f, n| format!("{f} in {n} resource instances"));
        let msg = format!("Some content in the namespace has finalizers remaining: {list}");
        out.insert("NamespaceFinalizersRemaining", ("SomeFinalizersRemain", msg));
    }
    out
}

/// Brings `status.conditions` in line with `totals` (kube's updateConditions: a condition's
/// lastTransitionTime moves only when its status flips). Returns whether anything changed.
pub fn update(status: &mut Value, totals: &Totals, now: &str) -> bool {
    let failed = failures(totals);
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let list = status["conditions"].as_array_mut().expect("array");
    let mut changed = false;
    for (kind, ok_reason, ok_message) in TYPES {
        let (st, reason, message) = match failed.get(kind) {
            Some((r, m)) => ("True", *r, m.clone()),
            None => ("False", ok_reason, ok_message.to_string()),
        };
        match list.iter_mut().find(|c| c["type"] == kind) {
            None => {
                list.push(json!({"type": kind, "status": st, "lastTransitionTime": now, "reason": reason, "message": message}));
                changed = true;
            }
            Some(c) if c["status"] != st || c["reason"] != reason || c["message"] != message.as_str() => {
                if c["status"] != st {
                    c["lastTransitionTime"] = json!(now);
                }
                c["status"] = json!(st);
                c["reason"] = json!(reason);
                c["message"] = json!(message);
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubes_conditions_in_order_and_stable() {
        let mut status = json!({"phase": "Terminating"});
        let mut t = Totals::default();
        t.remaining.insert("configmaps.".into(), 2);
        t.finalizers.insert("example.com/hold".into(), 2);
        assert!(update(&mut status, &t, "T1"));
        let c = status["conditions"].as_array().unwrap();
        let types: Vec<&str> = c.iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, TYPES.map(|t| t.0));
        assert_eq!(c[0]["message"], "All resources successfully discovered");
        assert_eq!((c[2]["status"].as_str(), c[2]["reason"].as_str()), (Some("False"), Some("ContentDeleted")));
        assert_eq!(c[3]["message"], "Some resources are remaining: configmaps. has 2 resource instances");
        assert_eq!(c[3]["reason"], "SomeResourcesRemain");
        assert_eq!(
            c[4]["message"],
            "Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances"
        );
        assert!(!update(&mut status, &t, "T2"), "the same totals change nothing");

        // an error flips ContentFailure (and only its time moves)
        t.errors.push("unexpected items still remain in namespace: x for gvr: /v1, Resource=configmaps".into());
        assert!(update(&mut status, &t, "T3"));
        let c = status["conditions"].as_array().unwrap();
        assert_eq!(c[2]["status"], "True");
        assert_eq!(c[2]["reason"], "ContentDeletionFailed");
        assert_eq!(
            c[2]["message"],
            "Failed to delete all resource types, 1 remaining: unexpected items still remain in namespace: x for gvr: /v1, Resource=configmaps"
        );
        assert_eq!(
            (c[2]["lastTransitionTime"].as_str(), c[3]["lastTransitionTime"].as_str()),
            (Some("T3"), Some("T1"))
        );
    }
}
