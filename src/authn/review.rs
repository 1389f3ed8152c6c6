//! The authentication review APIs frontdoor serves itself:
//! `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (who am I, as `kubectl auth
//! whoami` asks, impersonation included) and `.../tokenreviews` (lets backends delegate
//! token authentication to frontdoor).
#![allow(clippy::result_large_err)] // Status is the spine's error type

use crate::api::{ApiResource, Status};
use crate::context::RequestContext;
use crate::filters::request_body;
use crate::filters::response::Responder;
use crate::filters::Reply;
use pingora::proxy::Session;
use serde_json::{json, Value};

pub const GROUP: &str = "authentication.k8s.io";
pub const VERSION: &str = "v1";

/// The review resources, for discovery.
pub fn resources() -> Vec<ApiResource> {
    let r = |name: &str, singular: &str, kind: &str| ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        name: name.into(),
        singular_name: singular.into(),
        namespaced: false,
        kind: kind.into(),
        verbs: vec!["create".into()],
        ..Default::default()
    };
    vec![
        r("selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview"),
        r("tokenreviews", "tokenreview", "TokenReview"),
    ]
}

/// Serves a review request, or `None` when the request is not one.
pub async fn serve(
    authn: &crate::authn::Authentication,
    respond: &Responder,
    session: &mut Session,
    ctx: &mut RequestContext,
) -> Option<pingora::Result<()>> {
    let info = ctx.request_info.clone();
    if !info.is_resource_request
        || info.api_group() != GROUP
        || info.api_version() != VERSION
        || !info.namespace().is_empty()
    {
        return None;
    }
    let kind = match info.resource() {
        "selfsubjectreviews" => "SelfSubjectReview",
        "tokenreviews" => "TokenReview",
        _ => return None,
    };
    if !info.subresource().is_empty() || !info.name().is_empty() {
        return Some(respond.send(session, ctx, Status::path_not_found().into()).await);
    }
    if info.verb() != "create" {
        let m = session.req_header().method.as_str().to_string();
        return Some(respond.send(session, ctx, Status::method_not_allowed(&m).into()).await);
    }
    let reply = match request_body::read(session, ctx, request_body::MAX_BODY).await {
        Err(s) => s.into(),
        Ok(body) => match parse(body, kind).await {
            Err(s) => s.into(),
            Ok(_) if kind == "SelfSubjectReview" => self_subject_review(ctx),
            Ok(v) => token_review(authn, v).await,
        },
    };
    Some(respond.send(session, ctx, reply).await)
}

/// Decodes a review body (JSON or YAML, within api::decode's bounds).
async fn parse(body: Vec<u8>, kind: &str) -> Result<Value, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v = request_body::json_or_yaml(body)
        .await
        .map_err(|e| Status::bad_request(format!("error decoding {kind}: {e}")))?;
    if !v.is_object() {
        return Err(Status::bad_request(format!("error decoding {kind}: not an object")));
    }
    if let Some(k) = v.get("kind").and_then(Value::as_str) {
        if k != kind {
            return Err(Status::bad_request(format!("the body of the request was of kind {k:?}, expected {kind:?}")));
        }
    }
    Ok(v)
}

fn object(kind: &str, status: Value, spec: Option<Value>) -> Value {
    let mut o =
        json!({"kind": kind, "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {"creationTimestamp": null}});
    if let Some(s) = spec {
        o["spec"] = s;
    }
    o["status"] = status;
    o
}

fn self_subject_review(ctx: &RequestContext) -> Reply {
    let Some(user) = ctx.effective_user() else {
        return Status::unauthorized().into();
    };
    Reply::json(201, &object("SelfSubjectReview", json!({"userInfo": user}), None))
}

async fn token_review(authn: &crate::authn::Authentication, v: Value) -> Reply {
    let spec = v.get("spec").cloned().unwrap_or(json!({}));
    let token = spec.get("token").and_then(Value::as_str).unwrap_or_default();
    if token.is_empty() {
        return Status::bad_request("token is required for TokenReview in authentication").into();
    }
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let (user, auds, error) = authn.review_token(token, &audiences).await;
    let mut status = json!({"user": {}});
    match user {
        Some(u) => {
            status["authenticated"] = true.into();
            status["user"] = serde_json::to_value(u).unwrap_or_default();
            if !auds.is_empty() {
                status["audiences"] = json!(auds);
            }
        }
        None if !error.is_empty() => status["error"] = error.into(),
        None => {}
    }
    // the token is not echoed back
    let mut spec_out = json!({});
    if !audiences.is_empty() {
        spec_out["audiences"] = json!(audiences);
    }
    Reply::json(201, &object("TokenReview", status, Some(spec_out)))
}
