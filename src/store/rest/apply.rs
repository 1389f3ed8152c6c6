//! Server-side apply (`application/apply-patch+yaml`) with simple field ownership: the
//! manager owns the fields of its applied configuration; fields it applied before and
//! dropped now are removed; a field another manager set to a different value is a conflict
//! unless `force=true`.

use super::object::{owned_fields, record_managed};
use super::write::{check_name, check_namespace, check_type, create_value, guaranteed_update, prepare_update};
use super::Target;
use crate::api::status::StatusCause;
use crate::api::Status;
use crate::filters::Reply;
use crate::store::Store;
use serde_json::Value;

/// The leaf paths of a FieldsV1 set.
fn leaves(set: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(m) = set.as_object() else { return };
    if m.is_empty() && !prefix.is_empty() {
        out.push(prefix.clone());
        return;
    }
    for (k, v) in m {
        if let Some(name) = k.strip_prefix("f:") {
            prefix.push(name.to_string());
            leaves(v, prefix, out);
            prefix.pop();
        }
    }
}

fn paths(set: &Value) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    leaves(set, &mut Vec::new(), &mut out);
    out
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, p| cur.get(p))
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for p in init {
        match cur.get_mut(p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Maps merge, everything else is replaced by the applied value.
fn merge(target: &mut Value, config: &Value) {
    match (target.as_object_mut(), config.as_object()) {
        (Some(t), Some(c)) => {
            for (k, v) in c {
                match t.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = config.clone(),
    }
}

pub fn apply(store: &Store, t: &Target, body: &[u8]) -> Result<Reply, Status> {
    let manager = t.query.field_manager.clone();
    if manager.is_empty() {
        return Err(Status::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![StatusCause {
                reason: "FieldValueRequired".into(),
                message: "Required value: is required for apply patch".into(),
                field: "fieldManager".into(),
            }],
        ));
    }
    let crate::api::decode::Strict { value: mut config, duplicates } = crate::api::decode::yaml_strict(body)
        .map_err(|e| Status::bad_request(format!("error decoding YAML: error converting YAML to JSON: {e}")))?;
    super::typed::check_apply(t, &mut config, duplicates)?;
    check_type(t, &mut config)?;
    check_name(t, &mut config)?;
    check_namespace(t, &mut config)?;
    let mine = owned_fields(&config);
    let wanted = paths(&mine);
    let missing = || create_value(store, t, config.clone(), &manager, "Apply");
    guaranteed_update(store, t, true, missing, |existing| {
        let managed: Vec<Value> = existing.value["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        // conflicts: another manager owns a field this apply sets to a different value
        if !t.query.force {
            let mut conflicts = Vec::new();
            for entry in managed.iter().filter(|e| e["manager"] != manager.as_str()) {
                for p in paths(&entry["fieldsV1"]).iter().filter(|p| wanted.contains(p)) {
                    if lookup(&existing.value, p) != lookup(&config, p) {
                        conflicts.push((
                            entry["manager"].as_str().unwrap_or("").to_string(),
                            entry["apiVersion"].as_str().unwrap_or("").to_string(),
                            format!(".{}", p.join(".")),
                        ));
                    }
                }
            }
            if !conflicts.is_empty() {
                let n = conflicts.len();
                let list: Vec<String> =
                    conflicts.iter().map(|(m, v, f)| format!("conflict with \"{m}\" using {v}: {f}")).collect();
                let msg = if n == 1 {
                    format!("Apply failed with 1 conflict: {}", list[0])
                } else {
                    format!("Apply failed with {n} conflicts: {}", list.join("\n"))
                };
                let mut s = Status::failure(409, "Conflict", msg);
                s.details = Some(crate::api::status::StatusDetails {
                    causes: conflicts
                        .iter()
                        .map(|(m, v, f)| StatusCause {
                            reason: "FieldManagerConflict".into(),
                            message: format!("conflict with \"{m}\" using {v}"),
                            field: f.clone(),
                        })
                        .collect(),
                    ..Default::default()
                });
                return Err(s);
            }
        }
        let before = managed
            .iter()
            .find(|e| e["manager"] == manager.as_str() && e["operation"] == "Apply")
            .map(|e| paths(&e["fieldsV1"]))
            .unwrap_or_default();
        let mut new = (*existing.value).clone();
        for gone in before.iter().filter(|p| !wanted.contains(p)) {
            remove_path(&mut new, gone);
        }
        merge(&mut new, &config);
        record_managed(&mut new, mine.clone(), &t.def.api_version(), &manager, "Apply", &t.subresource);
        prepare_update(t, &existing.value, new, "Apply")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaf_paths_and_merge() {
        let f = owned_fields(&json!({"metadata": {"labels": {"a": "b"}}, "data": {"k": "v", "j": "w"}}));
        let mut p = paths(&f);
        p.sort();
        assert_eq!(
            p,
            vec![
                vec!["data".to_string(), "j".into()],
                vec!["data".into(), "k".into()],
                vec!["metadata".into(), "labels".into(), "a".into()]
            ]
        );
        let mut t = json!({"data": {"k": "1", "x": "2"}});
        merge(&mut t, &json!({"data": {"k": "3"}}));
        remove_path(&mut t, &["data".to_string(), "x".to_string()]);
        assert_eq!(t, json!({"data": {"k": "3"}}));
    }
}
