use super::*;
use crate::authz::rbac::load::parse_manifests;
use crate::authz::testing::user;
use serde_json::json;

fn check(kind: &str, resource: &str, namespace: &str, who: UserInfo, grants: Grants) -> Check {
    let policy = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\nrules: [{apiGroups: [''], resources: [configmaps], verbs: [get]}]\n";
    let mut objs = crate::authz::rbac::bootstrap();
    objs.extend(parse_manifests(policy).unwrap());
    Check {
        rbac: Some(Arc::new(RbacAuthorizer::from_objects(objs))),
        user: who,
        grants,
        kind: kind.into(),
        resource: resource.into(),
        namespace: namespace.into(),
    }
}

fn root() -> UserInfo {
    user("root", &["system:masters", "system:authenticated"])
}

#[test]
fn validation_is_kubes_422_for_everyone() {
    let c = check("Role", "roles", "team", root(), Grants::default());
    let mut role =
        json!({"metadata": {"name": "r", "namespace": "team"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]});
    let s = c.run(None, &mut role).unwrap_err();
    assert_eq!(s.code, 422);
    assert_eq!(
        s.message,
        r#"Role.rbac.authorization.k8s.io "r" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"#
    );
    let causes = &s.details.unwrap().causes;
    assert_eq!((causes[0].field.as_str(), causes[0].reason.as_str()), ("rules[0].verbs", "FieldValueRequired"));
}

#[test]
fn bindings_are_defaulted_and_their_role_ref_is_immutable() {
    let c = check("RoleBinding", "rolebindings", "team", root(), Grants::default());
    let mut b = json!({"metadata": {"name": "b", "namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "u"}]});
    c.run(None, &mut b).unwrap();
    assert_eq!(b["roleRef"]["apiGroup"], GROUP);
    assert_eq!(b["subjects"][0]["apiGroup"], GROUP);
    let old = b.clone();
    b["roleRef"]["name"] = json!("edit");
    let s = c.run(Some(&old), &mut b).unwrap_err();
    assert_eq!(
        s.message,
        r#"RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#
    );
}

#[test]
fn escalation_comes_before_validation_and_gc_updates_pass() {
    let alice = user("alice", &["system:authenticated"]);
    let c = check("ClusterRoleBinding", "clusterrolebindings", "", alice.clone(), Grants::default());
    let mut b = json!({"metadata": {"name": "mine"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "alice"}]});
    let s = c.run(None, &mut b).unwrap_err();
    assert_eq!(s.code, 403, "{}", s.message);
    // the garbage collector's update of a binding she could not create is let through
    let old = b.clone();
    b["metadata"]["finalizers"] = json!(["x"]);
    c.run(Some(&old), &mut b).unwrap();
    // a role she holds: validation still applies
    let c = check("ClusterRole", "clusterroles", "", alice, Grants::default());
    let mut r = json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "nonResourceURLs": ["/x"]}]});
    assert_eq!(c.run(None, &mut r).unwrap_err().code, 403, "/x is not hers");
    let mut r =
        json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": []}]});
    assert_eq!(c.run(None, &mut r).unwrap_err().code, 422);
}
