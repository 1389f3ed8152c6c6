//! `POST .../serviceaccounts/<name>/token`: kube's TokenRequest subresource (what
//! `kubectl create token` calls). The service account must exist; the token is bound to it
//! (name and uid), and to a Secret when `boundObjectRef` names one, and signed by authn's issuer.

use super::{decode, now, Target};
use crate::api::{field, Status};
use crate::authn::token_issuer::{Subject, TokenIssuer};
use crate::filters::Reply;
use crate::store::Store;
use serde_json::{json, Value};

const GROUP: &str = "authentication.k8s.io";
/// kube's defaults and bounds for `spec.expirationSeconds`.
const DEFAULT_SECONDS: i64 = 3600;
const MIN_SECONDS: i64 = 600;
const MAX_SECONDS: i64 = 1 << 32;

pub fn create(
    store: &Store,
    t: &Target,
    body: &[u8],
    issuer: &TokenIssuer,
    api_audiences: &[String],
) -> Result<Reply, Status> {
    let mut req: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode(body, &t.content_type, "TokenRequest")?
    };
    if !req.is_object() {
        return Err(Status::bad_request("error decoding request body: not a TokenRequest object"));
    }
    // a body that names a service account names the one of the URL, the one authorized
    let meta = &req["metadata"];
    for (what, url) in [("name", &t.name), ("namespace", &t.namespace)] {
        if let Some(asked) = meta[what].as_str().filter(|a| !a.is_empty() && a != url) {
            let message = format!("must match the service account {what} if specified");
            let cause = field::invalid(&format!("metadata.{what}"), &field::quote(asked), &message);
            return Err(Status::invalid(GROUP, "TokenRequest", &t.name, vec![cause]));
        }
    }
    // kube's NamespaceLifecycle admits no create, a TokenRequest included, in a namespace
    // being deleted
    crate::store::namespace::admit_create(store, t.def, &t.namespace, &t.name)?;
    let sa = store
        .storage
        .get(&t.def.key(&t.namespace, &t.name))
        .ok_or_else(|| Status::not_found(&t.def.group, &t.def.resource, &t.name))?;
    let sa_uid = sa.value["metadata"]["uid"].as_str().unwrap_or_default();
    if let Some(asked) = meta["uid"].as_str().filter(|u| !u.is_empty() && u != &sa_uid) {
        let why =
            format!("the UID in the token request ({asked}) does not match the UID of the service account ({sa_uid})");
        return Err(Status::conflict(GROUP, "TokenRequest", &t.name, &why));
    }
    let spec = req["spec"].take();
    let seconds = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_SECONDS,
        v => v.as_i64().ok_or_else(|| Status::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let bound = if seconds < MIN_SECONDS {
        Some("may not specify a duration less than 10 minutes")
    } else if seconds > MAX_SECONDS {
        Some("may not specify a duration larger than 2^32 seconds")
    } else {
        None
    };
    if let Some(message) = bound {
        let cause = crate::api::field::invalid("spec.expirationSeconds", &seconds.to_string(), message);
        return Err(Status::invalid(GROUP, "TokenRequest", &t.name, vec![cause]));
    }
    let audiences: Vec<String> = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => api_audiences.to_vec(),
    };
    let secret = bound_secret(store, &t.namespace, &spec["boundObjectRef"])?;
    let secret_ref = secret.as_ref().map(|(n, u)| (n.as_str(), u.as_str()));
    let subject = Subject { namespace: &t.namespace, name: &t.name, uid: sa_uid, secret: secret_ref };
    let (token, exp) = issuer.issue(&subject, &audiences, seconds).map_err(Status::internal_error)?;
    let expires = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ");
    req["apiVersion"] = json!(format!("{GROUP}/v1"));
    req["kind"] = json!("TokenRequest");
    req["metadata"] = json!({"name": t.name, "namespace": t.namespace, "creationTimestamp": now()});
    let mut bound_ref = spec["boundObjectRef"].clone();
    if let (Some((_, uid)), Some(r)) = (&secret, bound_ref.as_object_mut()) {
        r.insert("uid".into(), json!(uid));
    }
    req["spec"] = json!({"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": bound_ref});
    req["status"] = json!({"token": token, "expirationTimestamp": expires.to_string()});
    Ok(Reply::json(201, &req))
}

/// The object a token is bound to, as kube's TokenRequest takes it: a Secret of the service
/// account's namespace, which must exist (with the uid given, if one is); (name, uid). Pods and
/// Nodes, kube's other kinds, are not served here, so none exists; any other kind is refused.
fn bound_secret(store: &Store, namespace: &str, r: &Value) -> Result<Option<(String, String)>, Status> {
    if r.is_null() {
        return Ok(None);
    }
    let (api_version, kind) = (r["apiVersion"].as_str().unwrap_or(""), r["kind"].as_str().unwrap_or(""));
    let name = r["name"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource = match (group, kind) {
        ("", "Secret") => "secrets",
        ("", "Pod") => return Err(Status::not_found("", "pods", name)),
        ("", "Node") => return Err(Status::not_found("", "nodes", name)),
        _ => {
            return Err(Status::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )))
        }
    };
    let uid = store.core_uid(resource, namespace, name).ok_or_else(|| Status::not_found("", resource, name))?;
    match r["uid"].as_str() {
        Some(asked) if !asked.is_empty() && asked != uid => Err(Status::conflict(
            "",
            kind,
            name,
            &format!("the UID in the bound object reference ({asked}) does not match the UID in record. The object might have been deleted and then recreated"),
        )),
        _ => Ok(Some((name.to_string(), uid))),
    }
}
