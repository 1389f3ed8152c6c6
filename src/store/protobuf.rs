//! `application/vnd.kubernetes.protobuf` for the built-in kinds the store serves: request
//! bodies decoded (kubectl's typed clients, e.g. `kubectl create rolebinding`, send protobuf)
//! and responses encoded (client-go asks for it first), objects, lists and watch events. The
//! envelope is `k8s\0` + runtime.Unknown{typeMeta, raw}; `raw` is read and written by a small
//! field table per kind (generated.proto's field numbers), in both directions.

use base64::Engine;
use serde_json::{json, Map, Value};

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bytes,
    Int,
    Bool,
    /// metav1.Time: {seconds, nanos} as RFC 3339 in whole seconds (a zero time: null).
    Time,
    /// metav1.MicroTime: the same, with six digits of fraction (kube's RFC3339Micro).
    MicroTime,
    /// map<string,string>
    MapStr,
    /// map<string,bytes> (base64 in JSON)
    MapBytes,
    /// bytes holding JSON (FieldsV1's raw)
    RawJson,
    /// a FieldsV1 message, whose JSON form is its raw JSON itself
    Fields,
    Msg(fn() -> Schema),
}

/// (field number, JSON name, kind, repeated)
type Schema = &'static [(u32, &'static str, Kind, bool)];

use Kind::*;

fn object_meta() -> Schema {
    &[
        (1, "name", Str, false),
        (2, "generateName", Str, false),
        (3, "namespace", Str, false),
        (5, "uid", Str, false),
        (6, "resourceVersion", Str, false),
        (7, "generation", Int, false),
        (8, "creationTimestamp", Time, false),
        (9, "deletionTimestamp", Time, false),
        (10, "deletionGracePeriodSeconds", Int, false),
        (11, "labels", MapStr, false),
        (12, "annotations", MapStr, false),
        (13, "ownerReferences", Msg(owner_reference), true),
        (14, "finalizers", Str, true),
        (17, "managedFields", Msg(managed_fields), true),
    ]
}

fn owner_reference() -> Schema {
    &[
        (1, "kind", Str, false),
        (3, "name", Str, false),
        (4, "uid", Str, false),
        (5, "apiVersion", Str, false),
        (6, "controller", Bool, false),
        (7, "blockOwnerDeletion", Bool, false),
    ]
}

fn fields_v1() -> Schema {
    &[(1, "Raw", RawJson, false)]
}

fn managed_fields() -> Schema {
    &[
        (1, "manager", Str, false),
        (2, "operation", Str, false),
        (3, "apiVersion", Str, false),
        (4, "time", Time, false),
        (6, "fieldsType", Str, false),
        (7, "fieldsV1", Fields, false),
        (8, "subresource", Str, false),
    ]
}

fn policy_rule() -> Schema {
    &[
        (1, "verbs", Str, true),
        (2, "apiGroups", Str, true),
        (3, "resources", Str, true),
        (4, "resourceNames", Str, true),
        (5, "nonResourceURLs", Str, true),
    ]
}

fn subject() -> Schema {
    &[(1, "kind", Str, false), (2, "apiGroup", Str, false), (3, "name", Str, false), (4, "namespace", Str, false)]
}

fn role_ref() -> Schema {
    &[(1, "apiGroup", Str, false), (2, "kind", Str, false), (3, "name", Str, false)]
}

fn label_selector_requirement() -> Schema {
    &[(1, "key", Str, false), (2, "operator", Str, false), (3, "values", Str, true)]
}

fn label_selector() -> Schema {
    &[(1, "matchLabels", MapStr, false), (2, "matchExpressions", Msg(label_selector_requirement), true)]
}

fn aggregation_rule() -> Schema {
    &[(1, "clusterRoleSelectors", Msg(label_selector), true)]
}

fn object_reference() -> Schema {
    &[
        (1, "kind", Str, false),
        (2, "namespace", Str, false),
        (3, "name", Str, false),
        (4, "uid", Str, false),
        (5, "apiVersion", Str, false),
        (6, "resourceVersion", Str, false),
        (7, "fieldPath", Str, false),
    ]
}

fn local_object_reference() -> Schema {
    &[(1, "name", Str, false)]
}

fn namespace_spec() -> Schema {
    &[(1, "finalizers", Str, true)]
}

