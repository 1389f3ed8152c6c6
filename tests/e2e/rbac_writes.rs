//! RBAC as kube enforces it on writes, through the real binary: escalation prevention (a user
//! who may write bindings cannot bind cluster-admin to herself; a role needs the permissions it
//! grants or `escalate`; a binding needs the role's permissions or `bind`), kube's validation
//! with its 422 texts, one bad stored object never freezing the rest, and the bootstrap and
//! policy-file roles visible (and aggregated) through the API.

use crate::authz::{issue_user, write_policy};
use crate::common::*;
use frontdoor::store::backend::Storage;
use serde_json::{json, Value};
use std::time::Duration;

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

/// alice may write roles and bindings and read configmaps (cluster-wide), nothing more; bob may
/// also bind the `view` ClusterRole; erin may also escalate roles; uma may update roles (and
/// read configmaps) but not create them.
const WRITERS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rbac-writer}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [roles, clusterroles, rolebindings, clusterrolebindings], verbs: [create, get, list, update, patch]}
- {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: view-binder}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], resourceNames: [view], verbs: [bind]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: role-escalator}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: writers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rbac-writer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bob-binds-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view-binder}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: role-updater}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [get, update]}
- {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: uma-updates}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: role-updater}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: uma}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: erin-escalates}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: role-escalator}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}]
"#;

fn start_with_writers() -> Frontdoor {
    let dir = tempfile::tempdir().unwrap();
    write_policy(dir.path(), "writers.yaml", WRITERS);
    let fd = Frontdoor::start_in(dir, &[]);
    for u in ["alice", "bob", "erin", "uma"] {
        issue_user(&fd, u, u, &[]);
    }
    fd
}

