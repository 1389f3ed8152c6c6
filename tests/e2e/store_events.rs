//! Events as kube serves them: the field selectors of core/v1 events
//! (`involvedObject.*`, `reason`, `type`, `source`, `reportingComponent`), which
//! `kubectl events --for` uses; `events.k8s.io/v1` Events, the same objects with kube's field
//! conversion (regarding/involvedObject, note/message, ...).

use crate::common::Frontdoor;
use serde_json::{json, Value};

fn event(
    name: &str,
    kind: &str,
    api_version: &str,
    object: &str,
    reason: &str,
    source: Value,
    controller: &str,
) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": kind, "apiVersion": api_version, "name": object, "namespace": "default",
                           "fieldPath": "spec.containers{app}", "resourceVersion": "7", "uid": format!("uid-{object}")},
        "reason": reason, "message": format!("{reason} {object}"), "type": "Normal",
        "source": source, "reportingComponent": controller, "reportingInstance": "x",
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1,
    })
}

#[test]
fn kubectl_events_for_an_object() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let url = fd.url("/api/v1/namespaces/default/events");
    for ev in [
        event("e1", "ConfigMap", "v1", "settings", "Configured", json!({"component": "tester"}), ""),
        event("e2", "Secret", "v1", "settings", "Rotated", json!({}), "example.com/rotator"),
        event("e3", "ConfigMap", "v1", "other", "Configured", json!({"component": "tester"}), ""),
        event("e4", "Widget", "example.com/v1", "settings", "Spun", json!({}), "example.com/widgets"),
    ] {
        assert_eq!(c.post(&url).json(&ev).send().unwrap().status(), 201);
    }
    let out = fd.kubectl_ok(&["events", "--for", "configmap/settings"]);
    assert!(out.contains("Configured") && out.contains("settings"), "{out}");
    assert!(!out.contains("Rotated") && !out.contains("other") && !out.contains("Spun"), "{out}");
    let out = fd.kubectl_ok(&["events", "--for", "secret/settings"]);
    assert!(out.contains("Rotated") && !out.contains("Configured"), "{out}");

    let names = |selector: &str| -> Vec<String> {
        let r = c.get(&url).query(&[("fieldSelector", selector)]).send().unwrap();
        assert_eq!(r.status(), 200, "{selector}");
        let list: Value = r.json().unwrap();
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names("involvedObject.apiVersion=example.com/v1"), ["e4"]);
    assert_eq!(names("involvedObject.fieldPath=spec.containers{app},involvedObject.name=other"), ["e3"]);
    assert_eq!(names("involvedObject.resourceVersion=7,reason=Rotated"), ["e2"]);
    assert_eq!(names("involvedObject.uid=uid-other"), ["e3"]);
    // source is the source component, else the reporting controller
    assert_eq!(names("source=tester"), ["e1", "e3"]);
    assert_eq!(names("source=example.com/rotator"), ["e2"]);
    assert_eq!(names("reportingComponent=example.com/widgets"), ["e4"]);
    let r = c.get(&url).query(&[("fieldSelector", "involvedObject.color=red")]).send().unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn events_k8s_io_is_the_same_storage() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let v1 = fd.url("/apis/events.k8s.io/v1/namespaces/default/events");
    let core = fd.url("/api/v1/namespaces/default/events");
    let r = c
        .post(&v1)
        .json(&json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "new"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1", "action": "Sync", "reason": "Synced", "type": "Normal",
            "regarding": {"kind": "ConfigMap", "apiVersion": "v1", "name": "settings", "namespace": "default"},
            "note": "synced settings",
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().unwrap();
    assert_eq!(
        (created["apiVersion"].as_str(), created["note"].as_str()),
        (Some("events.k8s.io/v1"), Some("synced settings"))
    );
    // the same object through core/v1, in core's field names
    let as_core: Value = c.get(format!("{core}/new")).send().unwrap().json().unwrap();
    assert_eq!(as_core["apiVersion"], "v1");
    assert_eq!(as_core["involvedObject"]["name"], "settings");
    assert_eq!(
        (as_core["message"].as_str(), as_core["reportingComponent"].as_str()),
        (Some("synced settings"), Some("example.com/ctl"))
    );
    assert!(as_core.get("regarding").is_none() && as_core.get("note").is_none());
    // a core event listed through events.k8s.io; kubectl events --for finds the new one
    let old = event("old", "ConfigMap", "v1", "settings", "Configured", json!({"component": "tester"}), "");
    assert_eq!(c.post(&core).json(&old).send().unwrap().status(), 201);
    let list: Value = c.get(&v1).send().unwrap().json().unwrap();
    assert_eq!(list["kind"], "EventList");
    let old = list["items"].as_array().unwrap().iter().find(|i| i["metadata"]["name"] == "old").unwrap();
    assert_eq!(
        (old["regarding"]["name"].as_str(), old["deprecatedSource"]["component"].as_str()),
        (Some("settings"), Some("tester"))
    );
    assert_eq!(old["note"], "Configured settings");
    let out = fd.kubectl_ok(&["events", "--for", "configmap/settings"]);
    assert!(out.contains("Synced") && out.contains("Configured"), "{out}");
    // events.k8s.io's own field labels, as kube maps them to core's
    let names = |selector: &str| -> Vec<String> {
        let list: Value = c.get(&v1).query(&[("fieldSelector", selector)]).send().unwrap().json().unwrap();
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names("regarding.name=settings,reportingController=example.com/ctl"), ["new"]);
    assert_eq!(names("regarding.kind=ConfigMap,reason=Configured"), ["old"]);
    let r = c.get(&v1).query(&[("fieldSelector", "involvedObject.name=settings")]).send().unwrap();
    assert_eq!(r.status(), 400, "core's labels are not events.k8s.io's");
    let names = fd.kubectl_ok(&["get", "events.events.k8s.io", "-o", "name"]);
    assert!(names.contains("event.events.k8s.io/new") && names.contains("event.events.k8s.io/old"), "{names}");
    // a patch through events.k8s.io lands in the stored form
    let r = c
        .patch(format!("{v1}/new"))
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"note":"again"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let as_core: Value = c.get(format!("{core}/new")).send().unwrap().json().unwrap();
    assert_eq!(as_core["message"], "again");
    assert!(as_core.get("note").is_none(), "{as_core}");
    // deleted through one, gone from both
    assert_eq!(c.delete(format!("{v1}/old")).send().unwrap().status(), 200);
    assert_eq!(c.get(format!("{core}/old")).send().unwrap().status(), 404);
}