fn namespace_status() -> Schema {
    &[(1, "phase", Str, false), (2, "conditions", Msg(namespace_condition), true)]
}

fn namespace_condition() -> Schema {
    &[
        (1, "type", Str, false),
        (2, "status", Str, false),
        (4, "lastTransitionTime", Time, false),
        (5, "reason", Str, false),
        (6, "message", Str, false),
    ]
}

fn event_source() -> Schema {
    &[(1, "component", Str, false), (2, "host", Str, false)]
}

fn event_series() -> Schema {
    &[(1, "count", Int, false), (2, "lastObservedTime", MicroTime, false)]
}

fn list_meta() -> Schema {
    &[
        (1, "selfLink", Str, false),
        (2, "resourceVersion", Str, false),
        (3, "continue", Str, false),
        (4, "remainingItemCount", Int, false),
    ]
}

fn status_cause() -> Schema {
    &[(1, "reason", Str, false), (2, "message", Str, false), (3, "field", Str, false)]
}

fn status_details() -> Schema {
    &[
        (1, "name", Str, false),
        (2, "group", Str, false),
        (3, "kind", Str, false),
        (4, "causes", Msg(status_cause), true),
        (5, "retryAfterSeconds", Int, false),
        (6, "uid", Str, false),
    ]
}

fn lease_spec() -> Schema {
    &[
        (1, "holderIdentity", Str, false),
        (2, "leaseDurationSeconds", Int, false),
        (3, "acquireTime", MicroTime, false),
        (4, "renewTime", MicroTime, false),
        (5, "leaseTransitions", Int, false),
        (6, "strategy", Str, false),
        (7, "preferredHolder", Str, false),
    ]
}

/// The top-level field table of `kind`, if it is one this decoder knows.
/// events.k8s.io/v1's Event: another message than core's under the same kind.
fn events_v1_event() -> Schema {
    &[
        (1, "metadata", Msg(object_meta), false),
        (2, "eventTime", MicroTime, false),
        (3, "series", Msg(event_series), false),
        (4, "reportingController", Str, false),
        (5, "reportingInstance", Str, false),
        (6, "action", Str, false),
        (7, "reason", Str, false),
        (8, "regarding", Msg(object_reference), false),
        (9, "related", Msg(object_reference), false),
        (10, "note", Str, false),
        (11, "type", Str, false),
        (12, "deprecatedSource", Msg(event_source), false),
        (13, "deprecatedFirstTimestamp", Time, false),
        (14, "deprecatedLastTimestamp", Time, false),
        (15, "deprecatedCount", Int, false),
    ]
}

fn preconditions() -> Schema {
    &[(1, "uid", Str, false), (2, "resourceVersion", Str, false)]
}

fn token_request_spec() -> Schema {
    &[
        (1, "audiences", Str, true),
        (4, "expirationSeconds", Int, false),
        (3, "boundObjectRef", Msg(bound_object_reference), false),
    ]
}

fn bound_object_reference() -> Schema {
    &[(1, "kind", Str, false), (2, "apiVersion", Str, false), (3, "name", Str, false), (4, "uid", Str, false)]
}

fn token_request_status() -> Schema {
    &[(1, "token", Str, false), (2, "expirationTimestamp", Time, false)]
}

