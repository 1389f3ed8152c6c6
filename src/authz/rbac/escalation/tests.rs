use super::*;
use crate::authz::rbac::load::parse_manifests;
use crate::authz::rbac::{bootstrap, RbacObject};
use crate::authz::testing::user;

const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: binder}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [rolebindings, clusterrolebindings], verbs: [create]}
- {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-binds}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: binder}
subjects: [{kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: secrets, namespace: team}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-secrets, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: secrets}
subjects: [{kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dangling}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: gone}
subjects: [{kind: User, name: alice}]
"#;

fn policy() -> Policy {
    let mut objs = bootstrap();
    objs.extend(parse_manifests(POLICY).unwrap());
    Policy::compile(objs)
}

fn rr(kind: &str, name: &str) -> RoleRef {
    RoleRef { api_group: GROUP.into(), kind: kind.into(), name: name.into() }
}

fn role(text: &str) -> Role {
    match parse_manifests(text).unwrap().remove(0) {
        RbacObject::Role(r) | RbacObject::ClusterRole(r) => r,
        _ => panic!("not a role"),
    }
}

#[test]
fn binding_cluster_admin_needs_its_permissions_or_bind() {
    let p = policy();
    let alice = user("alice", &["system:authenticated"]);
    let none = Grants::default();
    let s = check_binding(&p, &alice, &none, "clusterrolebindings", "", "mine", &rr("ClusterRole", "cluster-admin"))
        .unwrap_err();
    assert_eq!(s.code, 403);
    assert_eq!(
        s.message,
        "clusterrolebindings.rbac.authorization.k8s.io \"mine\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}; resolution errors: [clusterroles.rbac.authorization.k8s.io \"gone\" not found]"
    );
    // bind on the role, or system:masters, lets it through
    let bind = Grants { bind: vec![(rr("ClusterRole", "cluster-admin"), true)], ..Default::default() };
    assert!(check_binding(&p, &alice, &bind, "clusterrolebindings", "", "mine", &rr("ClusterRole", "cluster-admin"))
        .is_ok());
    let root = user("root", &["system:masters"]);
    assert!(
        check_binding(&p, &root, &none, "clusterrolebindings", "", "x", &rr("ClusterRole", "cluster-admin")).is_ok()
    );
    // a role whose permissions she holds: in team (where she reads secrets), not at the cluster
    assert!(check_binding(&p, &alice, &none, "rolebindings", "team", "x", &rr("Role", "secrets")).is_ok());
    let view_secrets = rr("ClusterRole", "binder");
    assert!(check_binding(&p, &alice, &none, "rolebindings", "other", "x", &view_secrets).is_ok());
    // a missing role is kube's NotFound
    let s = check_binding(&p, &alice, &none, "rolebindings", "other", "x", &rr("Role", "secrets")).unwrap_err();
    assert_eq!((s.code, s.message.as_str()), (404, r#"roles.rbac.authorization.k8s.io "secrets" not found"#));
}

#[test]
fn roles_need_what_they_grant_or_escalate() {
    let p = policy();
    let bob = user("bob", &["devs", "system:authenticated"]);
    let alice = user("alice", &[]);
    let none = Grants::default();
    let secrets = role("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: team}\nrules: [{apiGroups: [''], resources: [secrets], verbs: [get, list]}]\n");
    let s = check_role(&p, &bob, &none, "roles", "team", None, &secrets).unwrap_err();
    assert_eq!(
        s.message,
        "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"bob\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}"
    );
    let s = check_role(&p, &alice, &none, "roles", "team", None, &secrets).unwrap_err();
    assert!(s.message.ends_with(r#"{APIGroups:[""], Resources:["secrets"], Verbs:["list"]}; resolution errors: [clusterroles.rbac.authorization.k8s.io "gone" not found]"#), "{}", s.message);
    let escalate = Grants { escalate: true, ..Default::default() };
    assert!(check_role(&p, &bob, &escalate, "roles", "team", None, &secrets).is_ok());

    let agg = role("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: a}\naggregationRule: {clusterRoleSelectors: [{matchLabels: {x: y}}]}\n");
    let s = check_role(&p, &alice, &none, "clusterroles", "", None, &agg).unwrap_err();
    assert_eq!(
        s.message,
        r#"clusterroles.rbac.authorization.k8s.io "a" is forbidden: must have cluster-admin privileges to use the aggregationRule"#
    );
    // dropping the aggregationRule is as much a change of it
    let plain = Role { aggregation_rule: None, ..agg.clone() };
    assert!(check_role(&p, &alice, &none, "clusterroles", "", Some(&agg), &plain).is_err());
    assert!(check_role(&p, &alice, &none, "clusterroles", "", None, &plain).is_ok());
}

#[test]
fn garbage_collector_updates_are_not_checked() {
    let old = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "1"}, "rules": []});
    let mut new = old.clone();
    new["metadata"]["finalizers"] = serde_json::json!(["x"]);
    new["metadata"]["ownerReferences"] = serde_json::json!([{"name": "o"}]);
    assert!(only_gc_fields(&old, &new));
    new["rules"] = serde_json::json!([{"verbs": ["*"]}]);
    assert!(!only_gc_fields(&old, &new));
}
