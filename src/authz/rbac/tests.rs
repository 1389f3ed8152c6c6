use super::*;

use crate::authz::testing::{res, user};

fn path(u: &UserInfo, verb: &str, p: &str) -> Attributes<'static> {
    let user = std::borrow::Cow::Owned(u.clone());
    Attributes { user, verb: verb.to_string().into(), path: p.to_string().into(), ..Default::default() }
}

const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: team-a}
rules:
- {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list]}
- {apiGroups: [""], resources: [configmaps], resourceNames: [settings], verbs: [get, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-reads, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {kind: User, apiGroup: rbac.authorization.k8s.io, name: alice}
- {kind: ServiceAccount, name: builder}
- {kind: ServiceAccount, name: deployer, namespace: ci}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: scaler}
rules:
- {apiGroups: [apps], resources: ["*/scale"], verbs: [update, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-scale, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: scaler}
subjects:
- {kind: Group, apiGroup: rbac.authorization.k8s.io, name: devs}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: metrics-reader}
rules:
- {nonResourceURLs: ["/metrics", "/debug/*"], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops-metrics}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: metrics-reader}
subjects:
- {kind: Group, apiGroup: rbac.authorization.k8s.io, name: ops}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dangling}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: does-not-exist}
subjects:
- {kind: User, apiGroup: rbac.authorization.k8s.io, name: bob}
"#;

fn authorizer() -> RbacAuthorizer {
    let mut objs = bootstrap();
    objs.extend(load::parse_manifests(POLICY).unwrap());
    RbacAuthorizer::from_objects(objs)
}

#[test]
fn binding_and_matching_table() {
    let z = authorizer();
    let alice = user("alice", &["system:authenticated"]);
    let dev = user("dan", &["devs", "system:authenticated"]);
    let ops = user("olga", &["ops", "system:authenticated"]);
    let builder = user("system:serviceaccount:team-a:builder", &["system:serviceaccounts"]);
    let deployer = user("system:serviceaccount:ci:deployer", &[]);
    let other_sa = user("system:serviceaccount:team-b:builder", &[]);
    let cases: Vec<(&str, Attributes, bool)> = vec![
        ("role in its namespace", res(&alice, "get", "team-a", "", "pods", "", "p"), true),
        ("role not in another namespace", res(&alice, "get", "team-b", "", "pods", "", "p"), false),
        ("role not at cluster scope", res(&alice, "list", "", "", "pods", "", ""), false),
        ("verb not granted", res(&alice, "delete", "team-a", "", "pods", "", "p"), false),
        ("subresource granted", res(&alice, "get", "team-a", "", "pods", "log", "p"), true),
        ("subresource not granted", res(&alice, "create", "team-a", "", "pods", "exec", "p"), false),
        ("resourceName granted", res(&alice, "update", "team-a", "", "configmaps", "", "settings"), true),
        ("resourceName other", res(&alice, "update", "team-a", "", "configmaps", "", "other"), false),
        ("SA subject defaults to binding namespace", res(&builder, "list", "team-a", "", "pods", "", ""), true),
        ("SA in another namespace does not match", res(&other_sa, "list", "team-a", "", "pods", "", ""), false),
        ("SA subject with explicit namespace", res(&deployer, "get", "team-a", "", "pods", "", "p"), true),
        (
            "RoleBinding to ClusterRole, */scale",
            res(&dev, "update", "team-b", "apps", "deployments", "scale", "d"),
            true,
        ),
        (
            "RoleBinding to ClusterRole stays in namespace",
            res(&dev, "update", "team-a", "apps", "deployments", "scale", "d"),
            false,
        ),
        ("*/scale is not status", res(&dev, "update", "team-b", "apps", "deployments", "status", "d"), false),
        ("nonResourceURL exact", path(&ops, "get", "/metrics"), true),
        ("nonResourceURL trailing *", path(&ops, "get", "/debug/pprof/heap"), true),
        ("nonResourceURL wrong verb", path(&ops, "post", "/metrics"), false),
        ("nonResourceURL not granted", path(&alice, "get", "/metrics"), false),
        ("bootstrap discovery", path(&alice, "get", "/apis/apps/v1"), true),
        (
            "bootstrap basic-user",
            res(&alice, "create", "", "authorization.k8s.io", "selfsubjectaccessreviews", "", ""),
            true,
        ),
        ("bootstrap: anonymous sees version", path(&UserInfo::anonymous(), "get", "/version"), true),
        ("bootstrap: anonymous no discovery", path(&UserInfo::anonymous(), "get", "/api"), false),
        (
            "bootstrap: masters are cluster-admin",
            res(&user("root", &["system:masters"]), "delete", "x", "apps", "deployments", "", "d"),
            true,
        ),
    ];
    for (name, a, want) in cases {
        let (d, reason) = z.decide(&a);
        assert_eq!(d == Decision::Allow, want, "{name}: {reason}");
        if !want {
            assert_eq!(d, Decision::NoOpinion, "{name}: RBAC never denies");
        }
    }
}

