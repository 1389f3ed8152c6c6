//! The three patch formats kubectl sends: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902) and strategic merge patch with the merge keys of the kinds the store serves.

use serde_json::{Map, Value};

/// RFC 7386: maps merge recursively, null deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn pointer_parts(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or_else(|| format!("invalid JSON pointer: {path:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent<'a>(doc: &'a mut Value, parts: &[String], path: &str) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: \"{path}\""))?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let parts = pointer_parts(path)?;
    let Some((last, init)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent(doc, init, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>().map_err(|_| format!("invalid array index {last:?}"))?
            };
            if i > a.len() {
                return Err(format!("add operation does not apply: doc is missing path: \"{path}\""));
            }
            a.insert(i, value);
        }
        _ => return Err(format!("doc is missing path: \"{path}\"")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let parts = pointer_parts(path)?;
    let (last, init) = parts.split_last().ok_or("cannot remove the whole document")?;
    let missing = || format!("remove operation does not apply: doc is missing path: \"{path}\"");
    match parent(doc, init, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            (i < a.len()).then(|| a.remove(i)).ok_or_else(missing)
        }
        _ => Err(missing()),
    }
}

fn get(doc: &Value, path: &str) -> Result<Value, String> {
    let ptr = pointer_parts(path)?
        .iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect::<String>();
    doc.pointer(&ptr).cloned().ok_or_else(|| format!("doc is missing path: \"{path}\""))
}

/// kube's bound on a JSON patch's operations (maxJSONPatchOperations).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// kube's bound on what a JSON patch's copies may add (JSONPatchMaxCopyBytes: the request
/// body limit): copies of copies would otherwise grow a document exponentially.
const MAX_COPY_BYTES: usize = crate::filters::request_body::MAX_BODY;

/// RFC 6902. Applies every operation or none.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, String> {
    let ops = patch.as_array().ok_or("json patch must be an array of operations")?;
    let mut doc = target.clone();
    let mut copied = 0usize;
    for op in ops {
        let path = op["path"].as_str().ok_or("missing path in json patch operation")?;
        let value = || op.get("value").cloned().ok_or_else(|| format!("missing value for {path}"));
        match op["op"].as_str().unwrap_or("") {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)
                    .map_err(|_| format!("replace operation does not apply: doc is missing key: {path}"))?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let from = op["from"].as_str().ok_or("missing from")?;
                let v = remove(&mut doc, from)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("missing from")?;
                let v = get(&doc, from)?;
                copied += serde_json::to_vec(&v).map_or(0, |b| b.len());
                if copied > MAX_COPY_BYTES {
                    return Err(format!("Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_COPY_BYTES}"));
                }
                add(&mut doc, path, v)?;
            }
            "test" => {
                if get(&doc, path)? != value()? {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(doc)
}

/// The merge key of a list field in a strategic merge patch, by its path in the kind's schema
/// (`def`): its `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key` (store::schema);
/// None replaces the list. `Some("")` merges a list of scalars as a set.
fn merge_key(def: Option<&str>, path: &str) -> Option<String> {
    let s = crate::store::schema::get();
    let steps: Vec<&str> = path.split('.').collect();
    let (last, init) = steps.split_last()?;
    let field = s.at(def?, init)?.get("properties")?.get(*last)?;
    let merge = field["x-kubernetes-patch-strategy"].as_str().is_some_and(|p| p.split(',').any(|p| p == "merge"));
    merge.then(|| field["x-kubernetes-patch-merge-key"].as_str().unwrap_or("").to_string())
}

/// Strategic merge patch (kube's `strategicpatch.StrategicMergePatch`) for the store's kinds:
/// a map merge with `$patch` / `$retainKeys` / `$setElementOrder` / `$deleteFromPrimitiveList`
/// directives and the merge keys of `def`'s schema (a kind without one replaces every list).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value, def: Option<&str>) -> Result<(), String> {
    smp(target, patch, "", def)
}

fn smp(target: &mut Value, patch: &Value, path: &str, def: Option<&str>) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut p = p.clone();
            p.remove("$patch");
            *target = Value::Object(p);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(format!("Unknown patch type: {other}")),
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let retain: Option<Vec<String>> = p
        .get("$retainKeys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect());
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(have)), Some(gone)) = (t.get_mut(field), v.as_array()) {
                have.retain(|x| !gone.contains(x));
            }
            continue;
        }
        let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(def, &child), v, t.get_mut(k)) {
            (Some(key), Value::Array(items), Some(Value::Array(have))) => merge_list(have, items, &key, &child, def)?,
            _ => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                smp(slot, v, &child, def)?;
                if slot.is_null() {
                    t.remove(k);
                }
            }
        }
    }
    if let Some(keep) = retain {
        t.retain(|k, _| keep.contains(k));
    }
    Ok(())
}