fn schema_of(kind: &str) -> Option<Schema> {
    Some(match kind {
        // what a typed client's Delete sends in its content type (meta.k8s.io/v1)
        "DeleteOptions" => &[
            (1, "gracePeriodSeconds", Int, false),
            (2, "preconditions", Msg(preconditions), false),
            (3, "orphanDependents", Bool, false),
            (4, "propagationPolicy", Str, false),
            (5, "dryRun", Str, true),
            (6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool, false),
        ],
        // the kubelet asks for projected tokens in protobuf
        "TokenRequest" => &[
            (1, "metadata", Msg(object_meta), false),
            (2, "spec", Msg(token_request_spec), false),
            (3, "status", Msg(token_request_status), false),
        ],
        "ConfigMap" => &[
            (1, "metadata", Msg(object_meta), false),
            (2, "data", MapStr, false),
            (3, "binaryData", MapBytes, false),
            (4, "immutable", Bool, false),
        ],
        "Secret" => &[
            (1, "metadata", Msg(object_meta), false),
            (2, "data", MapBytes, false),
            (3, "type", Str, false),
            (4, "stringData", MapStr, false),
            (5, "immutable", Bool, false),
        ],
        "Namespace" => &[
            (1, "metadata", Msg(object_meta), false),
            (2, "spec", Msg(namespace_spec), false),
            (3, "status", Msg(namespace_status), false),
        ],
        "ServiceAccount" => &[
            (1, "metadata", Msg(object_meta), false),
            (2, "secrets", Msg(object_reference), true),
            (3, "imagePullSecrets", Msg(local_object_reference), true),
            (4, "automountServiceAccountToken", Bool, false),
        ],
        "Role" => &[(1, "metadata", Msg(object_meta), false), (2, "rules", Msg(policy_rule), true)],
        "ClusterRole" => &[
            (1, "metadata", Msg(object_meta), false),
            (2, "rules", Msg(policy_rule), true),
            (3, "aggregationRule", Msg(aggregation_rule), false),
        ],
        "RoleBinding" | "ClusterRoleBinding" => &[
            (1, "metadata", Msg(object_meta), false),
            (2, "subjects", Msg(subject), true),
            (3, "roleRef", Msg(role_ref), false),
        ],
        "Lease" => &[(1, "metadata", Msg(object_meta), false), (2, "spec", Msg(lease_spec), false)],
        "Event" => &[
            (1, "metadata", Msg(object_meta), false),
            (2, "involvedObject", Msg(object_reference), false),
            (3, "reason", Str, false),
            (4, "message", Str, false),
            (5, "source", Msg(event_source), false),
            (6, "firstTimestamp", Time, false),
            (7, "lastTimestamp", Time, false),
            (8, "count", Int, false),
            (9, "type", Str, false),
            (10, "eventTime", MicroTime, false),
            (11, "series", Msg(event_series), false),
            (12, "action", Str, false),
            (13, "related", Msg(object_reference), false),
            (14, "reportingComponent", Str, false),
            (15, "reportingInstance", Str, false),
        ],
        "Status" => &[
            (1, "metadata", Msg(list_meta), false),
            (2, "status", Str, false),
            (3, "message", Str, false),
            (4, "reason", Str, false),
            (5, "details", Msg(status_details), false),
            (6, "code", Int, false),
        ],
        _ => return None,
    })
}

fn unknown() -> Schema {
    &[(1, "typeMeta", Msg(type_meta), false), (2, "raw", Bytes, false)]
}

fn type_meta() -> Schema {
    &[(1, "apiVersion", Str, false), (2, "kind", Str, false)]
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()? as usize;
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or("truncated field")?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            w => Err(format!("unsupported wire type {w}")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.pos + n > self.buf.len() {
            return Err("truncated field".into());
        }
        self.pos += n;
        Ok(())
    }
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in string field".to_string())
}

/// A Time or MicroTime message as kube's JSON writes it: whole seconds, or (`micro`) six
/// digits of fraction; an empty message is Go's zero time, which is null.
fn time(b: &[u8], micro: bool) -> Result<Value, String> {
    const TIME: Schema = &[(1, "seconds", Int, false), (2, "nanos", Int, false)];
    let m = message(b, TIME)?;
    let (secs, nanos) = (m.get("seconds").and_then(Value::as_i64), m.get("nanos").and_then(Value::as_i64));
    if secs.unwrap_or(0) == 0 && nanos.unwrap_or(0) == 0 {
        return Ok(Value::Null);
    }
    let nanos = if micro { nanos.unwrap_or(0).clamp(0, 999_999_999) as u32 } else { 0 };
    let t = chrono::DateTime::from_timestamp(secs.unwrap_or(0), nanos).ok_or("timestamp out of range")?;
    let format = if micro { "%Y-%m-%dT%H:%M:%S%.6fZ" } else { "%Y-%m-%dT%H:%M:%SZ" };
    Ok(json!(t.format(format).to_string()))
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    const STR: Schema = &[(1, "k", Str, false), (2, "v", Str, false)];
    const BYTES: Schema = &[(1, "k", Str, false), (2, "v", Bytes, false)];
    let m = message(b, if bytes_value { BYTES } else { STR })?;
    let k = m.get("k").and_then(Value::as_str).unwrap_or("").to_string();
    Ok((k, m.get("v").cloned().unwrap_or_else(|| json!(""))))
}