#[test]
fn reasons_are_kubes() {
    let z = authorizer();
    let (_, r) = z.decide(&res(&user("alice", &[]), "get", "team-a", "", "pods", "", "p"));
    assert_eq!(&*r, r#"RBAC: allowed by RoleBinding "alice-reads/team-a" of Role "pod-reader" to User "alice""#);
    let (_, r) =
        z.decide(&res(&user("system:serviceaccount:team-a:builder", &[]), "get", "team-a", "", "pods", "", "p"));
    assert_eq!(
        &*r,
        r#"RBAC: allowed by RoleBinding "alice-reads/team-a" of Role "pod-reader" to ServiceAccount "builder/team-a""#
    );
    let (_, r) = z.decide(&path(&user("o", &["ops"]), "get", "/metrics"));
    assert_eq!(
        &*r,
        r#"RBAC: allowed by ClusterRoleBinding "ops-metrics" of ClusterRole "metrics-reader" to Group "ops""#
    );
    let (d, r) = z.decide(&res(&user("bob", &[]), "get", "x", "", "pods", "", "p"));
    assert_eq!(d, Decision::NoOpinion);
    assert_eq!(&*r, r#"RBAC: clusterrole.rbac.authorization.k8s.io "does-not-exist" not found"#);
    let (_, r) = z.decide(&res(&user("carol", &[]), "get", "x", "", "pods", "", "p"));
    assert_eq!(&*r, "");
}

/// The granting binding's reason is built once with the policy and shared by every request it
/// allows (each request had its own copy).
#[tokio::test]
async fn an_allowing_reason_is_shared_across_requests() {
    let rbac = Arc::new(authorizer());
    let member = crate::authz::Member { kind: "RBAC", name: "rbac".into(), authorizer: rbac.clone() };
    let authz = crate::authz::Authorization::from_chain(vec![member], Some(rbac));
    let alice = Arc::new(user("alice", &[]));
    let mut reasons = Vec::new();
    for name in ["p", "q"] {
        let path = format!("/api/v1/namespaces/team-a/pods/{name}");
        let mut ctx = crate::context::RequestContext {
            user: Some(alice.clone()),
            request_info: Arc::new(crate::request_info::RequestInfo::resolve("GET", &path, None).unwrap()),
            ..Default::default()
        };
        authz.authorize(&mut ctx).await.unwrap();
        let (decision, reason) = ctx.decision.take().unwrap();
        assert_eq!(decision, Decision::Allow);
        reasons.push(reason);
    }
    assert_eq!(
        &*reasons[0],
        r#"RBAC: allowed by RoleBinding "alice-reads/team-a" of Role "pod-reader" to User "alice""#
    );
    assert!(Arc::ptr_eq(&reasons[0], &reasons[1]), "one text, shared");
}

#[test]
fn aggregation_pulls_in_labelled_roles() {
    let mut objs = bootstrap();
    objs.extend(
        load::parse_manifests(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-view
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- {apiGroups: [example.com], resources: [widgets], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors:
  - matchExpressions: [{key: team, operator: In, values: [sre, ops]}]
rules:
- {apiGroups: [""], resources: [secrets], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: sre-bits, labels: {team: sre}}
rules:
- {apiGroups: [""], resources: [nodes], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: viewers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: v}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: admins}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: a}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mon}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: monitoring}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: m}]
"#,
        )
        .unwrap(),
    );
    let z = RbacAuthorizer::from_objects(objs);
    let v = user("v", &[]);
    let a = user("a", &[]);
    let m = user("m", &[]);
    let allow = |a: Attributes| z.decide(&a).0 == Decision::Allow;
    assert!(allow(res(&v, "list", "ns", "example.com", "widgets", "", "")), "view aggregates widgets-view");
    assert!(allow(res(&v, "get", "ns", "", "pods", "log", "p")), "view has bootstrap rules");
    assert!(!allow(res(&v, "get", "ns", "", "secrets", "", "s")), "view cannot read secrets");
    assert!(allow(res(&a, "watch", "ns", "example.com", "widgets", "", "")), "admin ⊇ edit ⊇ view, transitively");
    assert!(allow(res(&a, "delete", "ns", "", "secrets", "", "s")), "admin has edit's rules");
    assert!(
        allow(res(&a, "create", "ns", "rbac.authorization.k8s.io", "rolebindings", "", "")),
        "admin's own aggregate"
    );
    assert!(!allow(res(&a, "create", "ns", "", "nodes", "", "")));
    assert!(allow(res(&m, "get", "", "", "nodes", "", "n")), "matchExpressions In");
    assert!(!allow(res(&m, "get", "ns", "", "secrets", "", "s")), "an aggregated role's own rules are replaced");
}

