//! The verbs' semantics against a real redb store in a temp dir.

use super::{read, write, Options, Target};
use crate::filters::Reply;
use crate::store::{redb::RedbStorage, resources, resources::ResourceDef, Store};
use serde_json::{json, Value};
use std::sync::Arc;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(RedbStorage::open(dir.path(), 1000).unwrap());
    let s = Store::with_storage(resources::defaults(), storage).unwrap();
    (dir, s)
}

fn target<'a>(s: &'a Store, resource: &str, ns: &str, name: &str, query: &str) -> Target<'a> {
    let group = if resource.starts_with("roles") { "rbac.authorization.k8s.io" } else { "" };
    target_in(s, group, resource, ns, name, query)
}

fn target_in<'a>(s: &'a Store, group: &str, resource: &str, ns: &str, name: &str, query: &str) -> Target<'a> {
    Target {
        def: s.def(group, resource).unwrap(),
        namespace: ns.into(),
        name: name.into(),
        subresource: String::new(),
        query: Options::decode(&crate::request_info::query::Query::parse(query)).unwrap(),
        table: false,
        partial: false,
        output: Default::default(),
        content_type: "application/json".into(),
        user_agent: "kubectl/v1.32".into(),
        admit: None,
        create_right: None,
        warnings: Default::default(),
    }
}

