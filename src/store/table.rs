//! `as=Table` output (meta.k8s.io/v1 Table): NAME and AGE plus kube's columns for the
//! built-in kinds, so `kubectl get` prints what it prints against kube-apiserver.

use serde_json::{json, Value};
use std::borrow::Borrow;

#[derive(Debug, Clone)]
pub struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

const fn col(name: &'static str, kind: &'static str, format: &'static str, description: &'static str) -> Column {
    Column { name, kind, format, description, priority: 0 }
}

const NAME: Column = col("Name", "string", "name", "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names");
const AGE: Column = col("Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata");

fn columns(group: &str, resource: &str) -> Vec<Column> {
    match (group, resource) {
        ("", "namespaces") => vec![NAME, col("Status", "string", "", "The status of the namespace"), AGE],
        ("", "configmaps") => vec![NAME, col("Data", "string", "", "Data contains the configuration data."), AGE],
        ("", "secrets") => vec![
            NAME,
            col("Type", "string", "", "Used to facilitate programmatic handling of secret data."),
            col("Data", "string", "", "Data contains the secret data."),
            AGE,
        ],
        ("", "serviceaccounts") => vec![NAME, col("Secrets", "string", "", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), AGE],
        ("", "events") => vec![
            col("Last Seen", "string", "", "Time when this Event was last observed."),
            col("Type", "string", "", "Type of this event (Normal, Warning), new types could be added in the future."),
            col("Reason", "string", "", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            col("Object", "string", "", "The object that this event is about."),
            col("Message", "string", "", "A human-readable description of the status of this operation."),
        ],
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            vec![NAME, col("Created At", "date", "", "CreationTimestamp is a timestamp representing the server time when this object was created.")]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            NAME,
            col("Role", "string", "", "Role references the role bound by this binding."),
            AGE,
            Column { priority: 1, ..col("Users", "string", "", "Users in the binding") },
            Column { priority: 1, ..col("Groups", "string", "", "Groups in the binding") },
            Column { priority: 1, ..col("ServiceAccounts", "string", "", "ServiceAccounts in the binding") },
        ],
        ("apiregistration.k8s.io", "apiservices") => vec![
            NAME,
            col("Service", "string", "", "The reference to the service that hosts this API endpoint."),
            col("Available", "string", "", "Whether this service is available."),
            AGE,
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![NAME, col("Created At", "date", "", "CreationTimestamp is a timestamp representing the server time when this object was created.")]
        }
        ("coordination.k8s.io", "leases") => vec![NAME, col("Holder", "string", "", "The holder of the lease"), AGE],
        // kube's printers for API Priority and Fairness's objects
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => vec![
            NAME,
            col("PriorityLevel", "string", "", "`name` is the name of the priority level configuration being referenced Required."),
            col("MatchingPrecedence", "string", "", "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request."),
            col("DistinguisherMethod", "string", "", "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema."),
            AGE,
            col("MissingPL", "string", "", "references a broken or non-existent PriorityLevelConfiguration"),
        ],
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => vec![
            NAME,
            col("Type", "string", "", "`type` indicates whether this priority level is subject to limitation on request execution."),
            col("NominalConcurrencyShares", "string", "", "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level."),
            col("Queues", "string", "", "`queues` is the number of queues for this priority level."),
            col("HandSize", "string", "", "`handSize` is a small positive number that configures the shuffle sharding of requests into queues."),
            col("QueueLengthLimit", "string", "", "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time."),
            AGE,
        ],
        _ => vec![NAME, AGE],
    }
}

/// kube's `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn age(ts: &Value) -> String {
    match ts.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn count(v: &Value) -> usize {
    v.as_object().map(|m| m.len()).or_else(|| v.as_array().map(|a| a.len())).unwrap_or(0)
}

