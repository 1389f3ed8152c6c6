use super::*;
use crate::store::redb::RedbStorage;
use crate::store::resources;

fn store(dir: &Path) -> Store {
    Store::with_storage(resources::defaults(), Arc::new(RedbStorage::open(dir, 1000).unwrap())).unwrap()
}

/// Feeds the store's RBAC objects to the authorizer, as the server's change hooks do.
fn connect(store: &Store, rbac: &Arc<RbacAuthorizer>) {
    for resource in super::super::RESOURCES {
        let r = rbac.clone();
        store.on_change(GROUP, resource, Box::new(move |objs| drop(r.set_dynamic_resource(resource, objs))));
    }
}

fn get(store: &Store, resource: &str, name: &str) -> Option<Value> {
    let def = store.def(GROUP, resource).unwrap();
    store.storage.get(&def.key("", name)).map(|s| (*s.value).clone())
}

#[test]
fn bootstrap_files_and_aggregation_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("rbac.yaml");
    std::fs::write(&policy, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: from-file}\nrules: [{apiGroups: [''], resources: [pods], verbs: [get]}]\n").unwrap();
    let s = store(&dir.path().join("data"));
    let rbac = Arc::new(RbacAuthorizer::new(vec![policy.clone()]).unwrap());
    connect(&s, &rbac);

    create_bootstrap(&s, &rbac.static_objects().0, file_defines(&rbac));
    sync_files(&s, &rbac);
    aggregate(&s, &rbac);
    let admin = get(&s, "clusterroles", "cluster-admin").unwrap();
    assert_eq!(admin["metadata"]["annotations"][AUTOUPDATE], "true");
    let crb = get(&s, "clusterrolebindings", "cluster-admin").unwrap();
    assert_eq!(crb["subjects"][0]["name"], "system:masters");
    let view = get(&s, "clusterroles", "view").unwrap();
    assert!(view["rules"].to_string().contains("configmaps"), "{view}");
    let file = get(&s, "clusterroles", "from-file").unwrap();
    assert_eq!(file["metadata"]["annotations"][POLICY_FILE], path_text(&policy));

    // a user's ClusterRole labelled aggregate-to-view joins view (and, through edit, admin)
    let def = s.def(GROUP, "clusterroles").unwrap().clone();
    let widgets = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widgets", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]});
    s.create(&def, &def.key("", "widgets"), widgets).unwrap();
    aggregate(&s, &rbac);
    assert!(get(&s, "clusterroles", "view").unwrap()["rules"].to_string().contains("widgets"));
    assert!(get(&s, "clusterroles", "admin").unwrap()["rules"].to_string().contains("widgets"));

    // the mirror follows the file: changed, then gone
    std::fs::write(&policy, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: from-file}\nrules: [{apiGroups: [''], resources: [secrets], verbs: [get]}]\n").unwrap();
    rbac.reload().unwrap();
    sync_files(&s, &rbac);
    assert!(get(&s, "clusterroles", "from-file").unwrap()["rules"].to_string().contains("secrets"));
    std::fs::write(&policy, "").unwrap();
    rbac.reload().unwrap();
    sync_files(&s, &rbac);
    assert!(get(&s, "clusterroles", "from-file").is_none());
    assert!(get(&s, "clusterroles", "view").is_some(), "bootstrap objects are not the files'");

    // an edited bootstrap role keeps its edits across restarts and gets back what it lost
    let stored = s.storage.get(&def.key("", "system:monitoring")).unwrap();
    let mut edited = (*stored.value).clone();
    edited["metadata"]["labels"]["x"] = json!("y");
    edited["rules"] = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]);
    s.update(&def, &stored.key, edited, Some(stored.rev)).unwrap();
    create_bootstrap(&s, &rbac.static_objects().0, file_defines(&rbac));
    let monitoring = get(&s, "clusterroles", "system:monitoring").unwrap();
    assert_eq!(monitoring["metadata"]["labels"]["x"], "y");
    assert_eq!(monitoring["rules"][0]["resources"], json!(["pods"]));
    assert!(monitoring["rules"].as_array().unwrap().len() > 1, "{monitoring}");
    // a deleted one comes back on a restart only
    s.delete(&def, &def.key("", "system:monitoring"), None).unwrap();
    assert!(get(&s, "clusterroles", "system:monitoring").is_none());
    create_bootstrap(&s, &rbac.static_objects().0, file_defines(&rbac));
    assert!(get(&s, "clusterroles", "system:monitoring").is_some());
}

#[test]
fn a_terminating_namespace_gets_no_mirrored_bindings() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("rbac.yaml");
    std::fs::write(&policy, "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb, namespace: going}\nroleRef: {kind: ClusterRole, name: view}\nsubjects: [{kind: User, name: u}]\n").unwrap();
    let s = store(&dir.path().join("data"));
    let rbac = Arc::new(RbacAuthorizer::new(vec![policy]).unwrap());
    let ns = s.def("", "namespaces").unwrap().clone();
    let going = json!({"metadata": {"name": "going", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
    s.create(&ns, &ns.key("", "going"), going).unwrap();
    let rb = s.def(GROUP, "rolebindings").unwrap().clone();
    sync_files(&s, &rbac);
    assert!(s.storage.get(&rb.key("going", "rb")).is_none(), "would hold up the namespace's deletion");
    s.delete(&ns, &ns.key("", "going"), None).unwrap();
    sync_files(&s, &rbac);
    assert!(s.storage.get(&rb.key("going", "rb")).is_some());
}

#[test]
fn a_file_redefining_a_bootstrap_object_owns_it_while_it_does() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("rbac.yaml");
    std::fs::write(&policy, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: system:monitoring}\nrules: [{nonResourceURLs: [/mine], verbs: [get]}]\n").unwrap();
    let s = store(&dir.path().join("data"));
    let rbac = Arc::new(RbacAuthorizer::new(vec![policy.clone()]).unwrap());
    create_bootstrap(&s, &rbac.static_objects().0, file_defines(&rbac));
    sync_files(&s, &rbac);
    create_bootstrap(&s, &rbac.static_objects().0, file_defines(&rbac));
    let m = get(&s, "clusterroles", "system:monitoring").unwrap();
    assert_eq!(m["rules"], json!([{"nonResourceURLs": ["/mine"], "verbs": ["get"]}]), "the file's, not reconciled");
    std::fs::write(&policy, "").unwrap();
    rbac.reload().unwrap();
    sync_files(&s, &rbac);
    let m = get(&s, "clusterroles", "system:monitoring").unwrap();
    assert_eq!(m["metadata"]["annotations"][AUTOUPDATE], "true", "the bootstrap one is back: {m}");
}