#[test]
fn dynamic_objects_merge_and_bad_ones_are_left_out() {
    let z = authorizer();
    let carol = user("carol", &[]);
    let a = res(&carol, "get", "team-a", "", "pods", "", "p");
    assert_eq!(z.decide(&a).0, Decision::NoOpinion);
    let rb = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "carol", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "carol"}]
    });
    z.set_dynamic_resource("rolebindings", vec![rb.clone()]).unwrap();
    assert_eq!(z.decide(&a).0, Decision::Allow);
    // a bad object is left out alone: the others apply, so a revocation beside it takes effect
    let mut bad = rb.clone();
    bad["metadata"]["name"] = serde_json::json!("bad");
    bad["roleRef"]["kind"] = serde_json::json!("Nope");
    let skipped = z.set_dynamic_resource("rolebindings", vec![bad.clone(), rb.clone()]).unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].object, r#"RoleBinding "team-a/bad""#);
    assert!(skipped[0].error.contains("roleRef.kind: Unsupported value"), "{}", skipped[0].error);
    assert_eq!(z.decide(&a).0, Decision::Allow);
    z.set_dynamic_resource("rolebindings", vec![bad]).unwrap();
    assert_eq!(z.decide(&a).0, Decision::NoOpinion, "revoked, the bad binding notwithstanding");
    z.set_dynamic_resource("rolebindings", vec![rb.clone()]).unwrap();
    // clearing the resource's objects removes the grant
    z.set_dynamic_resource("rolebindings", vec![]).unwrap();
    assert_eq!(z.decide(&a).0, Decision::NoOpinion);
    assert!(z.set_dynamic(vec![rb]).is_empty());
    assert_eq!(z.decide(&a).0, Decision::Allow);
}

#[test]
fn a_bad_file_keeps_its_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.yaml");
    std::fs::write(&f, POLICY).unwrap();
    let z = RbacAuthorizer::new(vec![dir.path().to_path_buf()]).unwrap();
    let alice = user("alice", &[]);
    let a = res(&alice, "get", "team-a", "", "pods", "", "p");
    assert_eq!(z.decide(&a).0, Decision::Allow);
    std::fs::write(
        &f,
        format!("{POLICY}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Rolez\nmetadata: {{name: x}}\n"),
    )
    .unwrap();
    let err = format!("{:#}", z.reload().unwrap_err());
    assert!(err.contains("p.yaml") && err.contains("unknown kind"), "{err}");
    assert_eq!(z.decide(&a).0, Decision::Allow, "old policy kept");
    std::fs::write(&f, "").unwrap();
    z.reload().unwrap();
    assert_eq!(z.decide(&a).0, Decision::NoOpinion, "new policy in force");
    // one bad file does not hold back another's change (here a revocation)
    std::fs::write(&f, POLICY).unwrap();
    let other = dir.path().join("q.yaml");
    std::fs::write(&other, "kind: [\n").unwrap();
    assert!(z.reload().is_err());
    assert_eq!(z.decide(&a).0, Decision::Allow, "p.yaml's change applied beside the bad q.yaml");
    std::fs::write(&f, "").unwrap();
    assert!(z.reload().is_err(), "q.yaml is still bad");
    assert_eq!(z.decide(&a).0, Decision::NoOpinion, "p.yaml's revocation applied");
}

