//! metav1.Status, the body of every error a client sees, with kube-apiserver's wording.

use super::field::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_after_seconds: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// A `v1 Status` object. Built through the constructors below so that reason, code and
/// message always agree with what kube-apiserver would send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub kind: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// Omitted when 0, as metav1.Status's `code,omitempty` (a Success Status has none).
    #[serde(default, skip_serializing_if = "is_zero_code")]
    pub code: u16,
}

fn is_zero_code(v: &u16) -> bool {
    *v == 0
}

/// Group and resource as kube prints them in messages: `configmaps` or `roles.rbac.authorization.k8s.io`.
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl Status {
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Default::default(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code,
        }
    }

    /// What a delete answers, as kube's registry builds it: no code, no message.
    pub fn success() -> Self {
        Status { status: "Success".into(), code: 0, ..Status::failure(0, "", "") }
    }

    pub fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details =
            Some(StatusDetails { name: name.into(), group: group.into(), kind: kind.into(), ..Default::default() });
        self
    }

    /// kube's NotFound for an object: `configmaps "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qr = qualified_resource(group, resource);
        let msg = if name.is_empty() { format!("{qr} not found") } else { format!("{qr} {} not found", quote(name)) };
        Status::failure(404, "NotFound", msg).with_details(group, resource, name)
    }

    /// The 404 kube-apiserver's mux answers for a path nothing serves.
    pub fn path_not_found() -> Self {
        Status::failure(404, "NotFound", "the server could not find the requested resource").with_details("", "", "")
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let msg = format!("{} {} already exists", qualified_resource(group, resource), quote(name));
        Status::failure(409, "AlreadyExists", msg).with_details(group, resource, name)
    }

    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let msg =
            format!("Operation cannot be fulfilled on {} {}: {why}", qualified_resource(group, resource), quote(name));
        Status::failure(409, "Conflict", msg).with_details(group, resource, name)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Status::failure(400, "BadRequest", message)
    }

    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        // kube's aggregate error names each distinct message once (the causes keep them all)
        let mut seen = std::collections::HashSet::new();
        let list: Vec<String> = causes
            .iter()
            .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
            .filter(|m| seen.insert(m.clone()))
            .collect();
        let shown = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        let msg = format!("{} {} is invalid: {shown}", qualified_resource(group, kind), quote(name));
        let mut s = Status::failure(422, "Invalid", msg).with_details(group, kind, name);
        if let Some(d) = s.details.as_mut() {
            d.causes = causes;
        }
        s
    }

    pub fn unauthorized() -> Self {
        Status::failure(401, "Unauthorized", "Unauthorized")
    }

    /// kube's Forbidden: `<qualified resource> "<name>" is forbidden: <reason>`.
    pub fn forbidden(group: &str, resource: &str, name: &str, reason: &str) -> Self {
        let qr = qualified_resource(group, resource);
        let msg = if qr.is_empty() {
            format!("forbidden: {reason}")
        } else if name.is_empty() {
            format!("{qr} is forbidden: {reason}")
        } else {
            format!("{qr} {} is forbidden: {reason}", quote(name))
        };
        Status::failure(403, "Forbidden", msg).with_details(group, resource, name)
    }

    pub fn too_many_requests(retry_after_seconds: u32) -> Self {
        let mut s = Status::failure(429, "TooManyRequests", "Too many requests, please try again later.");
        s.details = Some(StatusDetails { retry_after_seconds, ..Default::default() });
        s
    }

    pub fn internal_error(message: impl std::fmt::Display) -> Self {
        Status::failure(500, "InternalError", format!("Internal error occurred: {message}"))
            .with_causes_message(message.to_string())
    }

    fn with_causes_message(mut self, message: String) -> Self {
        self.details =
            Some(StatusDetails { causes: vec![StatusCause { message, ..Default::default() }], ..Default::default() });
        self
    }

    /// The 504 of kube's timeout filter.
    pub fn timeout() -> Self {
        let mut s = Status::failure(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
        );
        s.details = Some(StatusDetails { retry_after_seconds: 0, ..Default::default() });
        s
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Status::failure(503, "ServiceUnavailable", message)
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Status::failure(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Status::failure(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Status::failure(410, "Expired", message)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_message_matches_kube() {
        let s = Status::forbidden(
            "",
            "configmaps",
            "x",
            "User \"alice\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\"",
        );
        assert_eq!(s.code, 403);
        assert_eq!(
            s.message,
            "configmaps \"x\" is forbidden: User \"alice\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
        );
        let v: serde_json::Value = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "Forbidden");
        assert_eq!(v["details"]["kind"], "configmaps");
    }

    /// kube's aggregate names a message once however often it occurs; the causes keep all.
    #[test]
    fn an_invalid_message_names_each_error_once() {
        let cause = |m: &str| crate::api::field::cause("FieldValueRequired", "metadata.ownerReferences.uid", m.into());
        let s = Status::invalid(
            "",
            "ConfigMap",
            "x",
            vec![cause("Required value"), cause("Required value"), cause("other")],
        );
        assert_eq!(
            s.message,
            "ConfigMap \"x\" is invalid: [metadata.ownerReferences.uid: Required value, metadata.ownerReferences.uid: other]"
        );
        assert_eq!(s.details.unwrap().causes.len(), 3);
    }

    #[test]
    fn not_found_and_qualified_resource() {
        assert_eq!(
            Status::not_found("rbac.authorization.k8s.io", "roles", "r").message,
            "roles.rbac.authorization.k8s.io \"r\" not found"
        );
        // a name from the path may hold anything: Go's %q, not the raw name between quotes
        assert_eq!(Status::not_found("", "configmaps", "a\"b\u{7}").message, r#"configmaps "a\"b\a" not found"#);
        assert_eq!(Status::path_not_found().message, "the server could not find the requested resource");
    }
}
