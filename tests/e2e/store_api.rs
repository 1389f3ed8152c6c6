//! The store over HTTP: watch streams (selectors, bookmarks, timeoutSeconds, 410 Expired),
//! Table output, Status errors, and the `etcd` health check.

use crate::common::{watch_events as events, Frontdoor};
use serde_json::{json, Value};

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"a": "1"}})
}

#[test]
fn watch_semantics_over_http() {
    let fd = Frontdoor::start(&["--storage-event-window", "5"]);
    let c = fd.admin_client();
    let base = fd.url("/api/v1/namespaces/default/configmaps");
    let r = c.post(&base).json(&cm("a", json!({"app": "y"}))).send().unwrap();
    assert_eq!(r.status(), 201);
    let rv: String = r.json::<Value>().unwrap()["metadata"]["resourceVersion"].as_str().unwrap().into();

    // a label-selected watch from rv: `a` moving into the selection is ADDED, out of it DELETED
    let watch = c
        .get(format!(
            "{base}?watch=true&labelSelector=app%3Dx&resourceVersion={rv}&timeoutSeconds=2&allowWatchBookmarks=true"
        ))
        .send()
        .unwrap();
    assert_eq!(watch.status(), 200);
    c.patch(format!("{base}/a"))
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"app":"x"}}}"#)
        .send()
        .unwrap();
    c.patch(format!("{base}/a"))
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"data":{"a":"2"}}"#)
        .send()
        .unwrap();
    c.patch(format!("{base}/a"))
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"app":"z"}}}"#)
        .send()
        .unwrap();
    c.post(&base).json(&cm("other", json!({"app": "y"}))).send().unwrap();
    let evs = events(watch);
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["ADDED", "MODIFIED", "DELETED", "BOOKMARK"], "{evs:?}");
    assert_eq!(evs[1]["object"]["data"]["a"], "2");
    let last: u64 = evs[3]["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(last >= rv.parse::<u64>().unwrap() + 4, "bookmark at {last}");

    // a compacted resourceVersion: an ERROR event with a 410 Expired Status
    for i in 0..10 {
        c.post(&base).json(&cm(&format!("fill-{i}"), json!({}))).send().unwrap();
    }
    let evs = events(c.get(format!("{base}?watch=1&resourceVersion={rv}")).send().unwrap());
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!((evs[0]["object"]["code"].as_u64(), evs[0]["object"]["reason"].as_str()), (Some(410), Some("Expired")));
    assert!(evs[0]["object"]["message"].as_str().unwrap().starts_with("too old resource version"));
    // a list at a compacted revision
    let r = c.get(format!("{base}?resourceVersion={rv}&resourceVersionMatch=Exact")).send().unwrap();
    assert_eq!(r.status(), 410);

    // a watch without resourceVersion starts with the current objects as ADDED
    let evs =
        events(c.get(format!("{base}?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dother")).send().unwrap());
    assert_eq!(evs.len(), 1);
    assert_eq!(
        (evs[0]["type"].as_str(), evs[0]["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("other"))
    );
}

#[test]
fn tables_errors_and_health() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let t: Value = c.get(fd.url("/api/v1/namespaces")).header("Accept", table_accept).send().unwrap().json().unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> =
        t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, vec!["Name", "Status", "Age"]);
    assert!(t["rows"].as_array().unwrap().iter().any(|r| r["cells"][0] == "kube-system" && r["cells"][1] == "Active"));

    let r = c.get(fd.url("/api/v1/namespaces/default/configmaps/missing")).send().unwrap();
    assert_eq!(r.status(), 404);
    let s: Value = r.json().unwrap();
    assert_eq!(
        (s["kind"].as_str(), s["reason"].as_str(), s["message"].as_str()),
        (Some("Status"), Some("NotFound"), Some("configmaps \"missing\" not found"))
    );
    let r = c
        .patch(fd.url("/api/v1/namespaces/default/configmaps/missing"))
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);

    let body = c.get(fd.url("/readyz?verbose")).send().unwrap().text().unwrap();
    assert!(body.contains("[+]etcd ok"), "{body}");
    assert_eq!(c.get(fd.url("/healthz/etcd")).send().unwrap().text().unwrap(), "ok");
}