/// A file where the policy directory was keeps, failing, the objects of the files it replaced;
/// an object two files define fails the reload whole, and the startup.
#[test]
fn a_replaced_directory_and_a_duplicate_keep_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let rbac = dir.path().join("rbac");
    std::fs::create_dir(&rbac).unwrap();
    std::fs::write(rbac.join("p.yaml"), POLICY).unwrap();
    let z = RbacAuthorizer::new(vec![rbac.clone()]).unwrap();
    let alice = user("alice", &[]);
    let a = res(&alice, "get", "team-a", "", "pods", "", "p");
    assert_eq!(z.decide(&a).0, Decision::Allow);
    std::fs::write(rbac.join("copy.yaml"), POLICY).unwrap();
    let err = format!("{:#}", z.reload().unwrap_err());
    assert!(err.contains(" is defined in both ") && err.contains("copy.yaml") && err.contains("p.yaml"), "{err}");
    assert_eq!(z.decide(&a).0, Decision::Allow);
    let e = RbacAuthorizer::new(vec![rbac.clone()]).err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(e.contains(" is defined in both "), "{e}");
    std::fs::remove_file(rbac.join("copy.yaml")).unwrap();
    // the objects moved out of a file that fails now: the kept ones give way, no duplicate
    std::fs::write(rbac.join("moved.yaml"), POLICY).unwrap();
    std::fs::write(rbac.join("p.yaml"), "kind: [\n").unwrap();
    let err = format!("{:#}", z.reload().unwrap_err());
    assert!(err.contains("p.yaml") && !err.contains("defined"), "{err}");
    assert_eq!(z.decide(&a).0, Decision::Allow);
    std::fs::remove_file(rbac.join("moved.yaml")).unwrap();
    std::fs::write(rbac.join("p.yaml"), POLICY).unwrap();
    std::fs::write(rbac.join("twice.yaml"), "").unwrap();
    z.reload().unwrap();
    std::fs::rename(&rbac, dir.path().join("old")).unwrap();
    std::fs::write(&rbac, "x: 1\n").unwrap();
    assert!(z.reload().is_err());
    assert_eq!(z.decide(&a).0, Decision::Allow, "the replaced directory's objects are kept");
}