thread_local! {
    /// The values a body being decoded may still have (`decode` sets it): a protobuf body is
    /// held to the bound a JSON one is (`MAX_JSON_VALUES`), or 3 MiB of empty repeated fields
    /// builds a tree of millions of values.
    static VALUES_LEFT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Takes `n` values from the body's bound, or refuses the body as a JSON one past it is.
fn spend_values(n: usize) -> Result<(), String> {
    let left = VALUES_LEFT.get();
    if n > left {
        return Err(format!("protobuf: document has more than {} values", crate::api::decode::MAX_JSON_VALUES));
    }
    VALUES_LEFT.set(left - n);
    Ok(())
}

fn message(buf: &[u8], schema: Schema) -> Result<Map<String, Value>, String> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Map::new();
    while r.pos < buf.len() {
        spend_values(1)?;
        let tag = r.varint()?;
        let (field, wire) = ((tag >> 3) as u32, tag & 7);
        let Some(&(_, name, kind, repeated)) = schema.iter().find(|(n, ..)| *n == field) else {
            r.skip(wire)?;
            continue;
        };
        let value = match kind {
            Int => json!(r.varint()? as i64),
            Bool => json!(r.varint()? != 0),
            // Go's protobuf writes a struct's empty string, its JSON omits it where the field
            // says omitempty: an empty one is read as null, which the typed decoding turns into
            // what Go's JSON would hold (nothing, or "" for a field without omitempty)
            Str if !repeated => match text(r.bytes()?)? {
                s if s.is_empty() => Value::Null,
                s => json!(s),
            },
            Str => json!(text(r.bytes()?)?),
            Bytes => json!(base64::engine::general_purpose::STANDARD.encode(r.bytes()?)),
            Time => time(r.bytes()?, false)?,
            MicroTime => time(r.bytes()?, true)?,
            RawJson => {
                let v = crate::api::decode::json(r.bytes()?).map_err(|e| format!("invalid JSON in {name}: {e}"))?;
                // (its values count against the body's bound as the message's own do)
                spend_values(crate::api::decode::value_count(&v))?;
                v
            }
            Fields => message(r.bytes()?, fields_v1())?.remove("Raw").unwrap_or_else(|| json!({})),
            Msg(s) => Value::Object(message(r.bytes()?, s())?),
            MapStr | MapBytes => {
                let (k, v) = map_entry(r.bytes()?, matches!(kind, MapBytes))?;
                let slot = out.entry(name).or_insert_with(|| json!({}));
                slot[k.as_str()] = v;
                continue;
            }
        };
        if repeated {
            match out.entry(name).or_insert_with(|| json!([])) {
                Value::Array(a) => a.push(value),
                _ => return Err(format!("field {name} repeated and singular")),
            }
        } else {
            out.insert(name.to_string(), value);
        }
    }
    Ok(out)
}

/// Decodes a kube protobuf body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    VALUES_LEFT.set(crate::api::decode::MAX_JSON_VALUES);
    let decoded = decode_bounded(body);
    VALUES_LEFT.set(usize::MAX);
    decoded
}

fn decode_bounded(body: &[u8]) -> Result<Value, String> {
    let rest = body.strip_prefix(b"k8s\x00").ok_or("missing the k8s protobuf envelope")?;
    let env = message(rest, unknown())?;
    let kind = env.get("typeMeta").and_then(|t| t.get("kind")).and_then(Value::as_str).unwrap_or("").to_string();
    let api_version =
        env.get("typeMeta").and_then(|t| t.get("apiVersion")).and_then(Value::as_str).unwrap_or("").to_string();
    let schema = match (kind.as_str(), api_version.starts_with("events.k8s.io/")) {
        ("Event", true) => Some(events_v1_event()),
        _ => schema_of(&kind),
    };
    let schema = schema.ok_or_else(|| format!("protobuf is not supported for kind {kind:?}"))?;
    let raw = env.get("raw").and_then(Value::as_str).unwrap_or("");
    let raw = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|e| e.to_string())?;
    let mut obj = message(&raw, schema)?;
    obj.insert("kind".into(), json!(kind));
    obj.insert("apiVersion".into(), json!(api_version));
    Ok(Value::Object(obj))
}

