//! kube's APF bootstrap ensurer (registry/flowcontrol/ensurer, run by the
//! `priority-and-fairness-config-producer` post-start hook): the bootstrap FlowSchemas and
//! PriorityLevelConfigurations are stored objects, created when missing, at startup and
//! every minute after. A mandatory object's spec is always put back to kube's (the exempt
//! level keeps the admin's `spec.exempt`); a suggested one's only while its
//! `apf.kubernetes.io/autoupdate-spec` annotation says true (or, unset or not a boolean,
//! while the object is at generation 1, i.e. nobody changed its spec). The annotation is how
//! an admin keeps an edited suggested object: set it to "false". A stored object that is no
//! longer a bootstrap object but still says "true" was made by an older version: removed.

use super::types::AUTOUPDATE;
use super::{BOOTSTRAP, MANDATORY_LEVELS, MANDATORY_SCHEMAS};
use crate::store::Store;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Weak;
use std::time::Duration;

pub const GROUP: &str = "flowcontrol.apiserver.k8s.io";
/// kube's reconciliation period.
const PERIOD: Duration = Duration::from_secs(60);

/// What the ensurer does about one bootstrap object.
#[derive(Debug, PartialEq)]
pub enum Action {
    Create(Value),
    Update(Value),
    Keep,
}

/// The bootstrap objects as stored JSON, with the resource each belongs to (parsed once:
/// validation asks for them at every write of a mandatory object).
pub fn bootstrap_objects() -> Vec<(&'static str, Value)> {
    static PARSED: once_cell::sync::Lazy<Vec<(&'static str, Value)>> = once_cell::sync::Lazy::new(|| {
        serde_yaml::Deserializer::from_str(BOOTSTRAP)
            .filter_map(|d| serde_yaml::Value::deserialize(d).ok())
            .filter_map(|y| serde_json::to_value(y).ok())
            .filter(|v| v.is_object())
            .map(|v| {
                let resource = if v["kind"] == "FlowSchema" { "flowschemas" } else { "prioritylevelconfigurations" };
                (resource, v)
            })
            .collect()
    });
    PARSED.clone()
}

