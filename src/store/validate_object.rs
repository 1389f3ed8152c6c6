//! kube's validation of an object about to be stored, with its texts and field paths:
//! ObjectMeta (labels, annotations, finalizers, ownerReferences), ConfigMap and Secret data
//! (keys, the 1 MiB limit, immutability, a Secret's type and the keys it requires), a
//! Namespace's finalizers, APF's FlowSchemas and PriorityLevelConfigurations, and the schema's
//! required fields below the root (so a typed client can decode whatever is stored). Name rules
//! are validation.rs's.

use super::resources::ResourceDef;
use super::schema;
use super::validation::{config_key, label_value, qualified_name};
use crate::api::field::{self, forbidden, quote, too_long};
use crate::api::status::StatusCause;
use base64::Engine;
use serde_json::Value;

/// kube's limit on the total size of an object's annotations.
pub const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;
/// kube's limit on a ConfigMap's or Secret's data (`MaxSecretSize`).
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

fn invalid(path: &str, value: &str, msg: &str) -> StatusCause {
    field::invalid(path, &quote(value), msg)
}

fn required(path: &str) -> StatusCause {
    field::required(path, "")
}

fn strings(v: &Value) -> impl Iterator<Item = (&String, &str)> {
    v.as_object().into_iter().flatten().map(|(k, v)| (k, v.as_str().unwrap_or("")))
}

