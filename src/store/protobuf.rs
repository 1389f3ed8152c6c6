//! Decoding of `application/vnd.kubernetes.protobuf` request bodies for the built-in kinds
//! the store serves: kubectl's typed clients (e.g. `kubectl create rolebinding`) send
//! protobuf. The envelope is `k8s\0` + runtime.Unknown{typeMeta, raw}; `raw` is decoded by
//! a small field table per kind (generated.proto's field numbers) into the JSON form.

use base64::Engine;
use serde_json::{json, Map, Value};

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bytes,
    Int,
    Bool,
    /// metav1.Time / MicroTime: {seconds, nanos} as RFC 3339.
    Time,
    /// map<string,string>
    MapStr,
    /// map<string,bytes> (base64 in JSON)
    MapBytes,
    /// bytes holding JSON (FieldsV1's raw)
    RawJson,
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
        (7, "fieldsV1", Msg(fields_v1), false),
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
    &[(1, "phase", Str, false)]
}

fn lease_spec() -> Schema {
    &[
        (1, "holderIdentity", Str, false),
        (2, "leaseDurationSeconds", Int, false),
        (3, "acquireTime", Time, false),
        (4, "renewTime", Time, false),
        (5, "leaseTransitions", Int, false),
        (6, "strategy", Str, false),
        (7, "preferredHolder", Str, false),
    ]
}

/// The top-level field table of `kind`, if it is one this decoder knows.
fn schema_of(kind: &str) -> Option<Schema> {
    Some(match kind {
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

fn time(b: &[u8]) -> Result<Value, String> {
    const TIME: Schema = &[(1, "seconds", Int, false), (2, "nanos", Int, false)];
    let m = message(b, TIME)?;
    let secs = m.get("seconds").and_then(Value::as_i64).unwrap_or(0);
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or("timestamp out of range")?;
    Ok(json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    const STR: Schema = &[(1, "k", Str, false), (2, "v", Str, false)];
    const BYTES: Schema = &[(1, "k", Str, false), (2, "v", Bytes, false)];
    let m = message(b, if bytes_value { BYTES } else { STR })?;
    let k = m.get("k").and_then(Value::as_str).unwrap_or("").to_string();
    Ok((k, m.get("v").cloned().unwrap_or_else(|| json!(""))))
}

fn message(buf: &[u8], schema: Schema) -> Result<Map<String, Value>, String> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Map::new();
    while r.pos < buf.len() {
        let tag = r.varint()?;
        let (field, wire) = ((tag >> 3) as u32, tag & 7);
        let Some(&(_, name, kind, repeated)) = schema.iter().find(|(n, ..)| *n == field) else {
            r.skip(wire)?;
            continue;
        };
        let value = match kind {
            Int => json!(r.varint()? as i64),
            Bool => json!(r.varint()? != 0),
            Str => json!(text(r.bytes()?)?),
            Bytes => json!(base64::engine::general_purpose::STANDARD.encode(r.bytes()?)),
            Time => time(r.bytes()?)?,
            RawJson => crate::api::decode::json(r.bytes()?).map_err(|e| format!("invalid JSON in {name}: {e}"))?,
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
    let rest = body.strip_prefix(b"k8s\x00").ok_or("missing the k8s protobuf envelope")?;
    let env = message(rest, unknown())?;
    let kind = env.get("typeMeta").and_then(|t| t.get("kind")).and_then(Value::as_str).unwrap_or("").to_string();
    let api_version =
        env.get("typeMeta").and_then(|t| t.get("apiVersion")).and_then(Value::as_str).unwrap_or("").to_string();
    let schema = schema_of(&kind).ok_or_else(|| format!("protobuf is not supported for kind {kind:?}"))?;
    let raw = env.get("raw").and_then(Value::as_str).unwrap_or("");
    let raw = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|e| e.to_string())?;
    let mut obj = message(&raw, schema)?;
    obj.insert("kind".into(), json!(kind));
    obj.insert("apiVersion".into(), json!(api_version));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

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