/// Watchers of core Events and of events.k8s.io's view of them share one storage, and so each
/// delivered change: each still gets the event in its own version.
#[test]
fn watchers_of_both_versions_get_their_own_form() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let core = fd.url("/api/v1/namespaces/default/events");
    let v1 = fd.url("/apis/events.k8s.io/v1/namespaces/default/events");
    let list: Value = c.get(&core).send().unwrap().json().unwrap();
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let watch = |url: &str| {
        let r = c.get(url).query(&[("watch", "1"), ("resourceVersion", &rv), ("timeoutSeconds", "3")]).send().unwrap();
        std::thread::spawn(move || crate::common::watch_events(r))
    };
    // several watchers of each version, so a shared rendering would reach the other side
    let watches = [watch(&core), watch(&v1), watch(&core), watch(&v1)];
    std::thread::sleep(std::time::Duration::from_millis(300));
    let e = event("w", "ConfigMap", "v1", "settings", "Configured", json!({"component": "tester"}), "");
    assert_eq!(c.post(&core).json(&e).send().unwrap().status(), 201);
    for (i, w) in watches.into_iter().enumerate() {
        let events = w.join().unwrap();
        let added: Vec<&Value> = events.iter().filter(|e| e["type"] == "ADDED").collect();
        assert_eq!(added.len(), 1, "{events:?}");
        let o = &added[0]["object"];
        if i % 2 == 0 {
            assert_eq!((o["apiVersion"].as_str(), o["message"].is_string()), (Some("v1"), true), "{o}");
        } else {
            assert_eq!((o["apiVersion"].as_str(), o["note"].is_string()), (Some("events.k8s.io/v1"), true), "{o}");
        }
    }
}
