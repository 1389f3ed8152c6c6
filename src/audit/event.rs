//! The `audit.k8s.io/v1` Event, with kube's field names, and the scrubbing of objects
//! before they are recorded (credentials, Secret data, managed fields).

use super::policy::{Level, Stage};
use crate::authn::UserInfo;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::SystemTime;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    pub request_received_timestamp: String,
    pub stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// metav1.MicroTime's wire form: RFC 3339 with microseconds, UTC.
pub fn micro_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The responseStatus of a response that carried no Status object: just the code.
pub fn status_code_only(code: u16) -> Value {
    serde_json::json!({"metadata": {}, "code": code})
}

/// kube's `LogResponseObject` copies only the bounded fields of a Status body.
pub fn status_from_body(body: &Value) -> Option<Value> {
    if body.get("kind").and_then(Value::as_str) != Some("Status") {
        return None;
    }
    let mut out = serde_json::Map::new();
    out.insert("metadata".into(), serde_json::json!({}));
    for k in ["status", "message", "reason", "details", "code"] {
        if let Some(v) = body.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Some(Value::Object(out))
}

/// How an object is scrubbed before it goes into an event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scrub {
    pub omit_managed_fields: bool,
    /// Keep `data`/`stringData` of core Secrets (the policy rule named `secrets`).
    pub keep_secret_data: bool,
}

/// Removes what must never or need not be recorded: credentials (TokenReview's token,
/// TokenRequest's issued token), Secret data unless asked for, managed fields if omitted.
/// Lists are scrubbed item by item.
pub fn scrub(v: &mut Value, s: Scrub) {
    let Value::Object(obj) = v else { return };
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
    match kind.as_str() {
        "Secret" if api_version == "v1" && !s.keep_secret_data => {
            obj.remove("data");
            obj.remove("stringData");
        }
        "TokenReview" => {
            if let Some(Value::Object(spec)) = obj.get_mut("spec") {
                spec.remove("token");
            }
        }
        "TokenRequest" => {
            if let Some(Value::Object(st)) = obj.get_mut("status") {
                st.remove("token");
            }
        }
        _ => {}
    }
    if s.omit_managed_fields {
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            meta.remove("managedFields");
        }
    }
    if let Some(Value::Array(items)) = obj.get_mut("items") {
        for item in items {
            scrub(item, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn micro_time_has_microseconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(micro_time(t), "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn scrubs_credentials_secret_data_and_managed_fields() {
        let mut list = json!({"kind": "SecretList", "apiVersion": "v1", "items": [
            {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s", "managedFields": [{}]}, "data": {"k": "djE="}, "stringData": {"a": "b"}}
        ]});
        scrub(&mut list, Scrub { omit_managed_fields: true, keep_secret_data: false });
        assert_eq!(list["items"][0], json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}}));

        let mut secret = json!({"kind": "Secret", "apiVersion": "v1", "data": {"k": "djE="}});
        scrub(&mut secret, Scrub { omit_managed_fields: false, keep_secret_data: true });
        assert_eq!(secret["data"]["k"], "djE=");

        let mut tr = json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": "abc", "audiences": ["x"]}});
        scrub(&mut tr, Scrub::default());
        assert_eq!(tr["spec"], json!({"audiences": ["x"]}));
        let mut treq = json!({"kind": "TokenRequest", "status": {"token": "abc", "expirationTimestamp": "t"}});
        scrub(&mut treq, Scrub::default());
        assert_eq!(treq["status"], json!({"expirationTimestamp": "t"}));
    }

    #[test]
    fn status_body_keeps_bounded_fields() {
        let s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "m", "reason": "NotFound", "code": 404});
        assert_eq!(
            status_from_body(&s).unwrap(),
            json!({"metadata": {}, "status": "Failure", "message": "m", "reason": "NotFound", "code": 404})
        );
        assert!(status_from_body(&json!({"kind": "Pod"})).is_none());
    }
}
