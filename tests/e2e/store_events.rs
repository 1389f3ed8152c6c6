//! Events as kube serves them: the field selectors of core/v1 events
//! (`involvedObject.*`, `reason`, `type`, `source`, `reportingComponent`), which
//! `kubectl events --for` uses.

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