fn is_mandatory(resource: &str, name: &str) -> bool {
    if resource == "flowschemas" {
        MANDATORY_SCHEMAS.contains(&name)
    } else {
        MANDATORY_LEVELS.contains(&name)
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn autoupdate(stored: &Value) -> Option<bool> {
    stored["metadata"]["annotations"][AUTOUPDATE].as_str().and_then(parse_bool)
}

/// kube's `shouldUpdateSpec` for a suggested object.
fn should_update_spec(stored: &Value) -> bool {
    autoupdate(stored).unwrap_or_else(|| stored["metadata"]["generation"].as_i64() == Some(1))
}

/// kube's `getDanglingBootstrapObjectNames`: stored objects of `resource` that are no longer
/// bootstrap objects yet still say the config producer keeps them (autoupdate-spec true) —
/// objects an older version created, which it removes. Any other object is the admin's.
pub fn stale<'a>(resource: &str, stored: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    let boot: Vec<Value> = bootstrap_objects()
        .into_iter()
        .filter(|(r, _)| *r == resource)
        .map(|(_, v)| v["metadata"]["name"].clone())
        .collect();
    stored
        .into_iter()
        .filter(|v| !boot.contains(&v["metadata"]["name"]) && autoupdate(v) == Some(true))
        .filter_map(|v| v["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// What to do about bootstrap object `boot` of `resource`, given the stored one.
pub fn decide(resource: &str, boot: &Value, stored: Option<&Value>) -> Action {
    let name = boot["metadata"]["name"].as_str().unwrap_or_default();
    let Some(stored) = stored else {
        let mut obj = boot.clone();
        obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        obj["metadata"]["creationTimestamp"] = json!(crate::store::rest::now());
        obj["metadata"]["generation"] = json!(1);
        return Action::Create(obj);
    };
    let mandatory = is_mandatory(resource, name);
    if !mandatory && !should_update_spec(stored) {
        return Action::Keep;
    }
    let mut want = boot["spec"].clone();
    if resource == "prioritylevelconfigurations" && name == "exempt" {
        // kube lets the admin set the exempt level's shares and lendable percent
        if let Some(e) = stored["spec"].get("exempt").filter(|e| e.is_object()) {
            want["exempt"] = e.clone();
        }
    }
    let annotated = stored["metadata"]["annotations"][AUTOUPDATE].as_str() == Some("true");
    if stored["spec"] == want && (annotated || !mandatory) {
        return Action::Keep;
    }
    let mut next = stored.clone();
    if next["spec"] != want {
        next["spec"] = want;
        let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1);
        next["metadata"]["generation"] = json!(generation + 1);
    }
    if mandatory {
        if !next["metadata"]["annotations"].is_object() {
            next["metadata"]["annotations"] = json!({});
        }
        next["metadata"]["annotations"][AUTOUPDATE] = json!("true");
    }
    Action::Update(next)
}

/// One round: every bootstrap object created or reconciled in the store, then the stale
/// ones removed (kube's `RemoveAutoUpdateEnabledObjects`).
pub fn ensure(store: &Store) {
    ensure_bootstrap(store);
    for resource in ["flowschemas", "prioritylevelconfigurations"] {
        let Some(def) = store.def(GROUP, resource) else { continue };
        let Ok((items, _)) = store.storage.list(&def.prefix(), None) else { continue };
        let names = stale(resource, items.iter().map(|s| s.value.as_ref()));
        for item in items.iter().filter(|s| names.iter().any(|n| s.value["metadata"]["name"] == n.as_str())) {
            let name = item.value["metadata"]["name"].as_str().unwrap_or_default();
            // on the revision read: an object the admin just took over stays
            match store.delete(def, &def.key("", name), Some(item.rev)) {
                Ok(_) => {
                    tracing::info!(resource, name, "removed an auto-update APF object no longer in the bootstrap set")
                }
                Err(e) => {
                    tracing::debug!(resource, name, error = %e, "stale APF object not removed; retried in a minute")
                }
            }
        }
    }
}

fn ensure_bootstrap(store: &Store) {
    for (resource, boot) in bootstrap_objects() {
        let Some(def) = store.def(GROUP, resource) else { continue };
        let name = boot["metadata"]["name"].as_str().unwrap_or_default();
        let key = def.key("", name);
        let stored = store.storage.get(&key);
        let result = match decide(resource, &boot, stored.as_ref().map(|s| s.value.as_ref())) {
            Action::Create(obj) => store.create(def, &key, obj).map(drop),
            Action::Update(obj) => store.update(def, &key, obj, stored.map(|s| s.rev)).map(drop),
            Action::Keep => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(key, error = %e, "APF bootstrap object not written; retried in a minute");
        }
    }
}

/// Reconciles every minute on a thread of its own, until the store is gone.
pub fn start(store: Weak<Store>) {
    let spawned = std::thread::Builder::new().name("apf-ensurer".into()).spawn(move || loop {
        std::thread::sleep(PERIOD);
        let Some(store) = store.upgrade() else { return };
        ensure(&store);
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the APF bootstrap ensurer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(resource: &str, name: &str) -> Value {
        bootstrap_objects().into_iter().find(|(r, v)| *r == resource && v["metadata"]["name"] == name).unwrap().1
    }

    #[test]
    fn creates_missing_objects_and_keeps_kubes_spec() {
        let all = bootstrap_objects();
        assert_eq!(all.iter().filter(|(r, _)| *r == "flowschemas").count(), 13);
        assert_eq!(all.iter().filter(|(r, _)| *r == "prioritylevelconfigurations").count(), 8);
        let b = boot("flowschemas", "global-default");
        let Action::Create(obj) = decide("flowschemas", &b, None) else { panic!() };
        assert_eq!(obj["metadata"]["annotations"][AUTOUPDATE], "true");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj["metadata"]["uid"].is_string());
        assert_eq!(decide("flowschemas", &b, Some(&obj)), Action::Keep);
    }

    #[test]
    fn suggested_objects_follow_their_annotation_mandatory_ones_are_always_kubes() {
        let b = boot("prioritylevelconfigurations", "global-default");
        let Action::Create(mut edited) = decide("prioritylevelconfigurations", &b, None) else { panic!() };
        edited["spec"]["limited"]["nominalConcurrencyShares"] = json!(7);
        edited["metadata"]["generation"] = json!(2);
        // autoupdate "true": the spec goes back
        let Action::Update(back) = decide("prioritylevelconfigurations", &b, Some(&edited)) else { panic!() };
        assert_eq!(back["spec"], b["spec"]);
        assert_eq!(back["metadata"]["generation"], 3);
        // "false": the admin's spec stays
        edited["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert_eq!(decide("prioritylevelconfigurations", &b, Some(&edited)), Action::Keep);
        // unset: kept once edited (generation > 1), updated while still at generation 1
        edited["metadata"]["annotations"] = json!({});
        assert_eq!(decide("prioritylevelconfigurations", &b, Some(&edited)), Action::Keep);
        edited["metadata"]["generation"] = json!(1);
        assert!(matches!(decide("prioritylevelconfigurations", &b, Some(&edited)), Action::Update(_)));

        // mandatory: whatever the annotation says
        let c = boot("flowschemas", "catch-all");
        let Action::Create(mut fs) = decide("flowschemas", &c, None) else { panic!() };
        fs["spec"]["matchingPrecedence"] = json!(5000);
        fs["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        let Action::Update(back) = decide("flowschemas", &c, Some(&fs)) else { panic!() };
        assert_eq!(back["spec"]["matchingPrecedence"], 10000);
        assert_eq!(back["metadata"]["annotations"][AUTOUPDATE], "true");

        // the exempt level keeps the admin's shares
        let e = boot("prioritylevelconfigurations", "exempt");
        let Action::Create(mut pl) = decide("prioritylevelconfigurations", &e, None) else { panic!() };
        pl["spec"]["exempt"]["nominalConcurrencyShares"] = json!(10);
        assert_eq!(decide("prioritylevelconfigurations", &e, Some(&pl)), Action::Keep);
        pl["spec"]["type"] = json!("Limited");
        let Action::Update(back) = decide("prioritylevelconfigurations", &e, Some(&pl)) else { panic!() };
        assert_eq!(back["spec"]["type"], "Exempt");
        assert_eq!(back["spec"]["exempt"]["nominalConcurrencyShares"], 10);
    }

    #[test]
    fn stale_objects_are_those_kube_no_longer_suggests_and_still_auto_updates() {
        let with = |name: &str, auto: Option<&str>| {
            let mut v = json!({"metadata": {"name": name, "generation": 1}});
            if let Some(a) = auto {
                v["metadata"]["annotations"] = json!({AUTOUPDATE: a});
            }
            v
        };
        let stored = [
            with("global-default", Some("true")),
            with("old-suggested", Some("true")),
            with("old-capital", Some("True")),
            with("admins", Some("false")),
            with("unannotated", None),
            with("garbled", Some("yes")),
        ];
        assert_eq!(stale("flowschemas", &stored), ["old-suggested", "old-capital"]);
        // a level named like a schema is not a bootstrap level
        let schema_only = with("system-leader-election", Some("true"));
        assert!(stale("flowschemas", [&schema_only]).is_empty());
        assert_eq!(stale("prioritylevelconfigurations", [&schema_only]), ["system-leader-election"]);
        assert!(stale("prioritylevelconfigurations", &[with("workload-low", Some("true"))]).is_empty());
    }
}