fn body(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn create(s: &Store, ns: &str, obj: Value) -> Value {
    let r = write::create(s, &target(s, "configmaps", ns, "", ""), obj.to_string().as_bytes(), "admin").unwrap();
    assert_eq!(r.code, 201);
    body(&r)
}

#[test]
fn create_fills_metadata_and_checks_namespace_and_names() {
    let (_d, s) = store();
    let o = create(&s, "default", json!({"metadata": {"generateName": "gen-"}, "data": {"a": "b"}}));
    let name = o["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert!(o["metadata"]["uid"].is_string() && o["metadata"]["creationTimestamp"].is_string());
    assert_eq!((o["kind"].as_str(), o["apiVersion"].as_str()), (Some("ConfigMap"), Some("v1")));
    assert_eq!(o["metadata"]["managedFields"][0]["manager"], "kubectl");

    let t = target(&s, "configmaps", "nowhere", "", "");
    let e = write::create(&s, &t, br#"{"metadata":{"name":"x"}}"#, "").unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (404, "namespaces \"nowhere\" not found"));
    let t = target(&s, "configmaps", "default", "", "");
    let e = write::create(&s, &t, br#"{"metadata":{"name":"Bad"}}"#, "").unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message.starts_with(
            "ConfigMap \"Bad\" is invalid: metadata.name: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain"
        ),
        "{}",
        e.message
    );
    let e = write::create(&s, &t, br#"{"metadata":{"name":"x","namespace":"other"}}"#, "").unwrap_err();
    assert_eq!(e.code, 400);
    create(&s, "default", json!({"metadata": {"name": "x"}}));
    let e = write::create(&s, &t, br#"{"metadata":{"name":"x"}}"#, "").unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (409, "configmaps \"x\" already exists"));
    // dryRun=All writes nothing
    let t = target(&s, "configmaps", "default", "", "dryRun=All");
    assert_eq!(write::create(&s, &t, br#"{"metadata":{"name":"dry"}}"#, "").unwrap().code, 201);
    assert!(s.storage.get("/registry/configmaps/default/dry").is_none());
    // RBAC names may hold colons
    let t = target(&s, "roles", "default", "", "");
    assert_eq!(write::create(&s, &t, br#"{"metadata":{"name":"system:x"},"rules":[]}"#, "").unwrap().code, 201);
}

#[test]
fn update_conflicts_in_kube_wording_and_noop_keeps_revision() {
    let (_d, s) = store();
    let o = create(&s, "default", json!({"metadata": {"name": "x"}, "data": {"a": "1"}}));
    let rv = o["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let t = target(&s, "configmaps", "default", "x", "");
    let mut new = o.clone();
    new["data"]["a"] = json!("2");
    let r = write::update(&s, &t, new.to_string().as_bytes()).unwrap();
    let updated = body(&r);
    assert_ne!(updated["metadata"]["resourceVersion"], o["metadata"]["resourceVersion"]);
    // stale resourceVersion
    new["metadata"]["resourceVersion"] = json!(rv);
    let e = write::update(&s, &t, new.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.code, 409);
    assert_eq!(e.message, "Operation cannot be fulfilled on configmaps \"x\": the object has been modified; please apply your changes to the latest version and try again");
    // a no-op update does not write
    let again = write::update(&s, &t, updated.to_string().as_bytes()).unwrap();
    assert_eq!(body(&again)["metadata"]["resourceVersion"], updated["metadata"]["resourceVersion"]);
    // the name must match the URL
    let mut other = updated.clone();
    other["metadata"]["name"] = json!("y");
    assert_eq!(
        write::update(&s, &t, other.to_string().as_bytes()).unwrap_err().message,
        "the name of the object (y) does not match the name on the URL (x)"
    );
    // missing object
    let t = target(&s, "configmaps", "default", "nope", "");
    assert_eq!(write::update(&s, &t, br#"{"metadata":{"name":"nope"}}"#).unwrap_err().code, 404);
}

#[test]
fn delete_preconditions_finalizers_and_namespace_cascade() {
    let (_d, s) = store();
    s.namespaces.stop(); // the test runs the deleter's passes itself
    let t = target(&s, "namespaces", "", "", "");
    write::create(&s, &t, br#"{"metadata":{"name":"team"}}"#, "").unwrap();
    let o = create(&s, "team", json!({"metadata": {"name": "x"}}));
    let t = target(&s, "configmaps", "team", "x", "");
    let e = write::delete(&s, &t, br#"{"preconditions":{"uid":"other"}}"#).unwrap_err();
    assert_eq!(e.code, 409);
    assert!(
        e.message.ends_with(&format!(
            "Precondition failed: UID in precondition: other, UID in object meta: {}",
            o["metadata"]["uid"].as_str().unwrap()
        )),
        "{}",
        e.message
    );
    let r = write::delete(&s, &t, b"").unwrap();
    let st = body(&r);
    assert_eq!((st["status"].as_str(), st["details"]["name"].as_str()), (Some("Success"), Some("x")));
    assert!(st.get("code").is_none(), "kube's delete Status has no code: {st}");

    // finalizers keep the object until the last one is removed
    create(&s, "team", json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}));
    let t = target(&s, "configmaps", "team", "f", "");
    let marked = body(&write::delete(&s, &t, b"").unwrap());
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert!(s.storage.get("/registry/configmaps/team/f").is_some());
    let e = write::patch(
        &s,
        &Target { content_type: "application/merge-patch+json".into(), ..target(&s, "configmaps", "team", "f", "") },
        br#"{"metadata":{"finalizers":["example.com/hold","new"]}}"#,
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("no new finalizers can be added if the object is being deleted, found new finalizers []string{"),
        "{}",
        e.message
    );

    // deleting the namespace marks it; its deleter deletes what is in it and waits for finalizers
    create(&s, "team", json!({"metadata": {"name": "y"}}));
    let t = target(&s, "namespaces", "", "team", "");
    let ns = body(&write::delete(&s, &t, b"").unwrap());
    assert_eq!(ns["status"]["phase"], "Terminating");
    crate::store::namespace::sync(&s, "team");
    assert!(s.storage.get("/registry/configmaps/team/y").is_none());
    assert!(s.storage.get("/registry/namespaces/team").is_some(), "held by the finalizer on f");
    let e =
        write::create(&s, &target(&s, "configmaps", "team", "", ""), br#"{"metadata":{"name":"z"}}"#, "").unwrap_err();
    assert_eq!(
        e.message,
        "configmaps \"z\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    let t = Target { content_type: "application/json-patch+json".into(), ..target(&s, "configmaps", "team", "f", "") };
    write::patch(&s, &t, br#"[{"op":"remove","path":"/metadata/finalizers"}]"#).unwrap();
    assert!(s.storage.get("/registry/configmaps/team/f").is_none());
    crate::store::namespace::sync(&s, "team");
    assert!(s.storage.get("/registry/namespaces/team").is_none(), "the namespace goes with its last object");

    let e = write::delete(&s, &target(&s, "namespaces", "", "kube-system", ""), b"").unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (403, "namespaces \"kube-system\" is forbidden: this namespace may not be deleted")
    );
}

#[test]
fn list_pagination_selectors_and_exact_revisions() {
    let (_d, s) = store();
    for i in 0..5 {
        create(
            &s,
            "default",
            json!({"metadata": {"name": format!("c{i}"), "labels": {"n": i.to_string(), "app": "x"}}}),
        );
    }
    let page = |q: &str| body(&read::list(&s, &target(&s, "configmaps", "default", "", q)).unwrap());
    let p1 = page("limit=2");
    assert_eq!(p1["kind"], "ConfigMapList");
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["metadata"]["remainingItemCount"], 3);
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // a write between pages does not show: the pages are one snapshot
    create(&s, "default", json!({"metadata": {"name": "c9"}}));
    let p2 = page(&format!("limit=10&continue={token}"));
    let names: Vec<&str> =
        p2["items"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["c2", "c3", "c4"]);
    assert_eq!(p2["metadata"]["resourceVersion"], p1["metadata"]["resourceVersion"]);
    assert!(p2["metadata"].get("continue").is_none());

    assert_eq!(page("labelSelector=n%20in%20(1,3)")["items"].as_array().unwrap().len(), 2);
    assert_eq!(page("labelSelector=app%3Dx,n!%3D0")["items"].as_array().unwrap().len(), 4);
    assert_eq!(page("fieldSelector=metadata.name%3Dc9")["items"].as_array().unwrap().len(), 1);
    let e = read::list(&s, &target(&s, "configmaps", "default", "", "fieldSelector=data.a%3D1")).unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (400, "field label not supported: data.a"));

    let rv: u64 = p1["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let exact = page(&format!("resourceVersion={rv}&resourceVersionMatch=Exact"));
    assert_eq!(exact["items"].as_array().unwrap().len(), 5);
    let e = read::list(&s, &target(&s, "configmaps", "default", "", "resourceVersion=999999")).unwrap_err();
    assert_eq!(e.code, 504);

    // metadata only
    let mut t = target(&s, "configmaps", "default", "", "limit=1");
    t.partial = true;
    let meta = body(&read::list(&s, &t).unwrap());
    assert_eq!(meta["kind"], "PartialObjectMetadataList");
    assert_eq!(meta["items"][0]["kind"], "PartialObjectMetadata");
    assert!(meta["items"][0].get("data").is_none());

    // Table output
    let mut t = target(&s, "configmaps", "default", "", "limit=1");
    t.table = true;
    let table = body(&read::list(&s, &t).unwrap());
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"][1]["name"], "Data");
    assert_eq!(table["rows"][0]["cells"][0], "c0");
    assert!(table["metadata"]["continue"].is_string());
}

#[test]
fn status_subresource_updates_only_status() {
    let (_d, s) = store();
    let mut t = target(&s, "namespaces", "", "", "");
    write::create(&s, &t, br#"{"metadata":{"name":"team"}}"#, "").unwrap();
    t.name = "team".into();
    t.subresource = "status".into();
    let r = write::update(
        &s,
        &t,
        br#"{"metadata":{"name":"team","labels":{"ignored":"yes"}},"status":{"conditions":[{"type":"X","status":"True"}]}}"#,
    )
    .unwrap();
    let ns = body(&r);
    assert_eq!(ns["status"]["conditions"][0]["type"], "X");
    assert_eq!(ns["status"]["phase"], "Active", "defaulted");
    assert!(ns["metadata"]["labels"].get("ignored").is_none());
    // the main resource ignores status
    t.subresource.clear();
    let r = write::update(&s, &t, br#"{"metadata":{"name":"team"},"status":{"phase":"Other"}}"#).unwrap();
    assert_eq!(body(&r)["status"]["conditions"][0]["type"], "X");
    assert_eq!(body(&r)["status"]["phase"], "Active");
}

#[test]
fn a_delete_bodys_dry_run_is_checked_as_the_querys() {
    let (_d, s) = store();
    for n in ["a", "b"] {
        create(&s, "default", json!({"metadata": {"name": n, "labels": {"app": "x"}}}));
    }
    let one = target(&s, "configmaps", "default", "a", "");
    let all = target(&s, "configmaps", "default", "", "labelSelector=app%3Dx");
    let invalid = r#"DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Al"}: supported values: "All""#;
    let not_a_list = "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string";
    for (b, code, why) in [
        (r#"{"dryRun":["Al"]}"#, 422, invalid),
        (r#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":"All"}"#, 500, not_a_list),
        (
            r#"{"dryRun":[1]}"#,
            500,
            "json: cannot unmarshal number into Go struct field DeleteOptions.dryRun of type string",
        ),
    ] {
        for e in [
            write::delete(&s, &one, b.as_bytes()).unwrap_err(),
            write::delete_collection(&s, &all, b.as_bytes()).unwrap_err(),
        ] {
            assert_eq!((e.code, e.message.as_str()), (code, why), "{b}");
        }
    }
    // a dry run of either writes nothing; then the same without one deletes
    write::delete(&s, &one, br#"{"dryRun":["All"]}"#).unwrap();
    write::delete_collection(&s, &all, br#"{"dryRun":["All"]}"#).unwrap();
    let left = |s: &Store| {
        body(&read::list(s, &target(s, "configmaps", "default", "", "")).unwrap())["items"].as_array().unwrap().len()
    };
    assert_eq!(left(&s), 2);
    write::delete(&s, &one, br#"{"dryRun":null}"#).unwrap();
    assert_eq!(left(&s), 1);
}

#[test]
fn deletecollection_by_selector() {
    let (_d, s) = store();
    for (n, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        create(&s, "default", json!({"metadata": {"name": n, "labels": {"app": app}}}));
    }
    let t = target(&s, "configmaps", "default", "", "labelSelector=app%3Dx");
    let r = body(&write::delete_collection(&s, &t, b"").unwrap());
    assert_eq!(r["items"].as_array().unwrap().len(), 2);
    let left = body(&read::list(&s, &target(&s, "configmaps", "default", "", "")).unwrap());
    assert_eq!(left["items"][0]["metadata"]["name"], "c");
    // its list options are validated as a list's are (kube's ValidateListOptions), before
    // anything is deleted
    for (q, why) in [
        (
            "resourceVersionMatch=Exact",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        ("sendInitialEvents=true", "Forbidden: sendInitialEvents is forbidden for list"),
    ] {
        let t = target(&s, "configmaps", "default", "", q);
        for e in [write::delete_collection(&s, &t, b"").unwrap_err(), read::list(&s, &t).unwrap_err()] {
            assert_eq!((e.code, e.details.as_ref().map(|d| d.causes[0].message.as_str())), (422, Some(why)), "{q}");
        }
    }
    assert_eq!(
        body(&read::list(&s, &target(&s, "configmaps", "default", "", "")).unwrap())["items"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    let (_d, s) = store();
    let t = target(&s, "configmaps", "default", "", "");
    for b in [&b"[]"[..], b"\"x\"", b"{\"metadata\":\"x\"}", b"{not json"] {
        assert!(write::create(&s, &t, b, "").is_err());
    }
    let mut sec = target(&s, "configmaps", "default", "", "");
    sec.def = s.def("", "secrets").unwrap();
    let _ = write::create(&s, &sec, br#"{"metadata":{"name":"s"},"data":"x","stringData":{"a":"b"}}"#, "");
    let mut ns = target(&s, "namespaces", "", "", "");
    write::create(&s, &ns, br#"{"metadata":{"name":"odd"}}"#, "").unwrap();
    ns.name = "odd".into();
    ns.subresource = "status".into();
    let e = write::update(&s, &ns, br#"{"metadata":{"name":"odd"},"status":"weird"}"#).unwrap_err();
    assert_eq!(e.message, "Namespace in version \"v1\" cannot be handled as a Namespace: json: cannot unmarshal string into Go struct field Namespace.status of type v1.NamespaceStatus");
    ns.subresource.clear();
    let r = write::delete(&s, &ns, b"").unwrap();
    assert_eq!(r.code, 200);
    let p =
        Target { content_type: "application/json-patch+json".into(), ..target(&s, "configmaps", "default", "x", "") };
    create(&s, "default", json!({"metadata": {"name": "x"}}));
    assert!(write::patch(&s, &p, br#"[{"op":"replace","path":"","value":[]}]"#).is_err());
    let p =
        Target { content_type: "application/merge-patch+json".into(), ..target(&s, "configmaps", "default", "x", "") };
    let _ = write::patch(&s, &p, br#"{"metadata":"x"}"#);
    assert!(write::patch(&s, &p, br#"[1]"#).is_err());
}

#[test]
fn hostile_bodies_are_refused_in_kubes_words() {
    let (_d, s) = store();
    let t = target(&s, "configmaps", "default", "", "");
    let deep = format!("{{\"metadata\":{{\"name\":\"x\"}},\"data\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let e = write::create(&s, &t, deep.as_bytes(), "").unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        e.message,
        "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: \
         invalid character '[' exceeded max depth ({\"metadata\":{\"name\":\"x\"},\"data ...)"
    );
    let y = Target { content_type: "application/yaml".into(), ..target(&s, "configmaps", "default", "", "") };
    let e = write::create(&s, &y, ("data: ".to_string() + &"{a: ".repeat(100_000)).as_bytes(), "").unwrap_err();
    assert!(e.message.contains("yaml: exceeded max depth of 100 (64617461"), "{}", e.message);

    // patches: kube's bound on operations and on what copies add; no result deeper than a body
    create(&s, "default", json!({"metadata": {"name": "p"}, "data": {"a": "x".repeat(1000)}}));
    let jp =
        Target { content_type: "application/json-patch+json".into(), ..target(&s, "configmaps", "default", "p", "") };
    let many = Value::Array(vec![json!({"op": "test", "path": "/data/a", "value": "x"}); 10_001]);
    let e = write::patch(&s, &jp, many.to_string().as_bytes()).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (413, "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001")
    );
    let mut ops = vec![
        json!({"op": "add", "path": "/data/l", "value": []}),
        json!({"op": "add", "path": "/data/l/-", "value": "x".repeat(1000)}),
    ];
    for _ in 0..12 {
        ops.push(json!({"op": "copy", "from": "/data/l", "path": "/data/l/-"}));
    }
    let e = write::patch(&s, &jp, Value::Array(ops.clone()).to_string().as_bytes()).unwrap_err();
    // kube's json-patch refuses the copies past its bound, answered as any patch that does not apply
    assert_eq!((e.code, e.message.as_str()), (422, "the server rejected our request due to an error in our request"));
    assert!(
        crate::store::patch::json_patch(&json!({"data": {}}), &Value::Array(ops[..4].to_vec())).is_ok(),
        "a few copies apply"
    );
    let e = crate::store::patch::json_patch(&json!({"data": {}}), &Value::Array(ops)).unwrap_err();
    assert!(e.starts_with("Unable to complete the copy, the accumulated size increase of copy is"), "{e}");
    let nest = |n: usize| "[".repeat(n) + &"]".repeat(n);
    let ops = format!(
        r#"[{{"op":"add","path":"/data/x","value":{}}},{{"op":"add","path":"/data/x{}","value":{}}}]"#,
        nest(90),
        "/0".repeat(20),
        nest(90)
    );
    let e = write::patch(&s, &jp, ops.as_bytes()).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(e.message.contains("more than the 100 allowed"), "{}", e.message);
    assert!(s.storage.get("/registry/configmaps/default/p").unwrap().value["data"].get("x").is_none());
}

/// Server-side apply drops a field its manager stops applying only when no other manager owns
/// it: a co-owned key stays (now the other's alone), an unshared one goes.
#[test]
fn apply_keeps_a_field_another_manager_still_owns() {
    let (_d, s) = store();
    let apply = |manager: &str, data: Value| {
        // the writer may create (the REST handler asked the authorizer)
        let t = Target {
            create_right: Some(Ok(())),
            ..target(&s, "configmaps", "default", "shared", &format!("fieldManager={manager}"))
        };
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": data});
        body(&super::apply::apply(&s, &t, obj.to_string().as_bytes()).unwrap())
    };
    apply("a", json!({"k1": "1", "k2": "2", "k3": "3"}));
    // b applies k2 with the same value: no conflict, both own it
    apply("b", json!({"k2": "2"}));
    let o = apply("a", json!({"k1": "1"}));
    assert_eq!(o["data"], json!({"k1": "1", "k2": "2"}), "k3 was a's alone; k2 is b's too");
    let mut owners: Vec<(&str, bool)> = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["manager"].as_str().unwrap(), e["fieldsV1"]["f:data"].get("f:k2").is_some()))
        .collect();
    owners.sort();
    assert_eq!(owners, [("a", false), ("b", true)]);
    // once b stops applying it too, nobody owns k2 and it goes
    let o = apply("b", json!({"k4": "4"}));
    assert_eq!(o["data"], json!({"k1": "1", "k4": "4"}));
}

/// kube's decodeManagedFields: a write whose object carries no managedFields, or ones that do
/// not decode, keeps the live object's (a PUT of a manifest is no longer a change, and every
/// manager keeps what it owns); `[{}]` clears them; a create stores none that do not decode.
#[test]
fn a_write_without_managed_fields_keeps_the_live_ones() {
    let (_d, s) = store();
    let apply = |data: Value| {
        let t = Target { create_right: Some(Ok(())), ..target(&s, "configmaps", "default", "m", "fieldManager=app") };
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": data});
        body(&super::apply::apply(&s, &t, obj.to_string().as_bytes()).unwrap())
    };
    let applied = apply(json!({"keep": "1", "drop": "2"}));
    let t = target(&s, "configmaps", "default", "m", "");
    let manifest = json!({"metadata": {"name": "m"}, "data": {"keep": "1", "drop": "2"}});
    let put = body(&write::update(&s, &t, manifest.to_string().as_bytes()).unwrap());
    assert_eq!(put["metadata"]["resourceVersion"], applied["metadata"]["resourceVersion"], "no change: not written");
    assert_eq!(put["metadata"]["managedFields"], applied["metadata"]["managedFields"]);
    // the applier still owns `drop`: applying without it prunes it
    assert_eq!(apply(json!({"keep": "1"}))["data"], json!({"keep": "1"}));

    let managers = |o: &Value| -> Vec<String> {
        let list = o["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        list.iter().map(|e| e["manager"].as_str().unwrap_or("").to_string()).collect()
    };
    let put = |managed: Value| {
        let obj = json!({"metadata": {"name": "m", "managedFields": managed}, "data": {"keep": "1", "n": "x"}});
        body(&write::update(&s, &t, obj.to_string().as_bytes()).unwrap())
    };
    let bad =
        json!([{"manager": "evil", "operation": "Nope", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {}}]);
    assert_eq!(managers(&put(bad)), ["app", "kubectl"], "an entry that does not decode: the live ones stand");
    let bad_set = json!([{"manager": "evil", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": 5, "k:{bad json": {}}}]);
    assert_eq!(managers(&put(bad_set)), ["app", "kubectl"]);
    assert!(managers(&put(json!([{}]))).is_empty(), "[{{}}] clears them (the PUT changed nothing to own)");

    let created = create(
        &s,
        "default",
        json!({"metadata": {"name": "c", "managedFields": [{"manager": "evil", "operation": "Nope"}]}, "data": {"a": "b"}}),
    );
    assert_eq!(managers(&created), ["kubectl"], "what does not decode is not stored");
    let good = json!([{"manager": "tool", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:x": {}}, "k:{\"uid\":\"u\"}": {".": {}}, "i:0": {}, "v:\"a\"": {}, "x:later": {}}}]);
    let created = create(&s, "default", json!({"metadata": {"name": "d", "managedFields": good}, "data": {"x": "1"}}));
    assert_eq!(managers(&created), ["tool", "kubectl"], "ones that decode are kept");
}

/// kube's omitempty: empty labels, annotations, finalizers, ownerReferences and data are
/// neither stored nor owned, on a create, an update or a patch that empties them.
#[test]
fn empty_metadata_maps_and_data_are_omitted() {
    let (_d, s) = store();
    let o = create(
        &s,
        "default",
        json!({"metadata": {"name": "e", "labels": {}, "annotations": {}, "finalizers": [], "ownerReferences": []},
            "data": {}, "binaryData": {}}),
    );
    let keys = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert!(o.get("data").is_none() && o.get("binaryData").is_none(), "{o}");
    for k in ["labels", "annotations", "finalizers", "ownerReferences"] {
        assert!(o["metadata"].get(k).is_none(), "{k}: {}", o["metadata"]);
    }
    assert!(o["metadata"].get("managedFields").is_none(), "nothing to own: {}", o["metadata"]);
    let t = target(&s, "configmaps", "default", "e", "");
    let t = Target { content_type: "application/merge-patch+json".into(), ..t };
    let patched = body(&write::patch(&s, &t, br#"{"metadata":{"labels":{"a":"1"}},"data":{"k":"v"}}"#).unwrap());
    assert_eq!(keys(&patched["metadata"]["labels"]), ["a"]);
    let patched = body(&write::patch(&s, &t, br#"{"metadata":{"labels":{"a":null}},"data":{"k":null}}"#).unwrap());
    assert!(patched["metadata"].get("labels").is_none() && patched.get("data").is_none(), "{patched}");
}

/// kube's applyJSPatch: a JSON patch that is no list is Go's decoding 400; one that does not
/// apply is a generic 422 whose cause goes unsaid.
#[test]
fn a_json_patch_fails_in_kubes_words() {
    let (_d, s) = store();
    create(&s, "default", json!({"metadata": {"name": "j"}, "data": {"k": "v"}}));
    let patch = |query: &str, body: &str| {
        let t = target(&s, "configmaps", "default", "j", query);
        let t = Target { content_type: "application/json-patch+json".into(), ..t };
        write::patch(&s, &t, body.as_bytes()).unwrap_err()
    };
    let e = patch("", r#"{"op":"add"}"#);
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp")
    );
    let e = patch("fieldValidation=Ignore", r#""x""#);
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "json: cannot unmarshal string into Go value of type jsonpatch.Patch")
    );
    let e = patch("", r#"[{"op":"test","path":"/data/k","value":"other"}]"#);
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(e.message, "the server rejected our request due to an error in our request");
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["details"], json!({}), "{v}");
}

/// kube's DryRunnableStorage.Create: a dry run finds one in the way as the create would.
#[test]
fn a_dry_run_create_of_an_existing_object_conflicts() {
    let (_d, s) = store();
    create(&s, "default", json!({"metadata": {"name": "a"}}));
    let t = target(&s, "configmaps", "default", "", "dryRun=All");
    let e = write::create(&s, &t, br#"{"metadata":{"name":"a"}}"#, "").unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (409, "configmaps \"a\" already exists"));
}

/// kube's versionCheckManager and structuredMergeManager: an applied configuration names the
/// endpoint's kind and version, and carries no managedFields.
#[test]
fn an_applied_configuration_names_its_type_and_no_managed_fields() {
    let (_d, s) = store();
    let t = Target { create_right: Some(Ok(())), ..target(&s, "configmaps", "default", "a", "fieldManager=x") };
    let apply = |obj: Value| super::apply::apply(&s, &t, obj.to_string().as_bytes()).unwrap_err();
    let e = apply(json!({"metadata": {"name": "a"}}));
    assert_eq!((e.code, e.message.as_str()), (400, "invalid object type: /, Kind="));
    let e = apply(json!({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "a"}}));
    assert_eq!(e.message, "invalid object type: /v2, Kind=ConfigMap");
    let e = apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}}));
    assert_eq!(e.message, "invalid object type: apps/v1, Kind=Deployment");
    let e = apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "managedFields": [{"manager": "foo", "operation": "Apply"}]}}));
    assert_eq!((e.code, e.message.as_str()), (400, "metadata.managedFields must be nil"));
    assert!(s.storage.get("/registry/configmaps/default/a").is_none());
}

/// The list `t` asks for, written the way every list was before stored bytes: each item
/// serialized from its tree.
fn list_from_trees(s: &Store, t: &Target) -> Reply {
    let page = read::list_items(s, t).unwrap();
    let items = page.items.iter().map(|o| super::list::Item { value: o.value.clone(), raw: None }).collect();
    super::list::reply_list(s, t, items, read::list_meta(&page))
}

#[test]
fn served_from_stored_bytes_byte_for_byte() {
    let (_d, s) = store();
    for i in 0..6 {
        let data = json!({"k": format!("v{i} \u{e9}\u{1F600} \"q\" </>\n\t\u{1}"), "n": "1.50"});
        create(
            &s,
            "default",
            json!({"metadata": {"name": format!("c{i}"), "labels": {"n": i.to_string()}}, "data": data}),
        );
    }
    create(&s, "kube-system", json!({"metadata": {"name": "other"}}));
    let rv_before_update = s.storage.revision();
    // an update and a delete: a list at the older revision takes their previous states from the log
    let t = target(&s, "configmaps", "default", "c1", "");
    write::update(&s, &t, br#"{"metadata":{"name":"c1"},"data":{"k":"changed"}}"#).unwrap();
    write::delete(&s, &target(&s, "configmaps", "default", "c2", ""), b"").unwrap();
    let secret = target(&s, "secrets", "default", "", "");
    write::create(&s, &secret, br#"{"metadata":{"name":"s"},"type":"Opaque","data":{"a":"YQ=="}}"#, "").unwrap();
    let role = target(&s, "roles", "default", "", "");
    write::create(
        &s,
        &role,
        br#"{"metadata":{"name":"r"},"rules":[{"apiGroups":[""],"verbs":["get"],"resources":["pods"]}]}"#,
        "",
    )
    .unwrap();
    let event = target(&s, "events", "default", "", "");
    write::create(&s, &event, br#"{"metadata":{"name":"e"},"involvedObject":{"kind":"Pod","name":"p"},"reason":"R","message":"m","type":"Normal"}"#, "").unwrap();

    let first = body(&read::list(&s, &target(&s, "configmaps", "default", "", "limit=2")).unwrap());
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let queries = [
        String::new(),
        "labelSelector=n%20in%20(1,3,4)".into(),
        "fieldSelector=metadata.name%3Dc3".into(),
        "limit=2".into(),
        format!("limit=2&continue={token}"),
        format!("resourceVersion={rv_before_update}&resourceVersionMatch=Exact"),
        "resourceVersion=0".into(),
    ];
    let mut checked = 0;
    for (group, resource, ns) in [
        ("", "configmaps", "default"),
        ("", "configmaps", ""),
        ("", "secrets", "default"),
        ("", "namespaces", ""),
        ("rbac.authorization.k8s.io", "roles", "default"),
        ("", "events", "default"),
        // another version's view of core events: served from the tree
        ("events.k8s.io", "events", "default"),
    ] {
        for q in &queries {
            if q.contains("continue") && resource != "configmaps" {
                continue;
            }
            let t = target_in(&s, group, resource, ns, "", q);
            let fast = read::list(&s, &t).unwrap();
            assert_eq!(fast.body, list_from_trees(&s, &t).body, "{group}/{resource} in {ns:?} ?{q}");
            checked += body(&fast)["items"].as_array().unwrap().len();
        }
        // a get of each object, and the Table and metadata-only forms, which keep their own paths
        let all = read::list_items(&s, &target_in(&s, group, resource, ns, "", "")).unwrap();
        for o in &all.items {
            let name = o.value["metadata"]["name"].as_str().unwrap();
            let ns = o.value["metadata"]["namespace"].as_str().unwrap_or_default();
            let t = target_in(&s, group, resource, ns, name, "");
            let tree = super::object::reply_object(&s, &t, 200, &o.value);
            assert_eq!(read::get(&s, &t).unwrap().body, tree.body, "{group}/{resource} {name}");
        }
        let mut t = target_in(&s, group, resource, ns, "", "");
        t.table = true;
        assert_eq!(body(&read::list(&s, &t).unwrap())["kind"], "Table");
        t.table = false;
        t.partial = true;
        assert_eq!(body(&read::list(&s, &t).unwrap())["kind"], "PartialObjectMetadataList");
    }
    assert!(checked > 40, "{checked}");

    // the bytes are the ones kept at write time: each served as stored object (and only those)
    // is written from them, not serialized again
    let tamper = |group: &str, resource: &str| {
        let t = target_in(&s, group, resource, "default", "", "");
        let mut page = read::list_items(&s, &t).unwrap();
        assert!(page.items.iter().all(|o| o.raw.is_some()), "a current list has every object's bytes");
        for o in &mut page.items {
            o.raw = Some(bytes::Bytes::from_static(b"{\"stored\":\"bytes\"}"));
        }
        let r = super::list::reply_list(&s, &t, page.items.into_iter().map(Into::into).collect(), json!({}));
        String::from_utf8(r.body.to_vec()).unwrap()
    };
    let core = tamper("", "events");
    assert!(core.contains(r#""items":[{"stored":"bytes"}]"#), "{core}");
    let v1 = tamper("events.k8s.io", "events");
    assert!(!v1.contains("stored") && v1.contains(r#""note":"m""#), "{v1}");

    // create and update replies are the stored bytes, and equal the tree's
    let t = target(&s, "configmaps", "default", "", "");
    let created = write::create(&s, &t, br#"{"metadata":{"name":"new"},"data":{"x":"\u00e9"}}"#, "").unwrap();
    let stored = s.storage.get("/registry/configmaps/default/new").unwrap();
    assert_eq!(created.body, stored.raw.clone().unwrap());
    assert_eq!(created.body, super::object::reply_object(&s, &t, 201, &stored.value).body);
    let t = target(&s, "configmaps", "default", "new", "");
    let updated = write::update(&s, &t, br#"{"metadata":{"name":"new"},"data":{"x":"y"}}"#).unwrap();
    let stored = s.storage.get("/registry/configmaps/default/new").unwrap();
    assert_eq!(body(&updated)["data"]["x"], "y");
    assert_eq!(updated.body, super::object::reply_object(&s, &t, 200, &stored.value).body);
    // a dry run has no stored bytes: serialized from its tree
    let t = target(&s, "configmaps", "default", "new", "dryRun=All");
    let dry = write::update(&s, &t, br#"{"metadata":{"name":"new"},"data":{"x":"z"}}"#).unwrap();
    assert_eq!(body(&dry)["data"]["x"], "z");
    // and the bytes read back from disk at reopen are the same
    let dir = _d.path().to_path_buf();
    let before = read::list(&s, &target(&s, "configmaps", "", "", "")).unwrap().body;
    drop(s);
    // the store's threads may hold the database a moment after it is dropped
    let storage = (0..100)
        .find_map(|_| {
            RedbStorage::open(&dir, 1000).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            })
        })
        .map(Arc::new)
        .unwrap();
    let s = Store::with_storage(resources::defaults(), storage).unwrap();
    assert_eq!(read::list(&s, &target(&s, "configmaps", "", "", "")).unwrap().body, before);
}

#[test]
fn custom_objects_served_from_stored_bytes_byte_for_byte() {
    let (_d, s) = store();
    let crd = |default: Option<&str>| {
        let mut mode = json!({"type": "string"});
        if let Some(d) = default {
            mode["default"] = json!(d);
        }
        let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"size": {"type": "integer"}, "mode": mode}}}}});
        json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": schema},
                         {"name": "v1beta1", "served": true, "storage": false, "schema": schema}]}})
    };
    s.set_custom(crate::store::crd::served_defs(&[crd(None)]));
    let def = s.served_def("example.com", "v1", "widgets").unwrap().into_owned();
    let beta = s.served_def("example.com", "v1beta1", "widgets").unwrap().into_owned();
    for (n, size) in [("a", 1), ("b", 2), ("c", 3)] {
        let body =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": n}, "spec": {"size": size}});
        assert_eq!(write::create(&s, &t(&s, &def, "", ""), body.to_string().as_bytes(), "").unwrap().code, 201);
    }
    fn t<'a>(s: &'a Store, def: &'a ResourceDef, name: &str, q: &str) -> Target<'a> {
        Target { def, name: name.into(), ..target_in(s, "", "configmaps", "default", "", q) }
    }
    // every list and get of `def` the same from bytes as from trees; the plain list
    fn set(s: &Store, def: &ResourceDef) -> Value {
        for q in ["", "limit=2", "labelSelector=x!%3Dy"] {
            let l = t(s, def, "", q);
            assert_eq!(read::list(s, &l).unwrap().body, list_from_trees(s, &l).body, "{} ?{q}", def.version);
        }
        for name in ["a", "b", "c"] {
            let get = t(s, def, name, "");
            let o = s.storage.get(&def.key("default", name)).unwrap();
            assert_eq!(read::get(s, &get).unwrap().body, super::object::reply_object(s, &get, 200, &o.value).body);
        }
        body(&read::list(s, &t(s, def, "", "")).unwrap())
    }
    // as stored: written from the bytes (a stored object's bytes stand in for it in the list)
    let listed = set(&s, &def);
    assert_eq!(listed["items"][0]["apiVersion"], "example.com/v1");
    let page = read::list_items(&s, &t(&s, &def, "", "")).unwrap();
    let mut items = page.items.clone();
    items[0].raw = Some(bytes::Bytes::from_static(br#"{"stored":"bytes"}"#));
    let r =
        super::list::reply_list(&s, &t(&s, &def, "", ""), items.iter().cloned().map(Into::into).collect(), json!({}));
    assert!(String::from_utf8_lossy(&r.body).contains(r#""items":[{"stored":"bytes"},"#));
    // another version, and a default added to the schema later: served from the tree, the same as before
    assert_eq!(set(&s, &beta)["items"][0]["apiVersion"], "example.com/v1beta1");
    s.set_custom(crate::store::crd::served_defs(&[crd(Some("fast"))]));
    let def = s.served_def("example.com", "v1", "widgets").unwrap().into_owned();
    assert_eq!(set(&s, &def)["items"][0]["spec"]["mode"], "fast");
    let r =
        super::list::reply_list(&s, &t(&s, &def, "", ""), items.iter().cloned().map(Into::into).collect(), json!({}));
    assert!(!String::from_utf8_lossy(&r.body).contains("stored"));
}

/// Items as a list is given them: each object with its stored bytes (`raw`) or without.
fn items_of(objs: &[Value], raw: bool) -> Vec<super::list::Item> {
    let raw_of = |o: &Value| raw.then(|| crate::store::backend::raw_json(o));
    objs.iter().map(|o| super::list::Item { value: Arc::new(o.clone()), raw: raw_of(o) }).collect()
}

/// A list as serializing its whole tree writes it (kind, apiVersion, metadata, items).
fn whole_list(kind: &str, api_version: &str, metadata: &Value, items: &[Value]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct L<'a> {
        kind: &'a str,
        #[serde(rename = "apiVersion")]
        api_version: &'a str,
        metadata: &'a Value,
        items: &'a [Value],
    }
    serde_json::to_vec(&L { kind, api_version, metadata, items }).unwrap()
}

#[test]
fn tables_and_metadata_lists_written_from_bytes_as_from_trees() {
    let (_d, s) = store();
    // old objects: their ages do not move while the test runs
    let cm = |i: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": format!("\u{e9}\"{i}\"\n")},
               "metadata": {"name": format!("c{i}"), "namespace": "default", "creationTimestamp": "2020-01-01T00:00:00Z",
                            "labels": {"x": "y"}, "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {}}}]}})
    };
    let objs: Vec<Value> = (0..5).map(cm).chain([json!({"apiVersion": "v1", "kind": "ConfigMap"})]).collect();
    let meta = json!({"resourceVersion": "7"});
    for include in ["", "includeObject=None", "includeObject=Metadata", "includeObject=Object"] {
        let mut t = target(&s, "configmaps", "default", "", include);
        t.table = true;
        let want = crate::store::table::table_of(
            t.def,
            &objs,
            meta.clone(),
            crate::store::table::IncludeObject::parse(t.query.include_object.as_deref()),
        );
        for raw in [true, false] {
            let r = super::list::reply_list(&s, &t, items_of(&objs, raw), meta.clone());
            assert_eq!(r.body, serde_json::to_vec(&want).unwrap(), "Table ?{include} raw {raw}");
        }
    }
    let mut t = target(&s, "configmaps", "default", "", "");
    t.partial = true;
    let partials: Vec<Value> = objs.iter().map(super::object::partial).collect();
    let want = whole_list("PartialObjectMetadataList", "meta.k8s.io/v1", &meta, &partials);
    for raw in [true, false] {
        assert_eq!(super::list::reply_list(&s, &t, items_of(&objs, raw), meta.clone()).body, want);
    }
}

#[test]
fn a_large_list_is_streamed_with_the_bytes_of_the_whole() {
    let (_d, s) = store();
    let objs: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v".repeat(i % 300)},
                   "metadata": {"name": format!("c{i:05}"), "namespace": "default", "creationTimestamp": "2020-01-01T00:00:00Z"}})
        })
        .collect();
    let meta = json!({"resourceVersion": "9", "continue": "x"});
    let t = target(&s, "configmaps", "default", "", "");
    for raw in [true, false] {
        let r = super::list::reply_list(&s, &t, items_of(&objs, raw), meta.clone());
        assert!(r.rest.is_some() && r.body.len() >= super::list::CHUNK, "streamed in chunks");
        assert!(r.body.len() < 2 * super::list::CHUNK);
        assert_eq!(r.into_body(), whole_list("ConfigMapList", "v1", &meta, &objs), "raw {raw}");
    }
    // a Table of them too
    let mut t = target(&s, "configmaps", "default", "", "");
    t.table = true;
    let r = super::list::reply_list(&s, &t, items_of(&objs, true), meta.clone());
    assert!(r.rest.is_some());
    let want = crate::store::table::table_of(t.def, &objs, meta.clone(), crate::store::table::IncludeObject::Metadata);
    assert_eq!(r.into_body(), serde_json::to_vec(&want).unwrap());
    // a small list goes whole
    let t = target(&s, "configmaps", "default", "", "");
    let r = super::list::reply_list(&s, &t, items_of(&objs[..3], true), meta.clone());
    assert!(r.rest.is_none());
    assert_eq!(r.body, whole_list("ConfigMapList", "v1", &meta, &objs[..3]));
}

#[test]
fn a_body_is_read_by_its_content_type_alone() {
    use super::BodyFormat::{self, *};
    for (ct, want) in [
        ("", Json),
        ("application/json", Json),
        ("application/json; charset=utf-8", Json),
        ("application/merge-patch+json", Json),
        ("application/yaml", Yaml),
        ("application/apply-patch+yaml", Yaml),
        ("application/vnd.kubernetes.protobuf", Protobuf),
        ("text/json", Unsupported),
        ("text/plain", Unsupported),
    ] {
        assert!(BodyFormat::of(ct) == want, "{ct}");
    }
    // refused for a type no decoder reads, whatever the body's shape (an array was a 400 before)
    let (_d, s) = store();
    for body in [&b"[1]"[..], b"{}"] {
        let t = Target { content_type: "text/json".into(), ..target(&s, "configmaps", "default", "", "") };
        assert_eq!(write::create(&s, &t, body, "").unwrap_err().code, 415);
    }
    let y = Target { content_type: "application/yaml".into(), ..target(&s, "configmaps", "default", "", "") };
    assert_eq!(write::create(&s, &y, b"[1]", "").unwrap_err().code, 400);
}

/// kube-aggregator's defaulting: an APIService's service port is 443 when absent or null.
#[test]
fn an_apiservice_service_port_defaults_to_443() {
    let (_d, s) = store();
    let t = target_in(&s, "apiregistration.k8s.io", "apiservices", "", "", "");
    for (name, service) in [
        ("v1.a.example", json!({"namespace": "ns", "name": "api"})),
        ("v1.b.example", json!({"namespace": "ns", "name": "api", "port": null})),
        ("v1.c.example", json!({"namespace": "ns", "name": "api", "port": 8443})),
    ] {
        let (group, _) = name.split_once('.').map(|(_, g)| (g, ())).unwrap();
        let obj = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
            "spec": {"group": group, "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 10,
                "service": service, "insecureSkipTLSVerify": true}});
        let o = body(&write::create(&s, &t, obj.to_string().as_bytes(), "").unwrap());
        let want = if name == "v1.c.example" { 8443 } else { 443 };
        assert_eq!(o["spec"]["service"]["port"], want, "{o}");
    }
}

/// kube's SimpleNameGenerator cuts a generateName to 58 characters, so the name fits a label:
/// a 62-character generateName makes a namespace, not a 422.
#[test]
fn a_long_generate_name_is_cut_to_fit() {
    let (_d, s) = store();
    let t = target(&s, "namespaces", "", "", "");
    let base = "n".repeat(62);
    let r = write::create(&s, &t, json!({"metadata": {"generateName": base}}).to_string().as_bytes(), "").unwrap();
    let name = body(&r)["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(name.len(), 63);
    assert!(name.starts_with(&"n".repeat(58)));
}

/// kube's ValidateObjectMetaUpdate: a client may not set a deletion's time or grace period
/// (a patch setting them was answered 200 and silently dropped).
#[test]
fn a_deletion_time_sent_by_a_client_is_immutable() {
    let (_d, s) = store();
    create(&s, "default", json!({"metadata": {"name": "live"}}));
    let merge = Target {
        content_type: "application/merge-patch+json".into(),
        ..target(&s, "configmaps", "default", "live", "")
    };
    let e = write::patch(&s, &merge, br#"{"metadata":{"deletionTimestamp":"2026-01-01T00:00:00Z"}}"#).unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("metadata.deletionTimestamp: Invalid value: \"2026-01-01T00:00:00Z\": field is immutable"),
        "{}",
        e.message
    );
    let e = write::patch(&s, &merge, br#"{"metadata":{"deletionGracePeriodSeconds":30}}"#).unwrap_err();
    assert!(
        e.message.contains("metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable"),
        "{}",
        e.message
    );
    // a change that leaves them alone is no change of them
    write::patch(&s, &merge, br#"{"data":{"k":"v"}}"#).unwrap();
    // a deleting object's time, sent back in another client's format while a finalizer is
    // removed, is kept (kube's BeforeUpdate): the Python client's +00:00, JS's .000Z
    create(&s, "default", json!({"metadata": {"name": "going", "finalizers": ["a/b", "c/d"]}}));
    let going = target(&s, "configmaps", "default", "going", "");
    let marked = body(&write::delete(&s, &going, b"").unwrap());
    let at = marked["metadata"]["deletionTimestamp"].as_str().unwrap().to_string();
    for (sent, left) in [(at.replace('Z', "+00:00"), json!(["c/d"])), (at.replace('Z', ".000Z"), json!([]))] {
        let mut obj =
            s.storage.get("/registry/configmaps/default/going").map(|o| (*o.value).clone()).unwrap_or_default();
        if obj.is_null() {
            break; // gone with its last finalizer
        }
        obj["metadata"]["deletionTimestamp"] = json!(sent);
        obj["metadata"]["finalizers"] = left;
        write::update(&s, &going, obj.to_string().as_bytes()).unwrap();
    }
    assert!(s.storage.get("/registry/configmaps/default/going").is_none(), "its last finalizer removed: gone");
}
