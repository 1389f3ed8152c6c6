//! The `audit.k8s.io/v1` Event, with kube's field names, and the scrubbing of objects
//! before they are recorded (credentials, Secret data, managed fields).

use super::policy::{Level, Stage};
use crate::authn::user::UserInfo;
use crate::filters::request_received::SourceIps;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The event's reference to the object of a resource request; borrowed from RequestInfo.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub resource: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub namespace: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub api_group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub api_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub subresource: &'a str,
}

/// An event, borrowing everything the request context already holds: it is built and
/// serialised in place for each stage, never copied.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: &'a str,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: &'a str,
    pub verb: &'a str,
    pub user: &'a UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<&'a UserInfo>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "SourceIps::is_empty")]
    pub source_ips: SourceIps<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub user_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    pub request_received_timestamp: MicroTime,
    pub stage_timestamp: MicroTime,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, &'a str>,
}

/// The user of an event whose authentication failed: `{}`.
pub static NO_USER: UserInfo =
    UserInfo { username: String::new(), uid: String::new(), groups: Vec::new(), extra: BTreeMap::new() };

/// An event's responseStatus: most responses carry no Status object, only a code.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseStatus {
    /// `{"metadata":{},"code":N}`, written without building a JSON tree.
    Code(u16),
    /// The bounded fields of a Status (see `status_from_body`), or a built one.
    Status(Value),
}

impl Serialize for ResponseStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ResponseStatus::Code(code) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("metadata", &Empty)?;
                m.serialize_entry("code", code)?;
                m.end()
            }
            ResponseStatus::Status(v) => v.serialize(s),
        }
    }
}

/// `{}`
struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

/// metav1.MicroTime: serialised as RFC 3339 with microseconds, UTC (`2006-01-02T15:04:05.000000Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicroTime(pub SystemTime);

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&micro_time(self.0))
    }
}

/// metav1.MicroTime's wire form.
pub fn micro_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The responseStatus of a response that carried no Status object: just the code.
pub fn status_code_only(code: u16) -> ResponseStatus {
    ResponseStatus::Code(code)
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
    /// What the request is for, as RequestInfo read it: a body is scrubbed as what it is
    /// sent to, whatever its `kind` says (or leaves out).
    pub target: Target,
}

/// The requests whose bodies carry what must not be recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Target {
    /// Core `secrets` (any verb or subresource, patches included).
    Secrets,
    /// `tokenreviews.authentication.k8s.io`: the token reviewed.
    TokenReviews,
    /// `serviceaccounts/token`: the token issued.
    TokenRequests,
    #[default]
    Other,
}

impl Target {
    pub fn of(info: &crate::request_info::RequestInfo) -> Target {
        let core = info.api_prefix() == "api" && info.api_group().is_empty();
        match (info.api_group(), info.resource(), info.subresource()) {
            ("", "secrets", _) if core => Target::Secrets,
            ("authentication.k8s.io", "tokenreviews", "") => Target::TokenReviews,
            ("", "serviceaccounts", "token") if core => Target::TokenRequests,
            _ => Target::Other,
        }
    }
}