/// Whether responses of `kind` can be protobuf (kube's built-in kinds this module knows).
pub fn supports(kind: &str) -> bool {
    schema_of(kind).is_some()
}

/// Protobuf output, written into one buffer: a length-delimited field's body is written in
/// place and its length put in front of it afterwards (no buffer per nested message).
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u64) {
        self.varint(u64::from(field) << 3 | wire);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.tag(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// Field `field`, length-delimited, its body what `body` writes.
    fn delimited<E>(&mut self, field: u32, body: impl FnOnce(&mut Writer) -> Result<(), E>) -> Result<(), E> {
        self.tag(field, 2);
        let start = self.0.len();
        body(self)?;
        let mut len = Writer(Vec::with_capacity(10));
        len.varint((self.0.len() - start) as u64);
        self.0.splice(start..start, len.0);
        Ok(())
    }
}

fn time_message(w: &mut Writer, v: &Value, name: &str) -> Result<(), String> {
    let s = v.as_str().ok_or_else(|| format!("{name} is not a time"))?;
    let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| format!("{name}: {e}"))?;
    if t.timestamp() != 0 {
        w.tag(1, 0);
        w.varint(t.timestamp() as u64);
    }
    if t.timestamp_subsec_nanos() != 0 {
        w.tag(2, 0);
        w.varint(u64::from(t.timestamp_subsec_nanos()));
    }
    Ok(())
}

fn json_bytes(w: &mut Writer, v: &Value) -> Result<(), String> {
    serde_json::to_writer(&mut w.0, v).map_err(|e| e.to_string())
}

fn encode_value(w: &mut Writer, field: u32, name: &str, kind: Kind, v: &Value) -> Result<(), String> {
    let wrong = || format!("field {name} has an unexpected type");
    match kind {
        Str => w.bytes(field, v.as_str().ok_or_else(wrong)?.as_bytes()),
        Bytes => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().ok_or_else(wrong)?)
                .map_err(|e| e.to_string())?;
            w.bytes(field, &raw)
        }
        Int => {
            w.tag(field, 0);
            w.varint(v.as_i64().ok_or_else(wrong)? as u64)
        }
        Bool => {
            w.tag(field, 0);
            w.varint(u64::from(v.as_bool().ok_or_else(wrong)?))
        }
        Time | MicroTime => w.delimited(field, |w| time_message(w, v, name))?,
        RawJson => w.delimited(field, |w| json_bytes(w, v))?,
        Fields => w.delimited(field, |w| {
            w.delimited(1, |w| {
                crate::store::fields_v1::write_set(&mut w.0, v);
                Ok::<(), String>(())
            })
        })?,
        Msg(s) => w.delimited(field, |w| encode_message(w, v, s()))?,
        MapStr | MapBytes => {
            for (k, x) in v.as_object().ok_or_else(wrong)? {
                w.delimited(field, |e| {
                    e.bytes(1, k.as_bytes());
                    encode_value(e, 2, name, if matches!(kind, MapBytes) { Bytes } else { Str }, x)
                })?;
            }
        }
    }
    Ok(())
}

/// The most fields a message table has (`schemas_fit` checks every table).
const MAX_FIELDS: usize = 32;

/// One message from its JSON form, in field order; an error for a field the table does not
/// have (a response must never lose what the object holds).
fn encode_message(w: &mut Writer, v: &Value, schema: Schema) -> Result<(), String> {
    let obj = v.as_object().ok_or("not an object")?;
    // each of the object's fields in its table slot: one pass over the object's few keys, no
    // lookup per field of the table
    let mut slots: [Option<&Value>; MAX_FIELDS] = [None; MAX_FIELDS];
    for (k, v) in obj {
        match schema.iter().position(|(_, n, ..)| n == k) {
            Some(i) => slots[i] = Some(v),
            None if k == "kind" || k == "apiVersion" => {}
            None => return Err(format!("field {k} has no protobuf encoding here")),
        }
    }
    for (&(field, name, kind, repeated), v) in schema.iter().zip(slots) {
        let Some(v) = v.filter(|v| !v.is_null()) else { continue };
        if repeated {
            for x in v.as_array().ok_or_else(|| format!("field {name} is not a list"))? {
                encode_value(w, field, name, kind, x)?;
            }
        } else {
            encode_value(w, field, name, kind, v)?;
        }
    }
    Ok(())
}