#[test]
fn rules_for_lists_cluster_and_namespace_rules() {
    let z = authorizer();
    let r = z.policy().rules_for(&user("alice", &["system:authenticated"]), "team-a");
    assert!(r.rules.iter().any(|x| x.resources.contains(&"pods/log".to_string())));
    assert!(r.rules.iter().any(|x| x.resources.contains(&"selfsubjectaccessreviews".to_string())));
    let r = z.policy().rules_for(&user("alice", &["system:authenticated"]), "team-b");
    assert!(!r.rules.iter().any(|x| x.resources.contains(&"pods/log".to_string())));
    let r = z.policy().rules_for(&user("bob", &[]), "x");
    assert_eq!(r.errors, vec![r#"clusterrole.rbac.authorization.k8s.io "does-not-exist" not found"#.to_string()]);
}

#[test]
fn example_policy_directory_is_valid_and_does_what_it_says() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/rbac");
    let z = RbacAuthorizer::new(vec![dir]).unwrap();
    let allow = |a: Attributes| z.decide(&a).0 == Decision::Allow;
    let dev = user("d", &["developers"]);
    assert!(allow(res(&dev, "create", "dev", "apps", "deployments", "", "")));
    assert!(!allow(res(&dev, "create", "prod", "apps", "deployments", "", "")));
    let auditor = user("a", &["auditors"]);
    assert!(allow(res(&auditor, "list", "prod", "example.com", "widgets", "", "")));
    assert!(!allow(res(&auditor, "get", "prod", "", "secrets", "", "s")));
    let ci = user("system:serviceaccount:ci:deployer", &[]);
    assert!(allow(res(&ci, "get", "dev", "", "configmaps", "", "app-settings")));
    assert!(!allow(res(&ci, "get", "dev", "", "configmaps", "", "other")));
    assert!(allow(res(&ci, "patch", "dev", "apps", "statefulsets", "scale", "s")));
    assert!(allow(path(&user("p", &["monitoring"]), "get", "/metrics")));
}

/// An invalid Role written into the store behind the validation's back (straight through the
/// storage layer, as another replica or an older version might) does not freeze RBAC: the
/// store's later changes still apply, so a revoked binding stops granting.
#[test]
fn a_bad_stored_object_does_not_freeze_later_changes() {
    use crate::store::{redb::RedbStorage, resources, Store};
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::with_storage(resources::defaults(), Arc::new(RedbStorage::open(dir.path(), 100).unwrap())).unwrap();
    let rbac = Arc::new(RbacAuthorizer::from_objects(bootstrap()));
    let member = crate::authz::Member { kind: "RBAC", name: "rbac".into(), authorizer: rbac.clone() };
    let authz = Arc::new(crate::authz::Authorization::from_chain(vec![member], Some(rbac.clone())));
    for resource in RESOURCES {
        let authz = authz.clone();
        store.on_change(
            "rbac.authorization.k8s.io",
            resource,
            Box::new(move |objs| crate::reload::report("rbac-store", &authz.set_dynamic_rbac_resource(resource, objs))),
        );
    }
    let def = |r: &str| store.def("rbac.authorization.k8s.io", r).unwrap().clone();
    let (roles, bindings) = (def("roles"), def("rolebindings"));
    let role = serde_json::json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "reader", "namespace": "team"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
    store.create(&roles, &roles.key("team", "reader"), role).unwrap();
    let rb = serde_json::json!({"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "alice", "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]});
    store.create(&bindings, &bindings.key("team", "alice"), rb).unwrap();
    let a = res(&user("alice", &[]), "get", "team", "", "configmaps", "", "c");
    assert_eq!(rbac.decide(&a).0, Decision::Allow);

    let failures = || crate::metrics::POLICY_RELOAD_TOTAL.with_label_values(&["rbac-store", "failure"]).get();
    let before = failures();
    let invalid = serde_json::json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "broken", "namespace": "team"}, "rules": [{"resources": ["pods"]}]});
    store.create(&roles, &roles.key("team", "broken"), invalid).unwrap();
    assert!(failures() > before, "the bad Role is counted");
    // the role's permission revoked beside it
    let key = roles.key("team", "reader");
    let mut narrowed = (*store.storage.get(&key).unwrap().value).clone();
    narrowed["rules"][0]["resources"] = serde_json::json!(["secrets"]);
    store.update(&roles, &key, narrowed, None).unwrap();
    assert_eq!(rbac.decide(&a).0, Decision::NoOpinion, "the role's revocation took effect");
    let s = res(&user("alice", &[]), "get", "team", "", "secrets", "", "s");
    assert_eq!(rbac.decide(&s).0, Decision::Allow);
    // a bad binding beside the one revoked
    let bad = serde_json::json!({"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "bad", "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Nope", "name": "reader"}});
    store.create(&bindings, &bindings.key("team", "bad"), bad).unwrap();
    store.delete(&bindings, &bindings.key("team", "alice"), None).unwrap();
    assert_eq!(rbac.decide(&s).0, Decision::NoOpinion, "the binding's revocation took effect");
}

/// kube's authorizer reads RBAC from the store alone: a bootstrap binding deleted there grants
/// nothing, though the built-in policy holds it (it is recreated on a restart).
#[test]
fn the_bootstrap_policy_gives_way_to_the_store_once_all_of_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let z = RbacAuthorizer::new(vec![dir.path().to_path_buf()]).unwrap();
    let anonymous = path(&UserInfo::anonymous(), "get", "/version");
    let alice = user("alice", &["system:authenticated"]);
    let discovery = path(&alice, "get", "/apis");
    assert_eq!(z.decide(&anonymous).0, Decision::Allow, "the built-in policy until the store is read");
    let stored = |resource: &str| -> Vec<serde_json::Value> {
        let deleted = |o: &RbacObject| o.meta().name == "system:public-info-viewer" && o.kind() == "ClusterRoleBinding";
        bootstrap().iter().filter(|o| o.resource() == resource && !deleted(o)).map(RbacObject::to_json).collect()
    };
    for r in ["roles", "clusterroles", "rolebindings"] {
        z.set_dynamic_resource(r, stored(r)).unwrap();
        assert_eq!(z.decide(&anonymous).0, Decision::Allow, "{r}: only part of the store is read");
    }
    z.set_dynamic_resource("clusterrolebindings", stored("clusterrolebindings")).unwrap();
    assert_eq!(z.decide(&anonymous).0, Decision::NoOpinion, "the deleted binding grants nothing");
    assert_eq!(z.decide(&discovery).0, Decision::Allow, "the stored ones grant");
}
