//! The access-review APIs (authorization.k8s.io/v1), answered from frontdoor's own chain:
//! SelfSubjectAccessReview and SelfSubjectRulesReview (`kubectl auth can-i [--list]`),
//! SubjectAccessReview (backends may use frontdoor as their authorization webhook) and
//! LocalSubjectAccessReview.

use super::{aggregate_errors, Attributes, Decision};
use crate::api::{ApiResource, Status};
use crate::authn::UserInfo;
use crate::context::RequestContext;
use crate::filters::request_body;
use crate::filters::response::Responder;
use crate::filters::Reply;
use pingora::proxy::Session;
use serde_json::{json, Value};
use std::borrow::Cow;

pub const GROUP: &str = "authorization.k8s.io";
pub const VERSION: &str = "v1";

const KINDS: [(&str, &str, bool); 4] = [
    ("localsubjectaccessreviews", "LocalSubjectAccessReview", true),
    ("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
    ("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
    ("subjectaccessreviews", "SubjectAccessReview", false),
];

/// The review resources, for discovery.
pub fn resources() -> Vec<ApiResource> {
    KINDS
        .iter()
        .map(|(name, kind, namespaced)| ApiResource {
            group: GROUP.into(),
            version: VERSION.into(),
            name: (*name).into(),
            singular_name: kind.to_ascii_lowercase(),
            namespaced: *namespaced,
            kind: (*kind).into(),
            verbs: vec!["create".into()],
            ..Default::default()
        })
        .collect()
}

/// Serves a review request; None when the request is not for a review resource.
pub async fn serve(
    authz: &super::Authorization,
    respond: &Responder,
    session: &mut Session,
    ctx: &mut RequestContext,
) -> Option<pingora::Result<()>> {
    let info = ctx.request_info.clone();
    if !info.is_resource_request || info.api_group() != GROUP || info.api_version() != VERSION {
        return None;
    }
    let (_, kind, namespaced) = *KINDS.iter().find(|(r, _, _)| *r == info.resource())?;
    if !info.subresource().is_empty() || !info.name().is_empty() || namespaced == info.namespace().is_empty() {
        return Some(respond.send(session, ctx, Status::path_not_found().into()).await);
    }
    if info.verb() != "create" {
        let method = session.req_header().method.as_str().to_string();
        return Some(respond.send(session, ctx, Status::method_not_allowed(&method).into()).await);
    }
    let reply = match request_body::read(session, ctx, request_body::MAX_BODY).await {
        Ok(body) => match request_body::json(body).await {
            Ok(obj) if obj.is_object() => review(authz, ctx, kind, info.namespace(), obj).await,
            Ok(_) => Status::bad_request(format!("the body of the request must be a {kind} object")).into(),
            Err(e) => Status::bad_request(format!("error decoding {kind}: {e}")).into(),
        },
        Err(s) => s.into(),
    };
    Some(respond.send(session, ctx, reply).await)
}

fn invalid(kind: &str, field: &str, message: String) -> Reply {
    Status::invalid(GROUP, kind, "", vec![crate::api::field::cause("FieldValueInvalid", field, message)]).into()
}

/// Answers one review object (already decoded) for the requesting user.
pub async fn review(
    authz: &super::Authorization,
    ctx: &RequestContext,
    kind: &str,
    namespace: &str,
    mut obj: Value,
) -> Reply {
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != kind {
            return Status::bad_request(format!("the kind of the object ({k}) does not match the resource ({kind})"))
                .into();
        }
    }
    let requester = ctx.effective_user().cloned().unwrap_or_else(UserInfo::anonymous);
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match kind {
        "SelfSubjectRulesReview" => {
            let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or_default();
            if ns.is_empty() {
                return Status::bad_request("no namespace on request").into();
            }
            let r = authz.rules_for(&requester, ns);
            let mut s = json!({
                "resourceRules": r.resource_rules,
                "nonResourceRules": r.non_resource_rules,
                "incomplete": r.incomplete,
            });
            if !r.errors.is_empty() {
                s["evaluationError"] = json!(aggregate_errors(&r.errors));
            }
            s
        }
        _ => {
            let user = if kind == "SelfSubjectAccessReview" {
                requester
            } else {
                match spec_user(&spec) {
                    Some(u) => u,
                    None => {
                        return invalid(
                            kind,
                            "spec.user",
                            "Invalid value: \"\": at least one of user or group must be specified".into(),
                        )
                    }
                }
            };
            let attrs = match spec_attributes(kind, &spec, user) {
                Ok(a) => a,
                Err(r) => return r,
            };
            if kind == "LocalSubjectAccessReview" {
                let given = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
                if !given.is_empty() && given != namespace {
                    return Status::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                    .into();
                }
                if !obj.get("metadata").is_some_and(Value::is_object) {
                    obj["metadata"] = json!({});
                }
                obj["metadata"]["namespace"] = json!(namespace);
                if let Some(r) = metadata_not_empty(kind, &obj["metadata"], "must be empty except for namespace") {
                    return r;
                }
                if attrs.namespace != namespace {
                    let shown = crate::api::field::quote(&attrs.namespace);
                    let message = format!("Invalid value: {shown}: must match metadata.namespace");
                    return invalid(kind, "spec.resourceAttributes.namespace", message);
                }
            } else if let Some(r) = metadata_not_empty(kind, &obj["metadata"], "must be empty") {
                return r;
            }
            let (decision, reason, errors) = authz.decide_or_error(&attrs).await;
            let mut s = json!({"allowed": decision == Decision::Allow});
            if decision == Decision::Deny {
                s["denied"] = json!(true);
            }
            if !reason.is_empty() {
                s["reason"] = json!(&*reason);
            }
            if !errors.is_empty() {
                s["evaluationError"] = json!(aggregate_errors(&errors));
            }
            s
        }
    };
    obj["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
    obj["kind"] = json!(kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    obj["spec"] = spec;
    obj["status"] = status;
    Reply::json(201, &obj)
}

/// kube's validation of an access review's metadata: nothing set but (for a local review)
/// the namespace; a null or empty field is as good as absent (kubectl sends
/// `creationTimestamp: null`).
fn metadata_not_empty(kind: &str, meta: &Value, rule: &str) -> Option<Reply> {
    let set = |(k, v): (&String, &Value)| {
        let empty = match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::Bool(b) => !b,
        };
        let allowed = k == "managedFields" || (k == "namespace" && rule.contains("namespace"));
        !(empty || allowed)
    };
    let m = meta.as_object()?;
    m.iter().any(set).then(|| invalid(kind, "metadata", format!("Invalid value: {meta}: {rule}")))
}

fn spec_user(spec: &Value) -> Option<UserInfo> {
    let name = spec.get("user").and_then(Value::as_str).unwrap_or_default().to_string();
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return None;
    }
    let mut u = UserInfo::new(name, groups);
    u.uid = spec.get("uid").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(extra) = spec.get("extra").and_then(|e| serde_json::from_value(e.clone()).ok()) {
        u.extra = extra;
    }
    Some(u)
}

fn spec_attributes(kind: &str, spec: &Value, user: UserInfo) -> Result<Attributes<'static>, Reply> {
    let res = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    if kind == "LocalSubjectAccessReview" && non.is_some() {
        return Err(invalid(
            kind,
            "spec.nonResourceAttributes",
            "Invalid value: {}: disallowed on this kind of request".into(),
        ));
    }
    match (res, non) {
        (Some(_), Some(n)) => Err(invalid(
            kind,
            "spec.nonResourceAttributes",
            format!("Invalid value: {n}: cannot be specified in combination with resourceAttributes"),
        )),
        (None, None) => Err(invalid(
            kind,
            "spec.resourceAttributes",
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
                .into(),
        )),
        (Some(r), None) => Ok(Attributes {
            user: Cow::Owned(user),
            verb: s(r, "verb").into(),
            namespace: s(r, "namespace").into(),
            api_group: s(r, "group").into(),
            api_version: s(r, "version").into(),
            resource: s(r, "resource").into(),
            subresource: s(r, "subresource").into(),
            name: s(r, "name").into(),
            resource_request: true,
            path: Cow::Borrowed(""),
        }),
        (None, Some(n)) => Ok(Attributes {
            user: Cow::Owned(user),
            verb: s(n, "verb").into(),
            path: s(n, "path").into(),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_from_specs() {
        let u = UserInfo::new("a", vec![]);
        let a = spec_attributes(
            "SubjectAccessReview",
            &json!({"resourceAttributes": {"namespace": "n", "verb": "get", "group": "apps", "resource": "deployments", "subresource": "scale", "name": "d"}}),
            u.clone(),
        )
        .unwrap();
        assert!(a.resource_request);
        assert_eq!((&*a.namespace, &*a.api_group, &*a.subresource, &*a.name), ("n", "apps", "scale", "d"));
        let a = spec_attributes(
            "SubjectAccessReview",
            &json!({"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}),
            u.clone(),
        )
        .unwrap();
        assert!(!a.resource_request);
        assert_eq!(a.path, "/metrics");
        assert!(spec_attributes("SubjectAccessReview", &json!({}), u.clone()).is_err());
        assert!(spec_attributes(
            "SubjectAccessReview",
            &json!({"resourceAttributes": {}, "nonResourceAttributes": {}}),
            u.clone()
        )
        .is_err());
        assert!(
            spec_attributes("LocalSubjectAccessReview", &json!({"nonResourceAttributes": {"path": "/x"}}), u).is_err()
        );
        assert!(spec_user(&json!({"user": ""})).is_none());
        assert_eq!(spec_user(&json!({"groups": ["g"]})).unwrap().groups, vec!["g"]);
    }

    /// kube's ValidateSubjectAccessReview and friends: metadata must be empty (nulls and empty
    /// values, as kubectl sends them, are), a local review's but for its namespace.
    #[test]
    fn a_reviews_metadata_must_be_empty() {
        let message =
            |r: Option<Reply>| r.map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["message"].clone());
        assert!(metadata_not_empty(
            "SelfSubjectAccessReview",
            &json!({"creationTimestamp": null, "name": ""}),
            "must be empty"
        )
        .is_none());
        assert_eq!(
            message(metadata_not_empty("SubjectAccessReview", &json!({"name": "x"}), "must be empty")),
            Some(json!("SubjectAccessReview.authorization.k8s.io \"\" is invalid: metadata: Invalid value: {\"name\":\"x\"}: must be empty"))
        );
        let except = "must be empty except for namespace";
        assert!(metadata_not_empty("LocalSubjectAccessReview", &json!({"namespace": "a"}), except).is_none());
        assert!(metadata_not_empty(
            "LocalSubjectAccessReview",
            &json!({"namespace": "a", "labels": {"x": "y"}}),
            except
        )
        .is_some());
    }

    #[test]
    fn discovery_lists_four_create_only_kinds() {
        let r = resources();
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|x| x.group == GROUP && x.verbs == ["create"]));
        assert!(r.iter().find(|x| x.kind == "LocalSubjectAccessReview").unwrap().namespaced);
    }
}