/// `k8s\0` + runtime.Unknown{typeMeta, raw: what `raw` writes}.
fn envelope(
    api_version: &str,
    kind: &str,
    raw: impl FnOnce(&mut Writer) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    let mut w = Writer(b"k8s\x00".to_vec());
    w.delimited(1, |tm| {
        tm.bytes(1, api_version.as_bytes());
        tm.bytes(2, kind.as_bytes());
        Ok::<_, String>(())
    })?;
    w.delimited(2, raw)?;
    Ok(w.0)
}

/// An object (its `kind` and `apiVersion` set) as a protobuf body.
pub fn encode(obj: &Value) -> Result<Vec<u8>, String> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let schema = schema_of(kind).ok_or_else(|| format!("protobuf is not supported for kind {kind:?}"))?;
    envelope(obj["apiVersion"].as_str().unwrap_or_default(), kind, |w| encode_message(w, obj, schema))
}

/// A `<Kind>List` of `item_kind` objects as a protobuf body.
pub fn encode_list<V: std::borrow::Borrow<Value>>(
    api_version: &str,
    item_kind: &str,
    meta: &Value,
    items: &[V],
) -> Result<Vec<u8>, String> {
    let schema = schema_of(item_kind).ok_or_else(|| format!("protobuf is not supported for kind {item_kind:?}"))?;
    envelope(api_version, &format!("{item_kind}List"), |w| {
        w.delimited(1, |w| encode_message(w, meta, list_meta()))?;
        for item in items {
            w.delimited(2, |w| encode_message(w, item.borrow(), schema))?;
        }
        Ok(())
    })
}

