//! A custom resource's Table (kube's CRD table convertor): Name, then each of the version's
//! additionalPrinterColumns (by default one, Age, of `.metadata.creationTimestamp`), each
//! cell the value at the column's JSON path as its type says (a date as its age); a path that
//! finds nothing is a null cell (kubectl prints `<none>`).

use crate::store::fields_v1;
use crate::store::table::{human_duration, IncludeObject};
use serde_json::{json, Value};
use std::borrow::Cow;

/// The columns of a version: its additionalPrinterColumns, or kube's default Age.
pub fn columns(declared: &[Value]) -> Vec<Value> {
    if declared.is_empty() {
        return vec![json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})];
    }
    declared.to_vec()
}

/// The value at a simple JSON path (`.spec.replicas`, `.status.conditions[0].type`); field
/// sets the server holds as text are read, and found, as the maps they are.
pub fn find<'a>(obj: &'a Value, path: &str) -> Option<Cow<'a, Value>> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('.');
    let mut cur = Cow::Borrowed(obj);
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let (field, indices) = match step.find('[') {
            Some(i) => (&step[..i], &step[i..]),
            None => (step, ""),
        };
        if !field.is_empty() {
            cur = step_into(cur, |v| v.get(field))?;
        }
        for idx in indices.split('[').filter(|s| !s.is_empty()) {
            let i: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = step_into(cur, |v| v.get(i))?;
        }
    }
    Some(fields_v1::with_trees(cur))
}

/// One step of `find`, into a set's tree where `cur` is a set held as text.
fn step_into<'a>(cur: Cow<'a, Value>, step: impl Fn(&Value) -> Option<&Value>) -> Option<Cow<'a, Value>> {
    match cur {
        Cow::Borrowed(v) if fields_v1::text(v).is_none() => step(v).map(Cow::Borrowed),
        cur => step(&fields_v1::tree(&cur)).cloned().map(Cow::Owned),
    }
}

fn cell(column: &Value, obj: &Value) -> Value {
    let Some(v) = find(obj, column["jsonPath"].as_str().unwrap_or_default()).filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    let v = &*v;
    match column["type"].as_str().unwrap_or("string") {
        "date" => match v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) {
            Some(t) => json!(human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())),
            None => json!("<invalid>"),
        },
        "string" => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
        _ => v.clone(),
    }
}

/// The columnDefinitions of `cols` (`columns`' resolved ones): Name, then each.
pub fn definitions(cols: &[Value]) -> Vec<Value> {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0}),
    ];
    for c in cols {
        defs.push(json!({
            "name": c["name"], "type": c["type"], "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    defs
}

/// The cells of `o`'s row by `cols` (`columns`' resolved ones): its name, then each column's.
pub fn cells(cols: &[Value], o: &Value) -> Vec<Value> {
    let mut cells = vec![o["metadata"]["name"].clone()];
    cells.extend(cols.iter().map(|c| cell(c, o)));
    cells
}

/// The Table of `items` by `declared` columns.
pub fn table<V: std::borrow::Borrow<Value>>(
    declared: &[Value],
    items: &[V],
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    let printer = crate::store::table::Printer::Custom(columns(declared));
    let rows: Vec<Value> =
        items.iter().map(|o| crate::store::table::row_of(printer.cells(o.borrow()), o.borrow(), include)).collect();
    crate::store::table::envelope(&printer, list_meta, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_columns_as_kubes_convertor() {
        let cols = vec![
            json!({"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}),
            json!({"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}),
            json!({"name": "First", "type": "string", "jsonPath": ".spec.tags[0]"}),
            json!({"name": "Missing", "type": "string", "jsonPath": ".status.nope", "priority": 1}),
        ];
        let o =
            json!({"metadata": {"name": "a"}, "spec": {"cronSpec": "* * * * *", "replicas": 3, "tags": ["x", "y"]}});
        let t = table(&cols, &[o], json!({}), IncludeObject::None);
        let heads: Vec<&str> =
            t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(heads, vec!["Name", "Spec", "Replicas", "First", "Missing"]);
        assert_eq!(t["rows"][0]["cells"], json!(["a", "* * * * *", 3, "x", null]));
        assert_eq!(t["columnDefinitions"][4]["priority"], 1);
        let t = table(
            &[],
            &[json!({"metadata": {"name": "b", "creationTimestamp": "2000-01-01T00:00:00Z"}})],
            json!({}),
            IncludeObject::None,
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Age");
        assert!(t["rows"][0]["cells"][1].as_str().unwrap().ends_with('y'));
    }
}