/// Removes what must never or need not be recorded: credentials (TokenReview's token,
/// TokenRequest's issued token), Secret data unless asked for, managed fields if omitted.
/// A body is scrubbed as what its request was for, and as what its `kind` says; a JSON
/// patch of a Secret loses the values of all its operations. Lists are scrubbed item by item,
/// Tables row by row.
pub fn scrub(v: &mut Value, s: Scrub) {
    if let (Value::Array(ops), Target::Secrets, false) = (&mut *v, s.target, s.keep_secret_data) {
        // any operation's value may end up as data (`add` at the root, or `move` from where
        // an earlier one put it): none is recorded
        for op in ops.iter_mut().filter_map(Value::as_object_mut) {
            op.remove("value");
        }
        return;
    }
    let Value::Object(obj) = v else { return };
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let (kind, api_version) = (text("kind"), text("apiVersion"));
    let secret = s.target == Target::Secrets || (kind == "Secret" && api_version == "v1");
    let (review, issued) = (
        s.target == Target::TokenReviews || kind == "TokenReview",
        s.target == Target::TokenRequests || kind == "TokenRequest",
    );
    if secret && !s.keep_secret_data {
        obj.remove("data");
        obj.remove("stringData");
    }
    if review {
        if let Some(Value::Object(spec)) = obj.get_mut("spec") {
            spec.remove("token");
        }
    }
    if issued {
        if let Some(Value::Object(st)) = obj.get_mut("status") {
            st.remove("token");
        }
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
    // a Table's rows carry their objects (`includeObject=Object`, as kubectl asks for them)
    if let Some(Value::Array(rows)) = obj.get_mut("rows") {
        for object in rows.iter_mut().filter_map(|r| r.get_mut("object")) {
            scrub(object, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::request_received::Incoming;
    use serde_json::json;
    use std::time::UNIX_EPOCH;

    #[test]
    fn micro_time_has_microseconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(micro_time(t), "2023-11-14T22:13:20.123456Z");
        assert_eq!(serde_json::to_string(&MicroTime(t)).unwrap(), "\"2023-11-14T22:13:20.123456Z\"");
    }

    #[test]
    fn event_serialises_kube_fields_and_escapes_odd_strings() {
        let odd = "al\"ice\\ \u{0}\u{1f}\n\t\u{7f} caf\u{e9} \u{1F600} \u{2028}</script>";
        let mut user = UserInfo::new(odd, vec!["g\"1".into(), "\u{10FFFF}".into()]);
        user.extra.insert("k\u{0}".into(), vec![odd.into()]);
        let incoming = Incoming::new("", "", "", &["10.0.0.1", "::1"], None);
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        let mut annotations = BTreeMap::new();
        annotations.insert("authorization.k8s.io/reason", odd);
        annotations.insert("authorization.k8s.io/decision", "allow");
        let ev = Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: Level::Metadata,
            audit_id: "id-1",
            stage: Stage::ResponseComplete,
            request_uri: "/api/v1/namespaces/a%20b/pods?labelSelector=x%3Dy&q=\u{e9}\"",
            verb: "list",
            user: &user,
            impersonated_user: None,
            source_ips: incoming.source_ips(),
            user_agent: odd,
            object_ref: Some(ObjectReference {
                resource: "pods",
                namespace: "a b",
                name: "",
                api_group: "",
                api_version: "v1",
                subresource: "",
            }),
            response_status: Some(ResponseStatus::Code(200)),
            request_object: None,
            response_object: None,
            request_received_timestamp: MicroTime(t),
            stage_timestamp: MicroTime(t),
            annotations,
        };
        let text = serde_json::to_string(&ev).unwrap();
        assert!(!text.contains('\n'), "one line");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": "id-1",
                "stage": "ResponseComplete",
                "requestURI": "/api/v1/namespaces/a%20b/pods?labelSelector=x%3Dy&q=\u{e9}\"",
                "verb": "list",
                "user": {"username": odd, "groups": ["g\"1", "\u{10FFFF}"], "extra": {"k\u{0}": [odd]}},
                "sourceIPs": ["10.0.0.1", "::1"], "userAgent": odd,
                "objectRef": {"resource": "pods", "namespace": "a b", "apiVersion": "v1"},
                "responseStatus": {"metadata": {}, "code": 200},
                "requestReceivedTimestamp": "2023-11-14T22:13:20.123456Z",
                "stageTimestamp": "2023-11-14T22:13:20.123456Z",
                "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": odd},
            })
        );
        // kube's field order, and the empty parts left out
        assert!(text.starts_with(r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-1","stage":"ResponseComplete","requestURI":"#));
        assert!(text.contains(r#""responseStatus":{"metadata":{},"code":200}"#));

        let failed = Event {
            user: &NO_USER,
            source_ips: SourceIps::default(),
            user_agent: "",
            object_ref: None,
            annotations: BTreeMap::new(),
            ..ev
        };
        let v: Value = serde_json::to_value(&failed).unwrap();
        assert_eq!(v["user"], json!({}));
        for absent in ["sourceIPs", "userAgent", "objectRef", "annotations", "impersonatedUser", "requestObject"] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn scrubs_credentials_secret_data_and_managed_fields() {
        let mut list = json!({"kind": "SecretList", "apiVersion": "v1", "items": [
            {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s", "managedFields": [{}]}, "data": {"k": "djE="}, "stringData": {"a": "b"}}
        ]});
        scrub(&mut list, Scrub { omit_managed_fields: true, ..Scrub::default() });
        assert_eq!(list["items"][0], json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}}));

        let mut secret = json!({"kind": "Secret", "apiVersion": "v1", "data": {"k": "djE="}});
        scrub(&mut secret, Scrub { keep_secret_data: true, ..Scrub::default() });
        assert_eq!(secret["data"]["k"], "djE=");

        let mut tr = json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": "abc", "audiences": ["x"]}});
        scrub(&mut tr, Scrub::default());
        assert_eq!(tr["spec"], json!({"audiences": ["x"]}));
        let mut treq = json!({"kind": "TokenRequest", "status": {"token": "abc", "expirationTimestamp": "t"}});
        scrub(&mut treq, Scrub::default());
        assert_eq!(treq["status"], json!({"expirationTimestamp": "t"}));
    }

    /// A body is scrubbed as what its request is for, whatever its kind says or leaves out.
    #[test]
    fn scrubs_by_what_the_request_is_for() {
        let to = |target| Scrub { target, ..Scrub::default() };
        for mut body in [
            json!({"metadata": {"name": "s1"}, "data": {"k": "U0VDUkVUMQ=="}}),
            json!({"kind": "Secret", "metadata": {"name": "s2"}, "stringData": {"k": "SECRET2"}}),
            json!({"data": {"k": "U0VDUkVUMw=="}}),
        ] {
            scrub(&mut body, to(Target::Secrets));
            assert!(body.get("data").is_none() && body.get("stringData").is_none(), "{body}");
        }
        let mut patch = json!([
            {"op": "replace", "path": "/data/k", "value": "U0VDUkVU"},
            {"op": "add", "path": "/stringData", "value": {"k": "SECRET"}},
            {"op": "replace", "path": "/metadata/labels/a", "value": "b"},
            {"op": "add", "path": "/dataset", "value": "kept"}
        ]);
        scrub(&mut patch, to(Target::Secrets));
        assert_eq!(
            patch,
            json!([{"op": "replace", "path": "/data/k"}, {"op": "add", "path": "/stringData"},
                {"op": "replace", "path": "/metadata/labels/a"}, {"op": "add", "path": "/dataset"}])
        );
        let mut root = json!([{"op": "add", "path": "", "value": {"data": {"k": "U0VDUkVU"}}}]);
        scrub(&mut root, to(Target::Secrets));
        assert_eq!(root, json!([{"op": "add", "path": ""}]));
        // a Table of Secrets with their objects (kubectl get secrets --sort-by asks for them)
        let mut table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": [
            {"cells": ["s"], "object": {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "data": {"k": "U0VDUkVU"}}},
            {"cells": ["t"], "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "t"}}}
        ]});
        scrub(&mut table, to(Target::Secrets));
        assert!(table["rows"][0]["object"].get("data").is_none(), "{table}");
        assert_eq!(table["rows"][1]["object"]["metadata"]["name"], "t");
        let mut tr = json!({"spec": {"token": "viewtok"}});
        scrub(&mut tr, to(Target::TokenReviews));
        assert_eq!(tr, json!({"spec": {}}));
        let mut issued = json!({"status": {"token": "t"}});
        scrub(&mut issued, to(Target::TokenRequests));
        assert_eq!(issued, json!({"status": {}}));
        // kept only when the policy names secrets
        let mut kept = json!({"data": {"k": "djE="}});
        scrub(&mut kept, Scrub { keep_secret_data: true, ..to(Target::Secrets) });
        assert_eq!(kept["data"]["k"], "djE=");
        let mut cm = json!({"data": {"k": "v"}});
        scrub(&mut cm, to(Target::Other));
        assert_eq!(cm["data"]["k"], "v");
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
