use super::controller::desired_status;
use super::*;

fn crd(plural: &str, kind: &str, created: &str) -> Value {
    json!({"metadata": {"name": format!("{plural}.example.com"), "creationTimestamp": created},
    "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": plural, "kind": kind, "shortNames": ["x"]},
        "versions": [
            {"name": "v1beta1", "served": true, "storage": false, "deprecated": true},
            {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.n"}},
             "schema": {"openAPIV3Schema": {"type": "object"}}},
            {"name": "v0", "served": false, "storage": false},
        ]}})
}

#[test]
fn served_versions_storage_first() {
    let defs = served_defs(&[crd("widgets", "Widget", "2026-01-01T00:00:00Z")]);
    let versions: Vec<&str> = defs.iter().map(|d| d.version.as_str()).collect();
    assert_eq!(versions, vec!["v1", "v1beta1"], "unserved v0 is not served");
    let v1 = &defs[0];
    assert_eq!((v1.kind.as_str(), v1.singular.as_str(), v1.namespaced), ("Widget", "widget", true));
    assert_eq!(v1.subresources, vec!["status", "scale"]);
    assert_eq!(v1.prefix(), "/registry/example.com/widgets/");
    let c = v1.custom.as_ref().unwrap();
    assert_eq!((c.storage_version.as_str(), c.list_kind.as_str()), ("v1", "WidgetList"));
    assert_eq!(
        defs[1].custom.as_ref().unwrap().deprecation.as_deref(),
        Some("example.com/v1beta1 Widget is deprecated")
    );
    let mut obj = json!({"apiVersion": "example.com/v1beta1", "kind": "Widget"});
    to_storage(&defs[1], &mut obj);
    assert_eq!(obj["apiVersion"], "example.com/v1", "stored at the storage version");
}

#[test]
fn the_first_to_claim_a_name_keeps_it() {
    let older = crd("widgets", "Widget", "2026-01-01T00:00:00Z");
    let newer = crd("gadgets", "Widget", "2026-01-02T00:00:00Z");
    let verdicts = names::accept(&[newer.clone(), older.clone()]);
    assert!(verdicts["widgets.example.com"].is_ok());
    // its singular (defaulted from the same kind) is the first name it wants that is taken
    assert_eq!(
        verdicts["gadgets.example.com"].as_ref().unwrap_err(),
        &("SingularConflict", "\"widget\" is already in use".to_string())
    );
    let served = served_defs(&[newer.clone(), older]);
    assert!(served.iter().all(|d| d.resource == "widgets"));
    let s = desired_status(&newer, &verdicts["gadgets.example.com"], "2026-01-02T00:00:01Z");
    let conds: Vec<(&str, &str, &str)> = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap(), c["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(conds, vec![("NamesAccepted", "False", "SingularConflict"), ("Established", "False", "NotAccepted")]);
    assert_eq!(s["storedVersions"], json!(["v1"]));
}

#[test]
fn transition_times_stay_while_a_condition_does() {
    let mut c = crd("widgets", "Widget", "2026-01-01T00:00:00Z");
    let ok = names::accept(std::slice::from_ref(&c))["widgets.example.com"].clone();
    c["status"] = desired_status(&c, &ok, "T1");
    let again = desired_status(&c, &ok, "T2");
    assert_eq!(again["conditions"][0]["lastTransitionTime"], "T1");
    c["metadata"]["deletionTimestamp"] = json!("T3");
    let deleting = desired_status(&c, &ok, "T3");
    assert_eq!(deleting["conditions"][2]["type"], "Terminating");
    assert_eq!(deleting["conditions"][2]["reason"], "InstanceDeletionInProgress");
}