fn subjects(o: &Value, kind: &str) -> String {
    let names: Vec<String> = o["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["kind"] == kind)
        .map(|s| match (kind, s["namespace"].as_str()) {
            ("ServiceAccount", Some(ns)) => format!("{ns}/{}", s["name"].as_str().unwrap_or("")),
            _ => s["name"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    names.join(", ")
}

fn cell(name: &str, o: &Value) -> Value {
    let m = &o["metadata"];
    let v = match name {
        "Name" => m["name"].clone(),
        "Age" => json!(age(&m["creationTimestamp"])),
        "Created At" => m["creationTimestamp"].clone(),
        "Status" => json!(if m.get("deletionTimestamp").is_some() {
            "Terminating"
        } else {
            o["status"]["phase"].as_str().unwrap_or("Active")
        }),
        "Data" => json!(count(&o["data"]) + count(&o["binaryData"]) + count(&o["stringData"])),
        // a PriorityLevelConfiguration's spec.type; a Secret's type
        "Type" if o["spec"]["type"].is_string() => o["spec"]["type"].clone(),
        "Type" => o["type"].clone(),
        "PriorityLevel" => o["spec"]["priorityLevelConfiguration"]["name"].clone(),
        "MatchingPrecedence" => o["spec"]["matchingPrecedence"].clone(),
        "DistinguisherMethod" => json!(o["spec"]["distinguisherMethod"]["type"].as_str().unwrap_or("<none>")),
        "MissingPL" => {
            let dangling = o["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Dangling"))
                .and_then(|c| c["status"].as_str());
            json!(dangling.unwrap_or("?"))
        }
        "NominalConcurrencyShares" => match o["spec"]["limited"].as_object() {
            Some(l) => l.get("nominalConcurrencyShares").cloned().unwrap_or(Value::Null),
            None => json!("<none>"),
        },
        "Queues" | "HandSize" | "QueueLengthLimit" => {
            let field = match name {
                "Queues" => "queues",
                "HandSize" => "handSize",
                _ => "queueLengthLimit",
            };
            match o["spec"]["limited"]["limitResponse"]["queuing"].get(field) {
                Some(v) => v.clone(),
                None => json!("<none>"),
            }
        }
        "Secrets" => json!(count(&o["secrets"])),
        "Last Seen" => {
            let t = [&o["lastTimestamp"], &o["eventTime"], &m["creationTimestamp"]]
                .into_iter()
                .find(|v| v.is_string())
                .cloned()
                .unwrap_or(Value::Null);
            json!(age(&t))
        }
        "Reason" => o["reason"].clone(),
        "Object" => json!(format!(
            "{}/{}",
            o["involvedObject"]["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
            o["involvedObject"]["name"].as_str().unwrap_or("")
        )),
        "Message" => o["message"].clone(),
        "Role" => json!(format!(
            "{}/{}",
            o["roleRef"]["kind"].as_str().unwrap_or(""),
            o["roleRef"]["name"].as_str().unwrap_or("")
        )),
        "Users" => json!(subjects(o, "User")),
        "Groups" => json!(subjects(o, "Group")),
        "ServiceAccounts" => json!(subjects(o, "ServiceAccount")),
        "Service" => match o["spec"]["service"].as_object() {
            Some(s) => json!(format!(
                "{}/{}",
                s.get("namespace").and_then(Value::as_str).unwrap_or(""),
                s.get("name").and_then(Value::as_str).unwrap_or("")
            )),
            None => json!("Local"),
        },
        "Available" => {
            let cond =
                o["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Available")).cloned();
            match cond {
                Some(c) if c["status"] == "True" => json!("True"),
                Some(c) => json!(format!(
                    "{} ({})",
                    c["status"].as_str().unwrap_or("Unknown"),
                    c["reason"].as_str().unwrap_or("")
                )),
                None => json!("Unknown"),
            }
        }
        "Holder" => o["spec"]["holderIdentity"].clone(),
        _ => Value::Null,
    };
    // table cells are never null in kube's printers: absent strings print empty
    if v.is_null() {
        json!("")
    } else {
        v
    }
}

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// How a resource prints as a Table: kube's printer for a built-in kind, or a custom
/// resource's printer columns. Owns what it needs, so a streamed list carries it along.
#[derive(Debug, Clone)]
pub enum Printer {
    Builtin(Vec<Column>),
    Custom(Vec<Value>),
}

impl Printer {
    pub fn of(def: &crate::store::resources::ResourceDef) -> Self {
        match &def.custom {
            Some(c) => Printer::Custom(crate::store::crd::columns::columns(&c.columns)),
            None => Printer::Builtin(columns(&def.group, &def.resource)),
        }
    }

    /// The Table's columnDefinitions.
    pub fn definitions(&self) -> Vec<Value> {
        match self {
            Printer::Builtin(cols) => cols
                .iter()
                .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority}))
                .collect(),
            Printer::Custom(cols) => crate::store::crd::columns::definitions(cols),
        }
    }

    /// The cells of `o`'s row.
    pub fn cells(&self, o: &Value) -> Vec<Value> {
        match self {
            Printer::Builtin(cols) => cols.iter().map(|c| cell(c.name, o)).collect(),
            Printer::Custom(cols) => crate::store::crd::columns::cells(cols, o),
        }
    }
}