/// POSTs `obj` to `path` as `client`: the status code and the body.
fn post(fd: &Frontdoor, client: &reqwest::blocking::Client, path: &str, obj: &Value) -> (u16, Value) {
    let r = client.post(fd.url(path)).json(obj).send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn put(fd: &Frontdoor, client: &reqwest::blocking::Client, path: &str, obj: &Value) -> (u16, Value) {
    let r = client.put(fd.url(path)).json(obj).send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn binding(kind: &str, name: &str, ns: &str, role_kind: &str, role: &str, user: &str) -> Value {
    let mut meta = json!({"name": name});
    if !ns.is_empty() {
        meta["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    })
}

fn role(kind: &str, name: &str, ns: &str, rules: Value) -> Value {
    let mut meta = json!({"name": name});
    if !ns.is_empty() {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules})
}

const NOT_HELD: &str =
    r#"user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#;

#[test]
fn binding_cluster_admin_to_oneself_is_forbidden() {
    let fd = start_with_writers();
    let alice = fd.client_with_cert("alice");
    let kc = fd.certs().join("alice.kubeconfig");

    // kubectl, as the user would try it
    let o = kubectl(&kc, &["create", "clusterrolebinding", "mine", "--clusterrole=cluster-admin", "--user=alice"]);
    assert!(!o.status.success(), "alice bound cluster-admin to herself: {}", stdout(&o));
    assert!(stderr(&o).contains("is attempting to grant RBAC permissions not currently held"), "{}", stderr(&o));
    let o = kubectl(&kc, &["auth", "can-i", "list", "secrets", "-A"]);
    assert_eq!(stdout(&o).trim(), "no");

    // kube's exact Status
    let crb = binding("ClusterRoleBinding", "mine", "", "ClusterRole", "cluster-admin", "alice");
    let (code, s) = post(&fd, &alice, &format!("{RBAC}/clusterrolebindings"), &crb);
    assert_eq!(code, 403, "{s}");
    assert_eq!(s["reason"], "Forbidden");
    assert_eq!(
        s["message"],
        format!(
            "clusterrolebindings.rbac.authorization.k8s.io \"mine\" is forbidden: {NOT_HELD}\n{}\n{}",
            r#"{APIGroups:["*"], Resources:["*"], Verbs:["*"]}"#, r#"{NonResourceURLs:["*"], Verbs:["*"]}"#
        )
    );
    assert_eq!(s["details"]["name"], "mine");
    assert_eq!(s["details"]["kind"], "clusterrolebindings");

    // a RoleBinding to cluster-admin in one namespace is as forbidden
    let rb = binding("RoleBinding", "mine", "default", "ClusterRole", "cluster-admin", "alice");
    let (code, s) = post(&fd, &alice, &format!("{RBAC}/namespaces/default/rolebindings"), &rb);
    assert_eq!(code, 403, "{s}");
    assert!(s["message"]
        .as_str()
        .unwrap()
        .starts_with(r#"rolebindings.rbac.authorization.k8s.io "mine" is forbidden: user "alice""#));

    // what she holds herself she may pass on
    fd.kubectl_ok(&["create", "clusterrole", "cm-reader", "--verb=get,list", "--resource=configmaps"]);
    let o = kubectl(
        &kc,
        &["-n", "default", "create", "rolebinding", "carol-cm", "--clusterrole=cm-reader", "--user=carol"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // a role that does not exist: kube's NotFound
    let rb = binding("RoleBinding", "ghost", "default", "Role", "ghost", "carol");
    let (code, s) = post(&fd, &alice, &format!("{RBAC}/namespaces/default/rolebindings"), &rb);
    assert_eq!((code, s["message"].as_str().unwrap()), (404, r#"roles.rbac.authorization.k8s.io "ghost" not found"#));

    // `bind` on the role is enough without holding its permissions (view reads pods; bob cannot)
    let bob = fd.certs().join("bob.kubeconfig");
    let o =
        kubectl(&bob, &["-n", "default", "create", "rolebinding", "carol-view", "--clusterrole=view", "--user=carol"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o =
        kubectl(&bob, &["-n", "default", "create", "rolebinding", "carol-edit", "--clusterrole=edit", "--user=carol"]);
    assert!(!o.status.success(), "bind is for view only");

    // system:masters may bind anything
    fd.kubectl_ok(&["create", "clusterrolebinding", "alice-admin", "--clusterrole=cluster-admin", "--user=alice"]);
    wait_until("alice to be cluster-admin", Duration::from_secs(10), || {
        stdout(&kubectl(&kc, &["auth", "can-i", "list", "secrets", "-A"])).trim() == "yes"
    });
}

#[test]
fn roles_need_the_permissions_they_grant_or_escalate() {
    let fd = start_with_writers();
    let alice = fd.client_with_cert("alice");
    let roles = format!("{RBAC}/namespaces/default/roles");

    let secrets = json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]);
    let (code, s) = post(&fd, &alice, &roles, &role("Role", "sneaky", "default", secrets.clone()));
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        format!(
            "roles.rbac.authorization.k8s.io \"sneaky\" is forbidden: {NOT_HELD}\n{}",
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#
        )
    );
    // missing verbs of one resource are compacted into one line; what she holds is not listed
    let mixed = json!([
        {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"], "verbs": ["delete"]},
    ]);
    let (code, s) = post(&fd, &alice, &roles, &role("Role", "sneaky", "default", mixed));
    assert_eq!(code, 403);
    assert_eq!(
        s["message"],
        format!(
            "roles.rbac.authorization.k8s.io \"sneaky\" is forbidden: {NOT_HELD}\n{}\n{}\n{}",
            r#"{APIGroups:[""], Resources:["configmaps"], Verbs:["watch"]}"#,
            r#"{APIGroups:[""], Resources:["pods"], ResourceNames:["p"], Verbs:["delete"]}"#,
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "watch"]}"#,
        )
    );
    // what she holds she may grant, and an update is checked as a create is
    let cm = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
    let (code, s) = post(&fd, &alice, &roles, &role("Role", "cm", "default", cm));
    assert_eq!(code, 201, "{s}");
    let mut updated = s.clone();
    updated["rules"] = secrets.clone();
    let (code, s) = put(&fd, &alice, &format!("{roles}/cm"), &updated);
    assert_eq!(code, 403, "{s}");
    // a ClusterRole is checked against her cluster-wide rules; aggregationRule needs cluster-admin
    let (code, s) = post(&fd, &alice, &format!("{RBAC}/clusterroles"), &role("ClusterRole", "c", "", secrets.clone()));
    assert_eq!(code, 403, "{s}");
    let agg = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "agg"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}});
    let (code, s) = post(&fd, &alice, &format!("{RBAC}/clusterroles"), &agg);
    assert_eq!(code, 403, "{s}");
    assert_eq!(
        s["message"],
        r#"clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the aggregationRule"#
    );

    // `escalate` on roles lets erin grant what she does not hold
    let erin = fd.client_with_cert("erin");
    let (code, s) = post(&fd, &erin, &roles, &role("Role", "sneaky", "default", secrets.clone()));
    assert_eq!(code, 201, "{s}");
    // and system:masters may grant anything
    let (code, s) = post(&fd, &fd.admin_client(), &format!("{RBAC}/clusterroles"), &agg);
    assert_eq!(code, 201, "{s}");
}

/// kube's AllowCreateOnUpdate for RBAC objects: a PUT of a missing one creates it (201), when
/// the writer may also `create` it, and is checked for escalation as a create is.
#[test]
fn a_put_creates_a_missing_role_when_the_writer_may_create() {
    let fd = start_with_writers();
    let roles = format!("{RBAC}/namespaces/default/roles");
    let cm = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
    let gone = |name: &str| {
        let r = fd.admin_client().get(fd.url(&format!("{roles}/{name}"))).send().unwrap();
        r.status().as_u16() == 404
    };

    // uma may update roles, not create them: kube asks the authorizer about `create`
    let uma = fd.client_with_cert("uma");
    let (code, s) = put(&fd, &uma, &format!("{roles}/by-uma"), &role("Role", "by-uma", "default", cm.clone()));
    assert_eq!(code, 403, "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(msg.starts_with(r#"roles.rbac.authorization.k8s.io "by-uma" is forbidden"#), "{msg}");
    assert!(gone("by-uma"));
    // what is wrong with the object comes first, as kube validates before it asks
    let no_verbs = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": []}]);
    let (code, s) = put(&fd, &uma, &format!("{roles}/by-uma"), &role("Role", "by-uma", "default", no_verbs));
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")), "{s}");
    assert!(gone("by-uma"));

    // alice may: created as sent (a resourceVersion ignored), then updated
    let alice = fd.client_with_cert("alice");
    let mut sent = role("Role", "by-alice", "default", cm.clone());
    sent["metadata"]["resourceVersion"] = json!("12345");
    let (code, s) = put(&fd, &alice, &format!("{roles}/by-alice"), &sent);
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["rules"], cm);
    assert!(s["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()), "{s}");
    let (code, s) = put(&fd, &alice, &format!("{roles}/by-alice"), &s);
    assert_eq!(code, 200, "{s}");
    // and uma may update what exists
    let (code, s) = put(&fd, &uma, &format!("{roles}/by-alice"), &s);
    assert_eq!(code, 200, "{s}");

    // a created role is checked for escalation as a POST is
    let secrets = json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]);
    let (code, s) = put(&fd, &alice, &format!("{roles}/sneaky"), &role("Role", "sneaky", "default", secrets));
    assert_eq!(code, 403, "{s}");
    assert!(s["message"].as_str().unwrap().contains(NOT_HELD), "{s}");
    assert!(gone("sneaky"));

    // kubectl replace of a missing ClusterRole, as against kube
    let kc = fd.certs().join("alice.kubeconfig");
    let f = fd.certs().join("replace.yaml");
    std::fs::write(&f, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: replaced}\nrules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [list]}]\n").unwrap();
    let o = kubectl(&kc, &["replace", "-f", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("clusterrole.rbac.authorization.k8s.io/replaced replaced"), "{}", stdout(&o));

    // a ConfigMap is not created by a PUT
    let c = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nope"}});
    let (code, s) = put(&fd, &fd.admin_client(), "/api/v1/namespaces/default/configmaps/nope", &c);
    assert_eq!((code, s["reason"].as_str()), (404, Some("NotFound")), "{s}");
}

#[test]
fn invalid_rbac_objects_are_rejected_with_kubes_422() {
    let fd = Frontdoor::start(&[]);
    let admin = fd.admin_client();
    let roles = format!("{RBAC}/namespaces/default/roles");
    let cases = [
        (
            role("Role", "bad", "default", json!([{"apiGroups": [""], "resources": ["pods"]}])),
            r#"Role.rbac.authorization.k8s.io "bad" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"#,
        ),
        (
            role(
                "Role",
                "bad",
                "default",
                json!([{"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]}]),
            ),
            r#"Role.rbac.authorization.k8s.io "bad" is invalid: [rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs, rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs]"#,
        ),
        (
            role("Role", "bad", "default", json!([{"verbs": ["get"]}])),
            r#"Role.rbac.authorization.k8s.io "bad" is invalid: [rules[0].apiGroups: Required value: resource rules must supply at least one api group, rules[0].resources: Required value: resource rules must supply at least one resource]"#,
        ),
    ];
    for (obj, want) in cases {
        let (code, s) = post(&fd, &admin, &roles, &obj);
        assert_eq!(code, 422, "{s}");
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["message"], want);
    }
    let mut robot = binding("RoleBinding", "rb", "default", "ClusterRole", "view", "x");
    robot["subjects"] = json!([{"kind": "Robot", "name": "r2"}, {"kind": "ServiceAccount", "name": "Bad_Name"}]);
    let (code, s) = post(&fd, &admin, &format!("{RBAC}/namespaces/default/rolebindings"), &robot);
    assert_eq!(code, 422, "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(
        msg.starts_with(r#"RoleBinding.rbac.authorization.k8s.io "rb" is invalid: [subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group", subjects[1].name: Invalid value: "Bad_Name": "#),
        "{msg}"
    );
    assert_eq!(s["details"]["causes"][0]["field"], "subjects[0].kind");
    assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueNotSupported");

    // roleRef is immutable
    fd.kubectl_ok(&["-n", "default", "create", "rolebinding", "rb", "--clusterrole=view", "--user=x"]);
    let path = format!("{RBAC}/namespaces/default/rolebindings/rb");
    let mut current: Value = admin.get(fd.url(&path)).send().unwrap().json().unwrap();
    current["roleRef"]["name"] = json!("edit");
    let (code, s) = put(&fd, &admin, &path, &current);
    assert_eq!(code, 422, "{s}");
    assert_eq!(
        s["message"],
        r#"RoleBinding.rbac.authorization.k8s.io "rb" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#
    );
    let o = fd.kubectl(&["-n", "default", "patch", "rolebinding", "rb", "-p", r#"{"roleRef":{"name":"admin"}}"#]);
    assert!(stderr(&o).contains("cannot change roleRef"), "{}", stderr(&o));

    // kube's defaults: a User subject's apiGroup, roleRef's apiGroup
    let mut bare = binding("ClusterRoleBinding", "bare", "", "ClusterRole", "view", "y");
    bare["subjects"] = json!([{"kind": "User", "name": "y"}]);
    bare["roleRef"] = json!({"kind": "ClusterRole", "name": "view"});
    let (code, s) = post(&fd, &admin, &format!("{RBAC}/clusterrolebindings"), &bare);
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(s["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    let o = fd.kubectl(&["auth", "can-i", "list", "pods", "--as", "y"]);
    assert_eq!(stdout(&o).trim(), "yes", "{}", stderr(&o));
}

/// A RoleBinding, then a Role, that the validation would refuse reach the store behind its back
/// (written into etcd directly, as another replica or an older version might have): the other
/// objects still apply, so revoking a binding or a role's permission takes effect, and each bad
/// one is logged by name and counted.
#[test]
fn a_bad_stored_object_does_not_freeze_rbac() {
    let etcd_dir = tempfile::tempdir().unwrap();
    let etcd = frontdoor::store::etcd::process::EtcdProcess::start(etcd_dir.path()).unwrap();
    let fd = Frontdoor::start(&["--etcd-servers", etcd.url.as_str()]);
    let anon = fd.anonymous_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    fd.kubectl_ok(&[
        "-n",
        "default",
        "create",
        "rolebinding",
        "anon-view",
        "--clusterrole=view",
        "--user=system:anonymous",
    ]);
    wait_until("the binding to grant", Duration::from_secs(10), || anon.get(&cms).send().unwrap().status() == 200);

    let storage =
        frontdoor::store::etcd::EtcdStorage::connect(&frontdoor::store::etcd::EtcdConfig::new(vec![etcd.url.clone()]))
            .unwrap();
    let bad = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bad-one", "namespace": "default", "uid": "u"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Nope", "name": "x"}, "subjects": []});
    storage.create("/registry/rbac.authorization.k8s.io/rolebindings/default/bad-one", bad).unwrap();
    wait_until("the bad binding to be logged", Duration::from_secs(10), || fd.logs().contains("bad-one"));

    fd.kubectl_ok(&["-n", "default", "delete", "rolebinding", "anon-view"]);
    wait_until("the revocation to take effect", Duration::from_secs(10), || {
        anon.get(&cms).send().unwrap().status() == 403
    });

    // an invalid Role beside a Role whose permission is revoked
    fd.kubectl_ok(&["-n", "default", "create", "role", "anon-cm", "--verb=list", "--resource=configmaps"]);
    fd.kubectl_ok(&["-n", "default", "create", "rolebinding", "anon-cm", "--role=anon-cm", "--user=system:anonymous"]);
    wait_until("the role to grant", Duration::from_secs(10), || anon.get(&cms).send().unwrap().status() == 200);
    let bad = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "bad-role", "namespace": "default", "uid": "v"}, "rules": [{"resources": ["pods"]}]});
    storage.create("/registry/rbac.authorization.k8s.io/roles/default/bad-role", bad).unwrap();
    wait_until("the bad role to be logged", Duration::from_secs(10), || fd.logs().contains("bad-role"));
    fd.kubectl_ok(&[
        "-n",
        "default",
        "patch",
        "role",
        "anon-cm",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/rules/0/resources", "value": ["secrets"]}]"#,
    ]);
    wait_until("the role's revocation to take effect", Duration::from_secs(10), || {
        anon.get(&cms).send().unwrap().status() == 403
    });

    let metrics = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"frontdoor_policy_reload_total{policy="rbac-store",result="failure"}"#)),
        "{metrics}"
    );
}

/// An admin SubjectAccessReview: may dora list widgets.example.com?
fn dora_lists_widgets(fd: &Frontdoor) -> bool {
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "dora", "resourceAttributes": {"verb": "list", "group": "example.com", "resource": "widgets"}}});
    let (code, v) = post(fd, &fd.admin_client(), "/apis/authorization.k8s.io/v1/subjectaccessreviews", &review);
    assert_eq!(code, 201, "{v}");
    v["status"]["allowed"] == json!(true)
}

