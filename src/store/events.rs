//! events.k8s.io/v1 Events: the same objects as core/v1 Events, stored in the core form (as
//! kube stores both in one place) and converted field by field on the way in and out
//! (kube's pkg/apis/events/v1 conversion): regarding/involvedObject, note/message,
//! reportingController/reportingComponent, deprecatedSource/source,
//! deprecatedFirstTimestamp/firstTimestamp, deprecatedLastTimestamp/lastTimestamp,
//! deprecatedCount/count; the other fields are the same in both.

use super::resources::ResourceDef;
use serde_json::{Map, Value};

/// (events.k8s.io/v1 name, core/v1 name)
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// The field selector labels of events.k8s.io/v1 Events beyond metadata's (kube's
/// AddFieldLabelConversionsForEvent of events/v1), each the core label it stands for.
pub const FIELD_LABELS: [&str; 10] = [
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
];

/// An events.k8s.io/v1 field label as the core one it maps to.
pub fn core_field_label(label: &str) -> String {
    match label {
        "reportingController" => "reportingComponent".into(),
        l => match l.strip_prefix("regarding.") {
            Some(rest) => format!("involvedObject.{rest}"),
            None => l.into(),
        },
    }
}

/// Whether `def` is events.k8s.io's view of the core events.
pub fn is_events_v1(def: &ResourceDef) -> bool {
    def.group == "events.k8s.io" && def.resource == "events"
}

/// `obj` with its top-level fields renamed from the `from` side of RENAMED to the other
/// (`to_v1`: core names to events.k8s.io names).
fn rename(obj: &Value, to_v1: bool) -> Value {
    let Some(m) = obj.as_object() else { return obj.clone() };
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = RENAMED.iter().find_map(|(v1, core)| match to_v1 {
            true if core == k => Some(*v1),
            false if v1 == k => Some(*core),
            _ => None,
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    Value::Object(out)
}

/// A stored (core/v1) Event as events.k8s.io/v1 serves it.
pub fn to_events_v1(core: &Value) -> Value {
    let mut v = rename(core, true);
    v["apiVersion"] = Value::from("events.k8s.io/v1");
    v
}

/// An events.k8s.io/v1 Event in the core/v1 form it is stored in.
pub fn to_core(v1: &Value) -> Value {
    let mut v = rename(v1, false);
    v["apiVersion"] = Value::from("v1");
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "m", "reason": "r",
            "reportingComponent": "c", "source": {"component": "c"}, "count": 2});
        let v1 = to_events_v1(&core);
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!((v1["note"].as_str(), v1["deprecatedCount"].as_i64()), (Some("m"), Some(2)));
        assert_eq!(v1["reportingController"], "c");
        assert!(v1.get("message").is_none() && v1.get("involvedObject").is_none());
        assert_eq!(to_core(&v1), core);
    }
}