fn merge_list(have: &mut Vec<Value>, items: &[Value], key: &str, path: &str, def: Option<&str>) -> Result<(), String> {
    for item in items {
        if key.is_empty() {
            if !have.contains(item) {
                have.push(item.clone());
            }
            continue;
        }
        let id =
            item.get(key).cloned().ok_or_else(|| format!("map: {item} does not contain declared merge key: {key}"))?;
        let directive = item.get("$patch").and_then(Value::as_str);
        let pos = have.iter().position(|h| h.get(key) == Some(&id));
        match (directive, pos) {
            (Some("delete"), Some(i)) => {
                have.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => smp(&mut have[i], item, path, def)?,
            (_, None) => {
                let mut v = Value::Null;
                smp(&mut v, item, path, def)?;
                have.push(v);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn json_patch_ops_all_or_nothing() {
        let t = json!({"data": {"a": "1"}, "list": [1, 2]});
        let p = json!([
            {"op": "add", "path": "/data/b", "value": "2"},
            {"op": "replace", "path": "/data/a", "value": "x"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "remove", "path": "/list/0"},
            {"op": "test", "path": "/data/b", "value": "2"},
            {"op": "copy", "from": "/data/a", "path": "/data/c"},
            {"op": "move", "from": "/data/c", "path": "/data/d"}
        ]);
        assert_eq!(json_patch(&t, &p).unwrap(), json!({"data": {"a": "x", "b": "2", "d": "x"}, "list": [2, 3]}));
        assert!(json_patch(&t, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&t, &json!([{"op": "test", "path": "/data/a", "value": "0"}])).is_err());
    }

    #[test]
    fn strategic_merge_directives_and_keys() {
        let mut t = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}], "labels": {"k": "v"}},
                           "rules": [{"verbs": ["get"]}]});
        strategic_merge_patch(
            &mut t,
            &json!({
                "metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"],
                             "ownerReferences": [{"uid": "1", "name": "y"}, {"uid": "2", "name": "z"}],
                             "labels": {"k": null, "n": "m"}, "$setElementOrder/finalizers": ["b"]},
                "rules": [{"verbs": ["list"]}]
            }),
            Some("io.k8s.api.rbac.v1.Role"),
        )
        .unwrap();
        assert_eq!(t["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(t["metadata"]["ownerReferences"], json!([{"uid": "1", "name": "y"}, {"uid": "2", "name": "z"}]));
        assert_eq!(t["metadata"]["labels"], json!({"n": "m"}));
        assert_eq!(t["rules"], json!([{"verbs": ["list"]}]), "lists without a merge key are replaced");
        // a namespace's spec.finalizers and a service account's imagePullSecrets are atomic in kube
        let ns = Some("io.k8s.api.core.v1.Namespace");
        let mut n = json!({"spec": {"finalizers": ["kubernetes"]}});
        strategic_merge_patch(&mut n, &json!({"spec": {"finalizers": ["example.com/x"]}}), ns).unwrap();
        assert_eq!(n["spec"]["finalizers"], json!(["example.com/x"]));
        let sa = Some("io.k8s.api.core.v1.ServiceAccount");
        let mut a = json!({"secrets": [{"name": "a"}], "imagePullSecrets": [{"name": "p"}]});
        strategic_merge_patch(&mut a, &json!({"secrets": [{"name": "b"}], "imagePullSecrets": [{"name": "q"}]}), sa)
            .unwrap();
        assert_eq!(a, json!({"secrets": [{"name": "a"}, {"name": "b"}], "imagePullSecrets": [{"name": "q"}]}));
        strategic_merge_patch(&mut t, &json!({"metadata": {"ownerReferences": [{"uid": "1", "$patch": "delete"}]}, "data": {"$patch": "replace", "x": "1"}}), Some("io.k8s.api.rbac.v1.Role")).unwrap();
        assert_eq!(t["metadata"]["ownerReferences"], json!([{"uid": "2", "name": "z"}]));
        assert_eq!(t["data"], json!({"x": "1"}));
    }
}