/// ObjectMeta's checks (kube's `ValidateObjectMeta` less the name, checked before).
fn object_meta(meta: &Value, out: &mut Vec<StatusCause>) {
    for (k, v) in strings(&meta["labels"]) {
        out.extend(qualified_name(k).iter().map(|m| invalid("metadata.labels", k, m)));
        out.extend(label_value(v).iter().map(|m| invalid("metadata.labels", v, m)));
    }
    let mut total = 0;
    for (k, v) in strings(&meta["annotations"]) {
        out.extend(qualified_name(&k.to_ascii_lowercase()).iter().map(|m| invalid("metadata.annotations", k, m)));
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE {
        out.push(too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE));
    }
    let finalizers: Vec<&str> = meta["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for f in &finalizers {
        out.extend(qualified_name(f).iter().map(|m| invalid("metadata.finalizers", f, m)));
    }
    if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
        let shown = format!("[]string{{{}}}", finalizers.iter().map(|f| quote(f)).collect::<Vec<_>>().join(", "));
        out.push(field::invalid(
            "metadata.finalizers",
            &shown,
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    // kube's ValidateOwnerReferences (an object's value is shown as its JSON)
    let mut controller = None;
    for r in meta["ownerReferences"].as_array().into_iter().flatten() {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        let api_version = s("apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        let path = "metadata.ownerReferences";
        if version.is_empty() {
            out.push(invalid(&format!("{path}.apiVersion"), &api_version, "version must not be empty"));
        }
        for (field, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if s(field).is_empty() {
                out.push(invalid(&format!("{path}.{field}"), "", &format!("{what} must not be empty")));
            }
        }
        // BannedOwners: an Event owns nothing
        if api_version == "v1" && s("kind") == "Event" {
            out.push(invalid(path, &r.to_string(), "/v1, Kind=Event is disallowed from being an owner"));
        }
        if r["controller"] == true {
            let this = format!("{}/{}", s("kind"), s("name"));
            match &controller {
                None => controller = Some(this),
                Some(first) => out.push(invalid(
                    path,
                    &meta["ownerReferences"].to_string(),
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"),
                )),
            }
        }
    }
    if meta["generation"].as_i64().is_some_and(|g| g < 0) {
        out.push(field::invalid(
            "metadata.generation",
            &meta["generation"].to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

/// The byte length of a data value (a Secret's are base64).
fn data_len(v: &Value, base64: bool) -> usize {
    let s = v.as_str().unwrap_or("");
    if base64 {
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_or(s.len(), |b| b.len())
    } else {
        s.len()
    }
}

/// kube-aggregator's `ValidateAPIService`: what the routing table needs of an APIService is
/// checked on write, so the store never holds one the router cannot take (the router checks
/// the policy files' with it too).
pub(crate) fn api_service(obj: &Value, out: &mut Vec<StatusCause>) {
    let spec = &obj["spec"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let (group, version) = (s(&spec["group"]), s(&spec["version"]));
    let name = s(&obj["metadata"]["name"]);
    let wanted = format!("{version}.{group}");
    if !name.is_empty() && name != wanted {
        let msg = format!("must be `spec.version+\".\"+spec.group`: {}", quote(&wanted));
        out.push(field::invalid("metadata.name", &quote(&name), &msg));
    }
    if group.is_empty() && version != "v1" {
        out.push(field::required("spec.group", "only v1 may have an empty group and it better be legacy kube"));
    }
    if !group.is_empty() {
        out.extend(super::validation::dns_subdomain(&group).iter().map(|m| invalid("spec.group", &group, m)));
    }
    crate::store::crd::validate::dns1035("spec.version", &version, out);
    let int = |k: &str| spec[k].as_i64().unwrap_or(0);
    if !(1..=20000).contains(&int("groupPriorityMinimum")) {
        let v = int("groupPriorityMinimum").to_string();
        out.push(field::invalid("spec.groupPriorityMinimum", &v, "must be positive and less than 20000"));
    }
    if !(1..=1000).contains(&int("versionPriority")) {
        let v = int("versionPriority").to_string();
        out.push(field::invalid("spec.versionPriority", &v, "must be positive and less than 1000"));
    }
    let ca = spec["caBundle"]
        .as_str()
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b).map_or(b.len(), |d| d.len()));
    let ca_len = ca.unwrap_or(0);
    let insecure = spec["insecureSkipTLSVerify"].as_bool().unwrap_or(false);
    let Some(service) = spec["service"].as_object() else {
        if ca_len != 0 {
            out.push(field::invalid(
                "spec.caBundle",
                &quote(&format!("{ca_len} bytes")),
                "local APIServices may not have a caBundle",
            ));
        }
        if insecure {
            out.push(field::invalid(
                "spec.insecureSkipTLSVerify",
                "true",
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
        return;
    };
    for k in ["namespace", "name"] {
        if service.get(k).and_then(Value::as_str).unwrap_or("").is_empty() {
            out.push(field::required(&format!("spec.service.{k}"), ""));
        }
    }
    // an absent port is defaulted to 443
    let port = service.get("port").filter(|p| !p.is_null()).map_or(443, |p| p.as_i64().unwrap_or(0));
    if !(1..=65535).contains(&port) {
        let msg = "port is not valid: must be between 1 and 65535, inclusive";
        out.push(field::invalid("spec.service.port", &port.to_string(), msg));
    }
    if insecure && ca_len > 0 {
        out.push(field::invalid("spec.insecureSkipTLSVerify", "true", "may not be true if caBundle is present"));
    }
}

fn config_map(obj: &Value, out: &mut Vec<StatusCause>) {
    let mut total = 0;
    for (key, v) in obj["data"].as_object().into_iter().flatten() {
        out.extend(config_key(key).iter().map(|m| invalid(&format!("data[{key}]"), key, m)));
        if obj["binaryData"].get(key).is_some() {
            out.push(invalid(&format!("data[{key}]"), key, "duplicate of key present in binaryData"));
        }
        total += data_len(v, false);
    }
    for (key, v) in obj["binaryData"].as_object().into_iter().flatten() {
        out.extend(config_key(key).iter().map(|m| invalid(&format!("binaryData[{key}]"), key, m)));
        if obj["data"].get(key).is_some() {
            out.push(invalid(&format!("binaryData[{key}]"), key, "duplicate of key present in data"));
        }
        total += data_len(v, true);
    }
    if total > MAX_DATA_SIZE {
        out.push(too_long("[]", MAX_DATA_SIZE));
    }
}

fn secret(obj: &Value, out: &mut Vec<StatusCause>) {
    let data = &obj["data"];
    let mut total = 0;
    for (key, v) in data.as_object().into_iter().flatten() {
        out.extend(config_key(key).iter().map(|m| invalid(&format!("data[{key}]"), key, m)));
        total += data_len(v, true);
    }
    if total > MAX_DATA_SIZE {
        out.push(too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| data.get(k).is_some();
    let key = |k: &str| format!("data[{k}]");
    match obj["type"].as_str().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let a = "kubernetes.io/service-account.name";
            if obj["metadata"]["annotations"][a].as_str().unwrap_or("").is_empty() {
                out.push(required(&format!("metadata.annotations[{a}]")));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => out.push(required(&key(".dockercfg"))),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => out.push(required(&key(".dockerconfigjson"))),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            out.push(required(&key("username")));
            out.push(required(&key("password")));
        }
        "kubernetes.io/ssh-auth" if data_len(&data["ssh-privatekey"], true) == 0 => {
            out.push(required(&key("ssh-privatekey")))
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    out.push(required(&key(k)));
                }
            }
        }
        _ => {}
    }
}

/// ConfigMap's and Secret's `immutable`: once set, neither it nor the data may change.
fn immutable(obj: &Value, old: &Value, fields: &[&str], out: &mut Vec<StatusCause>) {
    if old["immutable"] != true {
        return;
    }
    const MSG: &str = "field is immutable when `immutable` is set";
    if obj["immutable"] != true {
        out.push(forbidden("immutable", MSG));
    }
    for f in fields {
        let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
        if obj[*f] != old[*f] && !(empty(&obj[*f]) && empty(&old[*f])) {
            out.push(forbidden(f, MSG));
        }
    }
}

/// The causes for `obj` (about to be stored over `old`, on an update) being invalid, in
/// kube's order: metadata, then the kind's own fields, then the schema's required fields.
pub fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut out = Vec::new();
    object_meta(&obj["metadata"], &mut out);
    match (def.group.as_str(), def.resource.as_str()) {
        ("", "configmaps") => {
            config_map(obj, &mut out);
            if let Some(old) = old {
                immutable(obj, old, &["data", "binaryData"], &mut out);
            }
        }
        ("", "secrets") => {
            secret(obj, &mut out);
            if let Some(old) = old {
                let (new_t, old_t) = (obj["type"].as_str().unwrap_or(""), old["type"].as_str().unwrap_or(""));
                if new_t != old_t {
                    out.push(invalid("type", new_t, "field is immutable"));
                }
                immutable(obj, old, &["data"], &mut out);
            }
        }
        ("", "namespaces") => {
            // kube's ValidateNamespaceStatusUpdate: the phase follows the deletion, so no
            // status writer can mark a live namespace Terminating (which refuses its creates)
            if old.is_some() {
                let phase = obj["status"]["phase"].as_str().unwrap_or("Active");
                match obj["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
                    false if phase != "Active" => {
                        out.push(invalid("status.Phase", phase, "may only be 'Active' if `deletionTimestamp` is empty"))
                    }
                    true if phase != "Terminating" => out.push(invalid(
                        "status.Phase",
                        phase,
                        "may only be 'Terminating' if `deletionTimestamp` is not empty",
                    )),
                    _ => {}
                }
            }
            for f in obj["spec"]["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                out.extend(qualified_name(f).iter().map(|m| invalid("spec.finalizers", f, m)));
                if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion") {
                    out.push(invalid(
                        "spec.finalizers",
                        f,
                        "name is neither a standard finalizer name nor is it fully qualified",
                    ));
                }
            }
        }
        ("apiregistration.k8s.io", "apiservices") => api_service(obj, &mut out),
        // kube's ValidateLeaseSpec
        ("coordination.k8s.io", "leases") => {
            let spec = &obj["spec"];
            if let Some(d) = spec["leaseDurationSeconds"].as_i64().filter(|d| *d <= 0) {
                out.push(field::invalid("spec.leaseDurationSeconds", &d.to_string(), "must be greater than 0"));
            }
            if let Some(t) = spec["leaseTransitions"].as_i64().filter(|t| *t < 0) {
                out.push(field::invalid("spec.leaseTransitions", &t.to_string(), "must be greater than or equal to 0"));
            }
        }
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => {
            out.extend(crate::flowcontrol::apf::validation::flow_schema(obj))
        }
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            out.extend(crate::flowcontrol::apf::validation::priority_level(obj))
        }
        _ => {}
    }
    if let Some(schema) = def.custom.as_ref().and_then(|c| c.schema.as_ref()) {
        out.extend(crate::store::crd::structural::validate(schema, obj, old));
    }
    if super::crd::is_crds(def) {
        out.extend(super::crd::validate::validate(obj, old));
    }
    // whatever else a typed client needs (an owner reference's uid is worded above)
    let s = schema::get();
    if let Some(name) = s.kind(&def.group, &def.version, &def.kind) {
        for path in schema::missing_required(s, name, obj) {
            if !path.starts_with("metadata.ownerReferences") && !out.iter().any(|c| c.field == path) {
                out.push(required(&path));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(resource: &str) -> ResourceDef {
        crate::store::resources::defaults().into_iter().find(|d| d.resource == resource).unwrap()
    }

    #[test]
    fn api_services_as_kube_aggregator_validates_them() {
        let d = crate::store::resources::defaults().into_iter().find(|d| d.resource == "apiservices").unwrap();
        let texts = |spec: Value, name: &str| -> Vec<String> {
            let o = serde_json::json!({"metadata": {"name": name}, "spec": spec});
            validate(&d, &o, None).iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
        };
        let ok = serde_json::json!({"group": "a.io", "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 10,
            "service": {"namespace": "ns", "name": "api"}, "insecureSkipTLSVerify": true});
        assert!(texts(ok.clone(), "v1.a.io").is_empty(), "{:?}", texts(ok.clone(), "v1.a.io"));
        assert_eq!(
            texts(ok.clone(), "v2.a.io"),
            vec![r#"metadata.name: Invalid value: "v2.a.io": must be `spec.version+"."+spec.group`: "v1.a.io""#]
        );
        let mut bad = ok.clone();
        bad["groupPriorityMinimum"] = 0.into();
        bad["versionPriority"] = 1001.into();
        bad["service"]["port"] = 0.into();
        bad["caBundle"] = "QUJD".into();
        assert_eq!(
            texts(bad, "v1.a.io"),
            vec![
                "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000",
                "spec.versionPriority: Invalid value: 1001: must be positive and less than 1000",
                "spec.service.port: Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive",
                "spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present",
            ]
        );
        let local = serde_json::json!({"group": "b.io", "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 10,
            "caBundle": "QUJD", "insecureSkipTLSVerify": true});
        assert_eq!(
            texts(local, "v1.b.io"),
            vec![
                r#"spec.caBundle: Invalid value: "3 bytes": local APIServices may not have a caBundle"#,
                "spec.insecureSkipTLSVerify: Invalid value: true: local APIServices may not have insecureSkipTLSVerify",
            ]
        );
        let no_ns = serde_json::json!({"group": "a.io", "version": "v1", "groupPriorityMinimum": 1, "versionPriority": 1, "service": {"name": "x"}});
        assert_eq!(texts(no_ns, "v1.a.io"), vec!["spec.service.namespace: Required value"]);
        // the core group's name: `v1.`
        let core =
            serde_json::json!({"group": "", "version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1});
        assert!(texts(core, "v1.").is_empty());
    }

    #[test]
    fn lease_durations_and_transitions_are_kubes() {
        let leases =
            ResourceDef { group: "coordination.k8s.io".into(), resource: "leases".into(), ..def("configmaps") };
        let o = json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
        let c: Vec<String> =
            validate(&leases, &o, None).into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert_eq!(
            c,
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        let ok = json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 15, "leaseTransitions": 0}});
        assert!(validate(&leases, &ok, None).is_empty());
    }

    #[test]
    fn metadata_rules() {
        let cm = def("configmaps");
        let o = json!({"metadata": {"name": "x", "labels": {"bad key": "v", "k": "-bad"}, "finalizers": ["a b"],
                       "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o"}]}});
        let c = validate(&cm, &o, None);
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["metadata.labels", "metadata.labels", "metadata.finalizers", "metadata.ownerReferences.uid"]
        );
        assert_eq!(c[3].message, "Invalid value: \"\": uid must not be empty");
        let owner = |kind: &str, name: &str, controller: bool| json!({"apiVersion": "v1", "kind": kind, "name": name, "uid": "u", "controller": controller});
        let two = json!({"metadata": {"name": "x", "ownerReferences": [owner("ConfigMap", "a", true), owner("ConfigMap", "b", true)]}});
        let c = validate(&cm, &two, None);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].message.ends_with("Only one reference can have Controller set to true. Found \"true\" in references for ConfigMap/a and ConfigMap/b"), "{c:?}");
        let event = json!({"metadata": {"name": "x", "ownerReferences": [owner("Event", "e", false)]}});
        let c = validate(&cm, &event, None);
        assert!(c.len() == 1 && c[0].message.ends_with("/v1, Kind=Event is disallowed from being an owner"), "{c:?}");
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE);
        let c = validate(&cm, &json!({"metadata": {"name": "x", "annotations": {"a": big}}}), None);
        assert_eq!(
            (c[0].field.as_str(), c[0].message.as_str()),
            ("metadata.annotations", "Too long: may not be more than 262144 bytes")
        );
    }

    #[test]
    fn config_maps_and_secrets() {
        let cm = def("configmaps");
        let c = validate(&cm, &json!({"metadata": {"name": "x"}, "data": {"bad key": "v"}}), None);
        assert_eq!(c[0].field, "data[bad key]");
        assert!(c[0].message.starts_with("Invalid value: \"bad key\": a valid config key must consist of"));
        let big = "x".repeat(MAX_DATA_SIZE + 1);
        assert_eq!(validate(&cm, &json!({"metadata": {}, "data": {"a": big}}), None)[0].field, "[]");
        let old = json!({"metadata": {}, "immutable": true, "data": {"a": "1"}});
        let c = validate(&cm, &json!({"metadata": {}, "immutable": true, "data": {"a": "2"}}), Some(&old));
        assert_eq!(c[0].message, "Forbidden: field is immutable when `immutable` is set");
        assert!(validate(&cm, &old, Some(&old)).is_empty());
        let secret = def("secrets");
        let c = validate(&secret, &json!({"metadata": {}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}}), None);
        assert_eq!(c.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), vec!["data[tls.key]"]);
        let old = json!({"metadata": {}, "type": "Opaque"});
        let c = validate(
            &secret,
            &json!({"metadata": {}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
            Some(&old),
        );
        assert_eq!(c[0].message, "Invalid value: \"kubernetes.io/tls\": field is immutable");
    }

    #[test]
    fn namespace_finalizers_and_required_fields() {
        let ns = def("namespaces");
        let c = validate(&ns, &json!({"metadata": {}, "spec": {"finalizers": ["kubernetes", "foo"]}}), None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].message,
            "Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified"
        );
        let rb = def("rolebindings");
        let c = validate(&rb, &json!({"metadata": {}, "subjects": [{"kind": "User"}]}), None);
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["roleRef", "subjects[0].name"]);
    }
}

#[cfg(test)]
mod timing {
    #[test]
    #[ignore]
    fn big_config_map() {
        let big: String = (0..60_000).map(|i| format!("  k{i}: value-{i}\n")).collect();
        let body = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n{big}");
        let t = std::time::Instant::now();
        let mut v = crate::api::decode::yaml_strict(body.as_bytes()).unwrap().value;
        eprintln!("yaml {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let _ = crate::api::decode::yaml(body.as_bytes()).unwrap();
        eprintln!("yaml plain {:?}", t.elapsed());
        let s = crate::store::schema::get();
        let t = std::time::Instant::now();
        let d = crate::store::schema::decode(s, "io.k8s.api.core.v1.ConfigMap", &mut v);
        eprintln!("schema {:?} {:?}", t.elapsed(), d.error);
        let def = crate::store::resources::defaults().into_iter().find(|d| d.resource == "configmaps").unwrap();
        let t = std::time::Instant::now();
        let c = super::validate(&def, &v, None);
        eprintln!("validate {:?} {}", t.elapsed(), c.len());
    }
}
