//! kube's reconciliation of its bootstrap policy at startup (pkg/registry/rbac/reconciliation,
//! with the bootstrap's options: union, nothing removed). A stored bootstrap object not
//! annotated `rbac.authorization.kubernetes.io/autoupdate: "false"` gets back the labels,
//! annotations, rules, aggregation selectors, roleRef and subjects of the built-in one that it
//! lacks: a newer frontdoor's permissions arrive, the cluster's own additions stay.

use super::covers::uncovered;
use super::types::{PolicyRule, RbacObject};
use serde_json::Value;

/// The stored object reconciled with the built-in `expected` (as stored JSON), or None when
/// nothing is to change or the object is protected.
pub fn reconcile(stored: &Value, expected: &RbacObject) -> Option<Value> {
    if stored["metadata"]["annotations"][super::controller::AUTOUPDATE] == "false" {
        return None;
    }
    let want = expected.to_json();
    let mut next = stored.clone();
    let mut want_meta = want["metadata"].clone();
    want_meta["annotations"][super::controller::AUTOUPDATE] = "true".into();
    for field in ["labels", "annotations"] {
        for (k, v) in want_meta[field].as_object().into_iter().flatten() {
            if next["metadata"][field].get(k).is_none() {
                next["metadata"][field][k] = v.clone();
            }
        }
    }
    match expected {
        RbacObject::Role(_) | RbacObject::ClusterRole(_) => reconcile_role(&mut next, &want),
        _ => reconcile_binding(&mut next, &want),
    }
    (next != *stored).then_some(next)
}

fn rules(v: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(v["rules"].clone()).unwrap_or_default()
}

/// Missing rules are added broken down (as kube's `Covers` reports them); missing selectors
/// added; an aggregationRule the built-in role has not is removed.
fn reconcile_role(next: &mut Value, want: &Value) {
    let missing = uncovered(&rules(next), &rules(want));
    if !missing.is_empty() {
        let mut all = rules(next);
        all.extend(missing);
        next["rules"] = serde_json::to_value(all).unwrap_or_default();
    }
    let selectors = "clusterRoleSelectors";
    match want["aggregationRule"][selectors].as_array() {
        None => {
            if let Some(m) = next.as_object_mut() {
                m.remove("aggregationRule");
            }
        }
        Some(wanted) => {
            for s in wanted {
                let have = next["aggregationRule"][selectors].as_array().is_some_and(|a| a.contains(s));
                if !have {
                    push(&mut next["aggregationRule"][selectors], s.clone());
                }
            }
        }
    }
}

/// The built-in roleRef (kube recreates the binding for it); missing subjects added.
fn reconcile_binding(next: &mut Value, want: &Value) {
    if next["roleRef"] != want["roleRef"] {
        next["roleRef"] = want["roleRef"].clone();
    }
    for s in want["subjects"].as_array().into_iter().flatten() {
        if !next["subjects"].as_array().is_some_and(|a| a.contains(s)) {
            push(&mut next["subjects"], s.clone());
        }
    }
}

fn push(list: &mut Value, v: Value) {
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Some(a) = list.as_array_mut() {
        a.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::rbac::bootstrap;
    use serde_json::json;

    fn builtin(name: &str) -> RbacObject {
        bootstrap().into_iter().find(|o| o.meta().name == name && o.kind() == "ClusterRole").unwrap()
    }

    #[test]
    fn missing_permissions_come_back_and_additions_stay() {
        let expected = builtin("system:discovery");
        let mut stored = expected.to_json();
        stored["metadata"]["annotations"] = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
        assert_eq!(reconcile(&stored, &expected), None, "nothing to do");
        let extra = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]});
        stored["rules"] = json!([extra.clone()]);
        stored["metadata"]["labels"] = json!({"mine": "yes"});
        let next = reconcile(&stored, &expected).unwrap();
        assert_eq!(next["rules"][0], extra, "the cluster's rule stays");
        assert!(next["rules"].to_string().contains("/healthz"), "{next}");
        assert_eq!(next["metadata"]["labels"]["mine"], "yes");
        assert_eq!(next["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
        // protected
        stored["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = json!("false");
        assert_eq!(reconcile(&stored, &expected), None);
    }

    #[test]
    fn aggregation_selectors_and_subjects_come_back() {
        let expected = builtin("view");
        let mut stored = expected.to_json();
        stored["aggregationRule"]["clusterRoleSelectors"] = json!([{"matchLabels": {"other": "x"}}]);
        stored["rules"] = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]);
        let next = reconcile(&stored, &expected).unwrap();
        let sels = next["aggregationRule"]["clusterRoleSelectors"].as_array().unwrap();
        assert_eq!(sels.len(), 2);
        assert_eq!(next["rules"], stored["rules"], "an aggregated role's rules are the aggregation's");

        let crb = bootstrap()
            .into_iter()
            .find(|o| o.kind() == "ClusterRoleBinding" && o.meta().name == "cluster-admin")
            .unwrap();
        let mut stored = crb.to_json();
        stored["subjects"] = json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "ops"}]);
        let next = reconcile(&stored, &crb).unwrap();
        assert_eq!(next["subjects"].as_array().unwrap().len(), 2);
        assert_eq!(next["subjects"][1]["name"], "system:masters");
    }
}
