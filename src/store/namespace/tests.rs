//! Namespace deletion against a real redb store: the REST side marks, `sync` (one pass of
//! the deleter, called directly instead of waiting for its thread) empties and removes.

use super::{sync, Outcome};
use crate::filters::Reply;
use crate::store::rest::{write, Options, Target};
use crate::store::{redb::RedbStorage, resources, Store};
use serde_json::{json, Value};
use std::sync::Arc;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(RedbStorage::open(dir.path(), 1000).unwrap());
    let s = Store::with_storage(resources::defaults(), storage).unwrap();
    s.namespaces.stop();
    (dir, s)
}

fn target<'a>(s: &'a Store, resource: &str, ns: &str, name: &str) -> Target<'a> {
    Target {
        def: s.def("", resource).unwrap(),
        namespace: ns.into(),
        name: name.into(),
        subresource: String::new(),
        query: Options::default(),
        table: false,
        partial: false,
        output: Default::default(),
        content_type: "application/json".into(),
        user_agent: "test".into(),
        admit: None,
        create_right: None,
        warnings: Default::default(),
    }
}

fn body(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn ns(s: &Store, name: &str) -> Option<Value> {
    s.storage.get(&format!("/registry/namespaces/{name}")).map(|o| (*o.value).clone())
}

fn setup(s: &Store, cms: &[Value]) {
    write::create(s, &target(s, "namespaces", "", ""), br#"{"metadata":{"name":"team"}}"#, "").unwrap();
    for cm in cms {
        write::create(s, &target(s, "configmaps", "team", ""), cm.to_string().as_bytes(), "").unwrap();
    }
}

fn condition<'a>(ns: &'a Value, kind: &str) -> &'a Value {
    ns["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap()
}

#[test]
fn delete_marks_then_the_deleter_empties_and_removes() {
    let (_d, s) = store();
    setup(&s, &[json!({"metadata": {"name": "a"}}), json!({"metadata": {"name": "b"}})]);
    let r = write::delete(&s, &target(&s, "namespaces", "", "team"), b"").unwrap();
    let marked = body(&r);
    assert_eq!((r.code, marked["status"]["phase"].as_str()), (200, Some("Terminating")));
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["spec"]["finalizers"], json!(["kubernetes"]));
    // content stays until the deleter runs; new content is refused
    assert!(s.storage.get("/registry/configmaps/team/a").is_some());
    let e = write::create(&s, &target(&s, "configmaps", "team", ""), br#"{"metadata":{"name":"z"}}"#, "").unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (403, "configmaps \"z\" is forbidden: unable to create new content in namespace team because it is being terminated")
    );
    let cause = &e.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.message.as_str(), cause.field.as_str()),
        ("NamespaceTerminating", "namespace team is being terminated", "metadata.namespace")
    );
    // a second delete answers the namespace, still there
    let again = write::delete(&s, &target(&s, "namespaces", "", "team"), b"").unwrap();
    assert_eq!(body(&again)["metadata"]["deletionTimestamp"], marked["metadata"]["deletionTimestamp"]);

    // the name stays taken until it is gone
    let e = write::create(&s, &target(&s, "namespaces", "", ""), br#"{"metadata":{"name":"team"}}"#, "").unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (409, "object is being deleted: namespaces \"team\" already exists"));

    assert_eq!(sync(&s, "team"), Outcome::Done);
    assert!(s.storage.get("/registry/configmaps/team/a").is_none());
    assert!(ns(&s, "team").is_none(), "empty and finalized: gone");
    assert_eq!(sync(&s, "team"), Outcome::Done, "idempotent once gone");
}