/// One watch event in kube's protobuf stream framing: a 4-byte big-endian length, then
/// `k8s\0` + Unknown{WatchEvent{type, object: RawExtension{raw: the object's own envelope}}}.
/// One watch frame: its length, then a bare `WatchEvent` (kube's stream serializer is the raw
/// one, with no `k8s\0` envelope, as client-go's watch decoder reads it), whose object is in
/// its own envelope.
pub fn encode_watch_event(_api_version: &str, ty: &str, obj: &Value) -> Result<Vec<u8>, String> {
    let object = encode(obj)?;
    let mut ev = Writer(Vec::with_capacity(object.len() + 32));
    ev.bytes(1, ty.as_bytes());
    ev.delimited(2, |ext| {
        ext.bytes(1, &object);
        Ok::<_, String>(())
    })?;
    let mut framed = (ev.0.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&ev.0);
    Ok(framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_it_decodes() {
        let cm = json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "x", "namespace": "d", "labels": {"a": "b"}, "creationTimestamp": "2026-01-02T03:04:05Z",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u", "controller": true}],
                         "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]},
            "data": {"k": "v"}, "binaryData": {"b": "AAEC"},
        });
        assert_eq!(decode(&encode(&cm).unwrap()).unwrap(), cm);
        let mut odd = cm.clone();
        odd["spec"] = json!({});
        assert!(encode(&odd).is_err(), "a field without an encoding is never dropped");
        // as many values as a JSON body may have, and no more: 1.4 million empty
        // ownerReferences (2.8 MB) are refused as they are read
        let mut meta = Writer(Vec::new());
        meta.bytes(1, b"big");
        for _ in 0..1_400_000 {
            meta.bytes(13, b"");
        }
        let mut obj = Writer(Vec::new());
        obj.bytes(1, &meta.0);
        let body = envelope("v1", "ConfigMap", |w| {
            w.0.extend_from_slice(&obj.0);
            Ok(())
        })
        .unwrap();
        assert_eq!(decode(&body).unwrap_err(), "protobuf: document has more than 500000 values");
        assert_eq!(decode(&encode(&cm).unwrap()).unwrap(), cm, "the bound is reset per body");
        // what typed clients send in protobuf: a Delete's options, a TokenRequest
        let delete = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": "Background",
            "preconditions": {"uid": "u-1"}, "dryRun": ["All"]});
        assert_eq!(decode(&encode(&delete).unwrap()).unwrap(), delete);
        let token = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
            "spec": {"audiences": ["api"], "expirationSeconds": 3600, "boundObjectRef": {"kind": "Secret", "name": "s"}}});
        let mut spec = Writer(Vec::new());
        spec.bytes(1, b"api");
        spec.varint((4 << 3) as u64);
        spec.varint(3600);
        let body = envelope("authentication.k8s.io/v1", "TokenRequest", |w| {
            w.delimited(1, |_| Ok::<_, String>(()))?;
            w.delimited(2, |s| {
                s.0.extend_from_slice(&spec.0);
                s.delimited(3, |b| {
                    b.bytes(1, b"Secret");
                    b.bytes(3, b"s");
                    Ok::<_, String>(())
                })
            })
        })
        .unwrap();
        assert_eq!(decode(&body).unwrap(), token, "expirationSeconds is field 4, as kube's proto numbers it");
        // a MicroTime keeps its microseconds; an empty Time is Go's zero time: null
        let body_lease = envelope("coordination.k8s.io/v1", "Lease", |w| {
            w.delimited(1, |m| {
                m.bytes(1, b"l");
                Ok::<_, String>(())
            })?;
            w.delimited(2, |spec| {
                spec.delimited(4, |t| {
                    t.tag(1, 0);
                    t.varint(1_796_000_000);
                    t.tag(2, 0);
                    t.varint(123_456_000);
                    Ok::<_, String>(())
                })?;
                spec.delimited(3, |_| Ok::<_, String>(()))
            })
        })
        .unwrap();
        // events.k8s.io's Event is read with its own field numbers, not core's
        let body = envelope("events.k8s.io/v1", "Event", |w| {
            w.bytes(4, b"ctl");
            w.bytes(10, b"a note");
            Ok::<_, String>(())
        })
        .unwrap();
        let ev = decode(&body).unwrap();
        assert_eq!((ev["reportingController"].as_str(), ev["note"].as_str()), (Some("ctl"), Some("a note")));
        let lease = decode(&body_lease).unwrap();
        assert_eq!(lease["spec"]["renewTime"], "2026-11-30T00:53:20.123456Z");
        assert_eq!(lease["spec"]["acquireTime"], Value::Null);
        let ev = encode_watch_event("v1", "ADDED", &cm).unwrap();
        assert_eq!(u32::from_be_bytes(ev[..4].try_into().unwrap()) as usize, ev.len() - 4);
        // a bare WatchEvent: field 1 its type, field 2 a RawExtension of the enveloped object
        assert_eq!(&ev[4..11], b"\x0a\x05ADDED");
        assert!(!ev[4..].starts_with(b"k8s\x00"));
        assert!(ev.windows(4).any(|w| w == b"k8s\x00"), "the object keeps its envelope");
    }

    /// The encoding as it was first written, a buffer per nested message: the single-buffer
    /// writer must give the same bytes.
    fn reference(v: &Value, schema: Schema) -> Vec<u8> {
        fn value(w: &mut Writer, field: u32, kind: Kind, v: &Value) {
            match kind {
                Str => w.bytes(field, v.as_str().unwrap().as_bytes()),
                Bytes => {
                    w.bytes(field, &base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap())
                }
                Int | Bool => {
                    w.tag(field, 0);
                    w.varint(v.as_i64().unwrap_or_else(|| i64::from(v.as_bool().unwrap())) as u64)
                }
                Time | MicroTime => {
                    let mut t = Writer(Vec::new());
                    time_message(&mut t, v, "t").unwrap();
                    w.bytes(field, &t.0)
                }
                RawJson => w.bytes(field, &serde_json::to_vec(v).unwrap()),
                Fields => {
                    let mut m = Writer(Vec::new());
                    m.bytes(1, &serde_json::to_vec(v).unwrap());
                    w.bytes(field, &m.0)
                }
                Msg(s) => w.bytes(field, &reference(v, s())),
                MapStr | MapBytes => {
                    for (k, x) in v.as_object().unwrap() {
                        let mut e = Writer(Vec::new());
                        e.bytes(1, k.as_bytes());
                        value(&mut e, 2, if matches!(kind, MapBytes) { Bytes } else { Str }, x);
                        w.bytes(field, &e.0);
                    }
                }
            }
        }
        let mut w = Writer(Vec::new());
        for &(field, name, kind, repeated) in schema {
            let Some(v) = v.get(name).filter(|v| !v.is_null()) else { continue };
            match v.as_array().filter(|_| repeated) {
                Some(xs) => xs.iter().for_each(|x| value(&mut w, field, kind, x)),
                None => value(&mut w, field, kind, v),
            }
        }
        w.0
    }

    #[test]
    fn schemas_fit() {
        fn check(s: Schema, depth: usize) {
            assert!(s.len() <= MAX_FIELDS && depth < 12);
            for &(_, _, kind, _) in s {
                if let Msg(f) = kind {
                    check(f(), depth + 1);
                }
            }
        }
        let kinds = ["ConfigMap", "Secret", "Namespace", "ServiceAccount", "Role", "ClusterRole", "RoleBinding"];
        for kind in kinds.into_iter().chain(["ClusterRoleBinding", "Lease", "Event", "Status"]) {
            check(schema_of(kind).unwrap(), 0);
        }
        check(list_meta(), 0);
    }

    #[test]
    fn one_buffer_writes_what_a_buffer_per_message_wrote() {
        let long = "x".repeat(300); // lengths of two varint bytes
        let cm = json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "x", "namespace": "d", "labels": {"a": "b", "c": long}, "annotations": {"n": ""},
                         "creationTimestamp": "2026-01-02T03:04:05Z", "deletionTimestamp": "1970-01-01T00:00:00.5Z",
                         "generation": 3, "finalizers": ["f1", "f2"], "uid": "u",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u", "controller": true}],
                         "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                                            "time": "2026-01-02T03:04:05Z", "fieldsV1": {"f:data": {"f:k": {}}}}]},
            "data": {"k": long, "e": "\u{e9}"}, "binaryData": {"b": "AAEC"}, "immutable": false,
        });
        let rb = json!({"kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "rb"},
            "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}, {"kind": "Group", "name": "g"}],
            "roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"}});
        for o in [&cm, &rb] {
            let kind = o["kind"].as_str().unwrap();
            let raw = reference(o, schema_of(kind).unwrap());
            let mut tm = Writer(Vec::new());
            tm.bytes(1, o["apiVersion"].as_str().unwrap().as_bytes());
            tm.bytes(2, kind.as_bytes());
            let mut want = Writer(b"k8s\x00".to_vec());
            want.bytes(1, &tm.0);
            want.bytes(2, &raw);
            assert_eq!(encode(o).unwrap(), want.0, "{kind}");
        }
        let items = vec![cm.clone(); 40];
        let meta = json!({"resourceVersion": "12", "continue": "c"});
        let mut list = Writer(Vec::new());
        list.bytes(1, &reference(&meta, list_meta()));
        for i in &items {
            list.bytes(2, &reference(i, schema_of("ConfigMap").unwrap()));
        }
        let body = encode_list("v1", "ConfigMap", &meta, &items).unwrap();
        assert!(body.ends_with(&list.0) && list.0.len() > 16384, "a list of three-byte lengths");
        // a field without an encoding, however deep, is an error
        let mut odd = cm.clone();
        odd["metadata"]["ownerReferences"][0]["bogus"] = json!(1);
        assert!(encode(&odd).unwrap_err().contains("bogus"));
    }

    fn field(n: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_rolebinding() {
        let meta =
            [field(1, b"rb"), field(3, b"default"), field(11, &[field(1, b"app"), field(2, b"x")].concat())].concat();
        let subj = [field(1, b"User"), field(2, b"rbac.authorization.k8s.io"), field(3, b"alice")].concat();
        let rr = [field(1, b"rbac.authorization.k8s.io"), field(2, b"Role"), field(3, b"reader")].concat();
        let raw = [field(1, &meta), field(2, &subj), field(3, &rr)].concat();
        let tm = [field(1, b"rbac.authorization.k8s.io/v1"), field(2, b"RoleBinding")].concat();
        let mut body = b"k8s\x00".to_vec();
        body.extend([field(1, &tm), field(2, &raw)].concat());
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "RoleBinding");
        assert_eq!(v["metadata"]["name"], "rb");
        assert_eq!(v["metadata"]["labels"]["app"], "x");
        assert_eq!(v["subjects"][0]["name"], "alice");
        assert_eq!(v["roleRef"]["name"], "reader");
        assert!(decode(b"nope").is_err());
        assert!(decode(&body[..body.len() - 3]).is_err(), "truncated input is an error, not a panic");
    }
}