/// One row for `o`.
pub fn row(group: &str, resource: &str, o: &Value, include: IncludeObject) -> Value {
    let cells: Vec<Value> = columns(group, resource).iter().map(|c| cell(c.name, o)).collect();
    row_of(cells, o, include)
}

/// A row of `cells` for `o`, with as much of `o` as `include` asks for.
pub fn row_of(cells: Vec<Value>, o: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => r["object"] = o.clone(),
        IncludeObject::Metadata => {
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()})
        }
    }
    // nested in a row, the object is out of `fields_v1::write_json`'s reach: its sets as trees
    if let Some(o) = r.get_mut("object") {
        crate::store::fields_v1::expand(o);
    }
    r
}

/// The Table of `items` of `def`: a custom resource's by its printer columns, a built-in
/// one's by kube's printers.
pub fn table_of<V: Borrow<Value>>(
    def: &crate::store::resources::ResourceDef,
    items: &[V],
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    let printer = Printer::of(def);
    let rows: Vec<Value> = items.iter().map(|o| row_of(printer.cells(o.borrow()), o.borrow(), include)).collect();
    envelope(&printer, list_meta, rows)
}

/// A Table with `rows` (a list writer gives none, and writes its rows in the brackets).
pub fn envelope(printer: &Printer, list_meta: Value, rows: Vec<Value>) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": printer.definitions(),
        "rows": rows,
    })
}

/// A whole Table of built-in `items`, with the list's metadata.
pub fn table<V: Borrow<Value>>(
    group: &str,
    resource: &str,
    items: &[V],
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    let printer = Printer::Builtin(columns(group, resource));
    let rows: Vec<Value> = items.iter().map(|o| row_of(printer.cells(o.borrow()), o.borrow(), include)).collect();
    envelope(&printer, list_meta, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_like_kube() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (130, "2m10s"),
            (600, "10m"),
            (7200, "120m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400, "3d"),
            (400 * 86400, "400d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn flowcontrol_rows_as_kubes_printers() {
        let fs = json!({"metadata": {"name": "d"}, "spec": {"priorityLevelConfiguration": {"name": "missing"}, "matchingPrecedence": 100},
            "status": {"conditions": [{"type": "Dangling", "status": "True"}]}});
        let t = table("flowcontrol.apiserver.k8s.io", "flowschemas", &[fs], json!({}), IncludeObject::None);
        let heads: Vec<&str> =
            t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(heads, ["Name", "PriorityLevel", "MatchingPrecedence", "DistinguisherMethod", "Age", "MissingPL"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(
            (&cells[1], &cells[2], &cells[3], &cells[5]),
            (&json!("missing"), &json!(100), &json!("<none>"), &json!("True"))
        );
        let pl = json!({"metadata": {"name": "r"}, "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 5, "limitResponse": {"type": "Reject"}}}});
        let t =
            table("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", &[pl], json!({}), IncludeObject::None);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(
            cells.as_array().unwrap()[1..6],
            [json!("Limited"), json!(5), json!("<none>"), json!("<none>"), json!("<none>")]
        );
        let ex = json!({"metadata": {"name": "exempt"}, "spec": {"type": "Exempt", "exempt": {}}});
        let t =
            table("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", &[ex], json!({}), IncludeObject::None);
        assert_eq!(t["rows"][0]["cells"][2], "<none>");
    }

    #[test]
    fn secret_and_binding_rows() {
        let s = json!({"metadata": {"name": "s", "creationTimestamp": "2020-01-01T00:00:00Z"}, "type": "Opaque", "data": {"a": "", "b": ""}});
        let t = table("", "secrets", &[s], json!({"resourceVersion": "5"}), IncludeObject::Metadata);
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 4);
        assert_eq!(t["rows"][0]["cells"][0], "s");
        assert_eq!(t["rows"][0]["cells"][1], "Opaque");
        assert_eq!(t["rows"][0]["cells"][2], 2);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "alice"}]});
        let r = row("rbac.authorization.k8s.io", "rolebindings", &rb, IncludeObject::None);
        assert_eq!(r["cells"][1], "Role/r");
        assert_eq!(r["cells"][3], "alice");
    }
}