#[test]
fn bootstrap_and_file_roles_are_served_and_aggregated() {
    let dir = tempfile::tempdir().unwrap();
    write_policy(dir.path(), "writers.yaml", WRITERS);
    let fd = Frontdoor::start_in(dir, &[]);

    // kube's bootstrap roles, with the aggregated rules filled in
    let view: Value = serde_json::from_str(&fd.kubectl_ok(&["get", "clusterrole", "view", "-o", "json"])).unwrap();
    assert!(view["aggregationRule"].is_object(), "{view}");
    assert!(view["rules"].to_string().contains("configmaps"), "{view}");
    let admin = fd.kubectl_ok(&["describe", "clusterrole", "admin"]);
    assert!(admin.contains("rolebindings.rbac.authorization.k8s.io") && admin.contains("pods"), "{admin}");
    let listed = fd.kubectl_ok(&["get", "clusterrolebindings"]);
    assert!(listed.contains("cluster-admin") && listed.contains("system:discovery"), "{listed}");
    // the policy files' objects too
    assert!(fd.kubectl_ok(&["get", "clusterrole", "rbac-writer", "-o", "name"]).contains("rbac-writer"));
    assert!(fd.kubectl_ok(&["get", "clusterrolebinding", "writers", "-o", "wide"]).contains("alice"));

    // a user's ClusterRole labelled aggregate-to-view joins view, in the API and for the authorizer
    fd.kubectl_ok(&["create", "clusterrolebinding", "dora-view", "--clusterrole=view", "--user=dora"]);
    assert!(!dora_lists_widgets(&fd));
    // (kubectl create clusterrole would look widgets up in discovery)
    let widgets = role(
        "ClusterRole",
        "widgets-view",
        "",
        json!([{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}]),
    );
    let (code, s) = post(&fd, &fd.admin_client(), &format!("{RBAC}/clusterroles"), &widgets);
    assert_eq!(code, 201, "{s}");
    fd.kubectl_ok(&["label", "clusterrole", "widgets-view", "rbac.authorization.k8s.io/aggregate-to-view=true"]);
    wait_until("view to aggregate widgets", Duration::from_secs(10), || {
        fd.kubectl_ok(&["get", "clusterrole", "view", "-o", "json"]).contains("widgets")
    });
    assert!(
        fd.kubectl_ok(&["get", "clusterrole", "admin", "-o", "json"]).contains("widgets"),
        "admin aggregates edit aggregates view"
    );
    assert!(dora_lists_widgets(&fd));

    // an object a policy file defines is the file's: the API refuses to change it
    let o = fd.kubectl(&["label", "clusterrole", "rbac-writer", "x=y"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is defined by an RBAC policy file"), "{}", stderr(&o));
    // and to delete it (it would come back at once, granting on), alone or in a collection
    let o = fd.kubectl(&["delete", "clusterrolebinding", "writers"]);
    assert!(stderr(&o).contains("is defined by an RBAC policy file"), "{}", stderr(&o));
    let all = fd.admin_client().delete(fd.url(&format!("{RBAC}/clusterrolebindings"))).send().unwrap();
    assert_eq!(all.status().as_u16(), 403, "{}", all.text().unwrap());
    let listed = fd.kubectl_ok(&["get", "clusterrolebindings"]);
    assert!(listed.contains("writers") && listed.contains("cluster-admin"), "nothing deleted: {listed}");
    // a bootstrap role is the cluster's to edit, as in kube
    fd.kubectl_ok(&["label", "clusterrole", "system:monitoring", "x=y"]);
}

/// kube's bootstrap on a restart: deleted bootstrap objects come back, edited ones get back what
/// they lost and keep what was added, and `autoupdate: "false"` protects an edit.
#[test]
fn bootstrap_objects_are_reconciled_on_restart() {
    let mut fd = Frontdoor::start(&[]);
    let admin = fd.admin_client();
    let discovery = format!("{RBAC}/clusterroles/system:discovery");
    let mut role: Value = admin.get(fd.url(&discovery)).send().unwrap().json().unwrap();
    role["rules"] = json!([{"nonResourceURLs": ["/extra"], "verbs": ["get"]}]);
    assert_eq!(put(&fd, &admin, &discovery, &role).0, 200);
    let monitoring = format!("{RBAC}/clusterroles/system:monitoring");
    let mut protected: Value = admin.get(fd.url(&monitoring)).send().unwrap().json().unwrap();
    protected["rules"] = json!([{"nonResourceURLs": ["/only"], "verbs": ["get"]}]);
    protected["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = json!("false");
    assert_eq!(put(&fd, &admin, &monitoring, &protected).0, 200);
    // a deleted bootstrap role grants nothing until the restart brings it back, as in kube
    fd.kubectl_ok(&["create", "rolebinding", "erin-edit", "--clusterrole=edit", "--user=erin", "-n", "default"]);
    let erin_creates = |fd: &Frontdoor| {
        let o = fd.kubectl(&["auth", "can-i", "create", "configmaps", "-n", "default", "--as", "erin"]);
        stdout(&o).trim() == "yes"
    };
    wait_until("the binding to grant", Duration::from_secs(10), || erin_creates(&fd));
    fd.kubectl_ok(&["delete", "clusterrole", "edit"]);
    wait_until("the deleted role to stop granting", Duration::from_secs(10), || !erin_creates(&fd));

    fd.kubectl_ok(&["delete", "clusterrolebinding", "system:basic-user"]);
    // (which also took away erin's right to ask what she may do)
    fd.child.kill().unwrap();
    fd.child.wait().unwrap();
    let dir = std::mem::replace(&mut fd.dir, tempfile::tempdir().unwrap());
    drop(fd);
    let fd = Frontdoor::start_in(dir, &[]);
    let admin = fd.admin_client();
    let role: Value = admin.get(fd.url(&discovery)).send().unwrap().json().unwrap();
    let rules = role["rules"].to_string();
    assert!(rules.contains("/extra") && rules.contains("/healthz"), "{rules}");
    let protected: Value = admin.get(fd.url(&monitoring)).send().unwrap().json().unwrap();
    assert_eq!(protected["rules"], json!([{"nonResourceURLs": ["/only"], "verbs": ["get"]}]));
    assert!(fd
        .kubectl_ok(&["get", "clusterrolebinding", "system:basic-user", "-o", "name"])
        .contains("system:basic-user"));
    wait_until("the recreated edit role to grant", Duration::from_secs(10), || erin_creates(&fd));
}
