//! The scale subresource of a custom resource (autoscaling/v1 Scale), as kube serves it: the
//! replicas at `specReplicasPath`, the status replicas at `statusReplicasPath`, the selector at
//! `labelSelectorPath`; an update or patch of the Scale writes `spec.replicas` back into the
//! object at `specReplicasPath`.

use crate::api::Status;
use crate::filters::Reply;
use crate::store::backend::StorageError;
use crate::store::rest::Target;
use crate::store::Store;
use serde_json::{json, Value};

/// The steps of a `.spec.replicas` path.
fn steps(path: &str) -> Vec<&str> {
    path.trim_start_matches('.').split('.').filter(|s| !s.is_empty()).collect()
}

pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    steps(path).iter().try_fold(obj, |v, s| v.get(*s))
}

fn set_path(obj: &mut Value, path: &str, value: Value) {
    let steps = steps(path);
    let mut cur = obj;
    for (i, s) in steps.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        if i == steps.len() - 1 {
            cur[*s] = value;
            return;
        }
        cur = &mut cur[*s];
    }
}

/// Where a Scale's replicas are written. Under `.spec` only, as `crd::validate` holds every
/// definition to: one stored before that check writes nothing else through a grant of scale.
fn spec_replicas_path(spec: &Value) -> Result<&str, Status> {
    match spec["specReplicasPath"].as_str().unwrap_or(".spec.replicas") {
        at if at.starts_with(".spec.") => Ok(at),
        at => Err(Status::internal_error(format!("specReplicasPath {at:?} is not a json path under .spec"))),
    }
}

/// The object's Scale.
pub fn scale_of(spec: &Value, obj: &Value) -> Value {
    let path = |k: &str| spec[k].as_str().unwrap_or_default().to_string();
    let replicas = get_path(obj, &path("specReplicasPath")).and_then(Value::as_i64).unwrap_or(0);
    let status = get_path(obj, &path("statusReplicasPath")).and_then(Value::as_i64).unwrap_or(0);
    let m = &obj["metadata"];
    let mut meta = json!({"name": m["name"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]});
    if m["namespace"].is_string() {
        meta["namespace"] = m["namespace"].clone();
    }
    let mut s = json!({"replicas": status});
    if let Some(sel) = spec["labelSelectorPath"].as_str().and_then(|p| get_path(obj, p)).and_then(Value::as_str) {
        s["selector"] = json!(sel);
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta, "spec": {"replicas": replicas}, "status": s})
}

/// get, update or patch of `t`'s object's scale.
pub fn serve(store: &Store, t: &Target, verb: &str, body: &[u8]) -> Result<Reply, Status> {
    let Some(spec) = t.def.custom.as_ref().and_then(|c| c.scale.clone()) else {
        return Err(Status::path_not_found());
    };
    let key = t.def.key(&t.namespace, &t.name);
    let not_found = || Status::not_found(&t.def.group, &format!("{}/scale", t.def.resource), &t.name);
    for _ in 0..crate::store::rest::write::RETRIES {
        let existing = store.storage.get(&key).ok_or_else(not_found)?;
        let current = scale_of(&spec, &crate::store::rest::present_as(store, t.def, &existing.value));
        let wanted = match verb {
            "get" => return Ok(Reply::json(200, &current)),
            "update" => crate::store::rest::decode(body, &t.content_type, "Scale")?,
            "patch" => {
                let p: Value = serde_json::from_slice(body)
                    .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
                let mut s = current.clone();
                if t.content_type.starts_with("application/json-patch+json") {
                    s = crate::store::patch::json_patch(&s, &p).map_err(|e| Status::failure(422, "Invalid", e))?;
                } else {
                    crate::store::patch::merge_patch(&mut s, &p);
                }
                s
            }
            other => return Err(Status::method_not_allowed(&other.to_ascii_uppercase())),
        };
        // kube's update handler (checkName) and scaleUpdatedObjectInfo (a uid precondition)
        let meta = &wanted["metadata"];
        if let Some(name) = meta["name"].as_str().filter(|n| !n.is_empty() && *n != t.name) {
            let message = format!("the name of the object ({name}) does not match the name on the URL ({})", t.name);
            return Err(Status::bad_request(message));
        }
        if meta["namespace"].as_str().is_some_and(|n| !n.is_empty() && n != t.namespace) {
            let message = "the namespace of the provided object does not match the namespace sent on the request";
            return Err(Status::bad_request(message));
        }
        let uid = existing.value["metadata"]["uid"].as_str().unwrap_or_default();
        if let Some(asked) = meta["uid"].as_str().filter(|u| !u.is_empty() && *u != uid) {
            let why = format!("Precondition failed: UID in precondition: {asked}, UID in object meta: {uid}");
            return Err(Status::conflict(&t.def.group, &t.def.resource, &t.name, &why));
        }
        let rv = wanted["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        // a resourceVersion the Scale names, sent or patched in, is a precondition (kube's
        // scaleUpdatedObjectInfo), whichever verb wrote it
        if !rv.is_empty() && rv != existing.rev.to_string() {
            return Err(Status::conflict(
                &t.def.group,
                &t.def.resource,
                &t.name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let Some(replicas) = wanted["spec"]["replicas"].as_i64() else {
            return Err(Status::invalid(
                "autoscaling",
                "Scale",
                &t.name,
                vec![crate::api::field::required("spec.replicas", "")],
            ));
        };
        if replicas < 0 {
            return Err(Status::invalid(
                "autoscaling",
                "Scale",
                &t.name,
                vec![crate::api::field::invalid(
                    "spec.replicas",
                    &replicas.to_string(),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let at = spec_replicas_path(&spec)?;
        let mut obj = (*existing.value).clone();
        set_path(&mut obj, at, json!(replicas));
        if obj == *existing.value || t.query.dry_run() {
            return Ok(Reply::json(200, &scale_of(&spec, &obj)));
        }
        let g = obj["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        obj["metadata"]["generation"] = json!(g);
        // the object is validated as any update of it is (schema, CEL): kube's scale updates
        // the custom resource through its own store
        crate::store::rest::write::validate(t, &mut obj, Some(&existing.value))?;
        match store.update(t.def, &key, obj, Some(existing.rev)) {
            Ok(s) => {
                let mut out = scale_of(&spec, &s.value);
                out["metadata"]["resourceVersion"] = json!(s.rev.to_string());
                return Ok(Reply::json(200, &out));
            }
            // another replica's write may reach this one's view a moment later
            Err(StorageError::Conflict) => crate::store::rest::write::wait_changed(store, &key, existing.rev),
            Err(e) => return Err(Status::internal_error(e.to_string())),
        }
    }
    Err(Status::conflict(
        &t.def.group,
        &t.def.resource,
        &t.name,
        "the object has been modified; please apply your changes to the latest version and try again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reads_and_writes_its_paths() {
        let spec = json!({"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"});
        let obj = json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=a"}});
        let s = scale_of(&spec, &obj);
        assert_eq!((s["spec"]["replicas"].as_i64(), s["status"]["replicas"].as_i64()), (Some(3), Some(2)));
        assert_eq!(s["status"]["selector"], "app=a");
        let mut o = json!({});
        set_path(&mut o, ".spec.size", json!(5));
        assert_eq!(o, json!({"spec": {"size": 5}}));
        assert_eq!(spec_replicas_path(&spec).unwrap(), ".spec.replicas");
        for bad in [".metadata.labels.x", ".spec", "spec.n", ".status.replicas"] {
            assert_eq!(spec_replicas_path(&json!({"specReplicasPath": bad})).unwrap_err().code, 500, "{bad}");
        }
    }
}