#[test]
fn finalizers_on_content_hold_the_namespace_with_kubes_conditions() {
    let (_d, s) = store();
    setup(&s, &[json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})]);
    write::delete(&s, &target(&s, "namespaces", "", "team"), b"").unwrap();
    assert!(matches!(sync(&s, "team"), Outcome::Retry(_)));
    let held = ns(&s, "team").expect("held");
    assert_eq!(held["spec"]["finalizers"], json!(["kubernetes"]));
    let c = condition(&held, "NamespaceContentRemaining");
    assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("True"), Some("SomeResourcesRemain")));
    assert_eq!(c["message"], "Some resources are remaining: configmaps. has 1 resource instances");
    let c = condition(&held, "NamespaceFinalizersRemaining");
    assert_eq!(
        c["message"],
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    assert_eq!(condition(&held, "NamespaceDeletionContentFailure")["status"], "False");
    let cm = s.storage.get("/registry/configmaps/team/held").unwrap();
    assert!(cm.value["metadata"]["deletionTimestamp"].is_string(), "marked, not removed");
    let rev = s.storage.get("/registry/namespaces/team").unwrap().rev;
    assert!(matches!(sync(&s, "team"), Outcome::Retry(_)));
    assert_eq!(s.storage.get("/registry/namespaces/team").unwrap().rev, rev, "no change, no write");

    // the last finalizer goes: the object, then the namespace
    let t = Target { content_type: "application/json-patch+json".into(), ..target(&s, "configmaps", "team", "held") };
    write::patch(&s, &t, br#"[{"op":"remove","path":"/metadata/finalizers"}]"#).unwrap();
    assert!(s.storage.get("/registry/configmaps/team/held").is_none());
    assert_eq!(sync(&s, "team"), Outcome::Done);
    assert!(ns(&s, "team").is_none());
}

#[test]
fn spec_finalizers_change_only_through_finalize() {
    let (_d, s) = store();
    setup(&s, &[]);
    let mut t = target(&s, "namespaces", "", "team");
    // the object and its status keep spec.finalizers
    let r = write::update(&s, &t, br#"{"metadata":{"name":"team"},"spec":{"finalizers":[]}}"#).unwrap();
    assert_eq!(body(&r)["spec"]["finalizers"], json!(["kubernetes"]));
    t.subresource = "finalize".into();
    let r =
        write::update(&s, &t, br#"{"metadata":{"name":"team"},"spec":{"finalizers":["kubernetes","example.com/x"]}}"#)
            .unwrap();
    assert_eq!(body(&r)["spec"]["finalizers"], json!(["kubernetes", "example.com/x"]));

    // the deleter drops only its own finalizer; the other one holds the namespace
    write::delete(&s, &target(&s, "namespaces", "", "team"), b"").unwrap();
    assert_eq!(sync(&s, "team"), Outcome::Done);
    assert_eq!(ns(&s, "team").unwrap()["spec"]["finalizers"], json!(["example.com/x"]));
    let again = write::delete(&s, &target(&s, "namespaces", "", "team"), b"").unwrap();
    assert_eq!(body(&again)["metadata"]["name"], "team");
    assert!(ns(&s, "team").is_some());
    // finalizing the last one removes it at once (kube's ShouldDeleteNamespaceDuringUpdate)
    write::update(&s, &t, br#"{"metadata":{"name":"team"},"spec":{"finalizers":[]}}"#).unwrap();
    assert!(ns(&s, "team").is_none());
}

#[test]
fn no_deletecollection_and_dry_run_changes_nothing() {
    let (_d, s) = store();
    setup(&s, &[]);
    let e = write::delete_collection(&s, &target(&s, "namespaces", "", ""), b"").unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (405, "MethodNotAllowed"));
    assert!(ns(&s, "team").is_some());
    let t = Target {
        query: Options::decode(&crate::request_info::query::Query::parse("dryRun=All")).unwrap(),
        ..target(&s, "namespaces", "", "team")
    };
    let r = write::delete(&s, &t, b"").unwrap();
    assert_eq!(body(&r)["status"]["phase"], "Terminating");
    assert_eq!(ns(&s, "team").unwrap()["status"]["phase"], "Active");
    let ns_def = s.def("", "namespaces").unwrap();
    let verbs = &ns_def.api_resources()[0].verbs;
    assert!(!verbs.contains(&"deletecollection".to_string()), "{verbs:?}");
}

#[test]
fn odd_specs_and_statuses_do_not_stop_the_deleter() {
    let (_d, s) = store();
    setup(&s, &[]);
    let key = "/registry/namespaces/team";
    let mut odd = ns(&s, "team").unwrap();
    odd["spec"] = json!("weird");
    odd["status"] = json!(7);
    let rev = s.storage.get(key).unwrap().rev;
    s.storage.update(key, odd, Some(rev)).unwrap();
    let r = write::delete(&s, &target(&s, "namespaces", "", "team"), b"").unwrap();
    assert_eq!(body(&r)["status"]["phase"], "Terminating");
    assert_eq!(sync(&s, "team"), Outcome::Done);
    assert!(ns(&s, "team").is_none());
}
