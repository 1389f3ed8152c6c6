//! RBAC's checks on writes through the store, as kube's RBAC storage makes them: resolved per
//! request before the write (what the authorizer chain says about `escalate` and `bind` is
//! asked here, asynchronously) and run inside it on the object about to be stored: an object a
//! policy file defines is refused; then escalation prevention ([`super::escalation`]); then
//! kube's defaulting and validation ([`super::validation`], through the very decoder the
//! authorizer compiles with), so the store never holds an object the authorizer would skip.
//!
//! One deviation, in the order of errors only: where kube answers a binding with an unknown
//! roleRef kind with an internal error, or checks the permissions of a patch's changed roleRef
//! before refusing the change, this answers with the validation's 422 at once.

// Status (kube's error body) is the error type, as in the store whose writes these check.
#![allow(clippy::result_large_err)]

use super::escalation::{check_binding, check_role, escalation_allowed, only_gc_fields, Grants};
use super::load::{decode, DecodeError};
use super::types::{Binding, Role, RoleRef};
use super::validation::{default_binding_json, validate_binding_update, GROUP};
use super::{Policy, RbacAuthorizer, RESOURCES};
use crate::api::status::StatusCause;
use crate::api::Status;
use crate::authn::UserInfo;
use crate::authz::{Attributes, Authorization, Decision};
use crate::context::RequestContext;
use crate::store::rest::{Admit, Target, WriteAdmission};
use crate::store::Store;
use serde_json::Value;
use std::sync::Arc;

/// RBAC's write checks as the store's REST handlers get them: the authorizer chain (asked
/// about `escalate` and `bind`; its RBAC rules are the writer's own).
pub struct RbacAdmission {
    authz: Authorization,
}

impl RbacAdmission {
    pub fn new(authz: Authorization) -> Self {
        RbacAdmission { authz }
    }
}

#[async_trait::async_trait]
impl WriteAdmission for RbacAdmission {
    async fn resolve(&self, store: &Store, ctx: &RequestContext, t: &Target<'_>, body: &[u8]) -> Option<Admit> {
        resolve(&self.authz, store, ctx, t, body).await
    }

    /// kube's update handler: `create` is authorized as the request's own attributes with that
    /// verb, and refused as Forbidden with the authorizer's reason alone.
    async fn may_create(&self, ctx: &RequestContext) -> Result<(), Status> {
        let info = &ctx.request_info;
        let user = ctx.effective_user().ok_or_else(|| Status::internal_error("no user in the request"))?;
        let attrs = Attributes { verb: "create".into(), ..Attributes::from_request(user, info) };
        match self.authz.decide_or_error(&attrs).await {
            (Decision::Allow, ..) => Ok(()),
            (_, _, errors) if !errors.is_empty() => Err(Status::internal_error(errors.join(", "))),
            (_, reason, _) => Err(Status::forbidden(info.api_group(), info.resource(), info.name(), &reason)),
        }
    }
}

/// The check for a write of an RBAC object, or None for anything else.
async fn resolve(
    authz: &Authorization,
    store: &Store,
    ctx: &RequestContext,
    t: &Target<'_>,
    body: &[u8],
) -> Option<Admit> {
    let info = &ctx.request_info;
    if t.def.group != GROUP || !RESOURCES.contains(&t.def.resource.as_str()) || !t.subresource.is_empty() {
        return None;
    }
    let user = ctx.effective_user()?.clone();
    if matches!(info.verb(), "delete" | "deletecollection") {
        // an object a policy file defines would come back: its deletion is refused as its edits are
        let (rbac, kind, resource, namespace) =
            (authz.rbac(), t.def.kind.clone(), t.def.resource.clone(), t.namespace.clone());
        return Some(Arc::new(move |old: Option<&Value>, _: Option<&mut Value>| {
            let name = old.and_then(|o| o["metadata"]["name"].as_str()).unwrap_or_default();
            let namespace = old.and_then(|o| o["metadata"]["namespace"].as_str()).unwrap_or(&namespace);
            file_defined(rbac.as_deref(), &kind, &resource, namespace, name)
        }));
    }
    if !matches!(info.verb(), "create" | "update" | "patch") {
        return None;
    }
    let mut grants = Grants::default();
    if !escalation_allowed(&user) {
        if matches!(t.def.resource.as_str(), "roles" | "clusterroles") {
            // kube's RoleEscalationAuthorized: `escalate` on what the request names
            let attrs = Attributes {
                verb: "escalate".into(),
                api_version: "*".into(),
                ..request_attrs(&user, info.namespace(), info.api_group(), info.resource(), info.name())
            };
            grants.escalate = allowed(authz, &attrs).await;
        } else {
            for rr in candidate_refs(store, t, sent_object(t, body).await) {
                // kube's BindingAuthorized: `bind` on the role, in the binding's namespace
                let resource = if rr.kind == "Role" { "roles" } else { "clusterroles" };
                let attrs = Attributes {
                    verb: "bind".into(),
                    ..request_attrs(&user, &t.namespace, &rr.api_group, resource, &rr.name)
                };
                let ok = matches!(rr.kind.as_str(), "Role" | "ClusterRole") && allowed(authz, &attrs).await;
                grants.bind.push((rr, ok));
            }
        }
    }
    let check = Check {
        rbac: authz.rbac(),
        user,
        grants,
        kind: t.def.kind.clone(),
        resource: t.def.resource.clone(),
        namespace: t.namespace.clone(),
    };
    Some(Arc::new(move |old: Option<&Value>, new: Option<&mut Value>| match new {
        Some(new) => check.run(old, new),
        None => Ok(()),
    }))
}

fn request_attrs<'a>(
    user: &'a UserInfo,
    namespace: &'a str,
    group: &'a str,
    resource: &'a str,
    name: &'a str,
) -> Attributes<'a> {
    Attributes {
        user: std::borrow::Cow::Borrowed(user),
        namespace: namespace.into(),
        api_group: group.into(),
        resource: resource.into(),
        name: name.into(),
        resource_request: true,
        ..Default::default()
    }
}

async fn allowed(authz: &Authorization, attrs: &Attributes<'_>) -> bool {
    authz.decide(attrs).await.0 == Decision::Allow
}

/// The body as the store will decode it (a body it cannot decode is refused by the write
/// anyway), off the worker thread when the store would decode it there too.
async fn sent_object(t: &Target<'_>, body: &[u8]) -> Option<Value> {
    use crate::filters::request_body::{heavy, offload};
    if !heavy(body.len(), &t.content_type) {
        return crate::store::rest::decode(body, &t.content_type, &t.def.kind).ok();
    }
    let (b, ct, kind) = (body.to_vec(), t.content_type.clone(), t.def.kind.clone());
    offload(b.len(), move || crate::store::rest::decode(&b, &ct, &kind).ok()).await
}

/// The roles a binding write may end up referring to: the body's (create, update, apply) and
/// the stored binding's (a patch keeps it, roleRef being immutable), defaulted.
fn candidate_refs(store: &Store, t: &Target, sent: Option<Value>) -> Vec<RoleRef> {
    let stored = (!t.name.is_empty()).then(|| store.storage.get(&t.def.key(&t.namespace, &t.name))).flatten();
    let mut refs: Vec<RoleRef> = Vec::new();
    for v in sent.iter().chain(stored.as_ref().map(|s| &*s.value)) {
        if let Some(rr) = role_ref_of(v).filter(|rr| !refs.contains(rr)) {
            refs.push(rr);
        }
    }
    refs
}

fn role_ref_of(v: &Value) -> Option<RoleRef> {
    let mut rr: RoleRef = serde_json::from_value(v.get("roleRef")?.clone()).ok()?;
    if rr.api_group.is_empty() {
        rr.api_group = GROUP.into();
    }
    Some(rr)
}

/// Everything the check needs, captured for the write.
struct Check {
    rbac: Option<Arc<RbacAuthorizer>>,
    user: UserInfo,
    grants: Grants,
    kind: String,
    resource: String,
    namespace: String,
}

impl Check {
    fn run(&self, old: Option<&Value>, new: &mut Value) -> Result<(), Status> {
        let name = new["metadata"]["name"].as_str().unwrap_or_default().to_string();
        file_defined(self.rbac.as_deref(), &self.kind, &self.resource, &self.namespace, &name)?;
        let binding = self.kind.ends_with("Binding");
        if binding {
            default_binding_json(new);
        }
        let gc_only = old.is_some_and(|o| only_gc_fields(o, new));
        if !gc_only {
            self.escalation(old, new, &name)?;
        }
        let mut errs = match decode(&self.kind, new.clone()) {
            Ok(_) => Vec::new(),
            Err(DecodeError::Invalid(errs)) => errs,
            Err(DecodeError::Malformed(e)) => {
                return Err(Status::bad_request(format!("error decoding request body: {e}")))
            }
        };
        if let (true, Some(old)) = (binding, old) {
            errs.extend(roleref_changed(old, new));
        }
        if errs.is_empty() {
            return Ok(());
        }
        Err(Status::invalid(GROUP, &self.kind, &name, errs))
    }

    fn escalation(&self, old: Option<&Value>, new: &Value, name: &str) -> Result<(), Status> {
        if escalation_allowed(&self.user) {
            return Ok(());
        }
        let policy = self.rbac.as_ref().map(|r| r.policy()).unwrap_or_else(|| Arc::new(Policy::default()));
        let malformed = |e: serde_json::Error| Status::bad_request(format!("error decoding request body: {e}"));
        if !self.kind.ends_with("Binding") {
            let role: Role = serde_json::from_value(new.clone()).map_err(malformed)?;
            let old: Option<Role> = old.and_then(|o| serde_json::from_value(o.clone()).ok());
            return check_role(&policy, &self.user, &self.grants, &self.resource, &self.namespace, old.as_ref(), &role);
        }
        let b: Binding = serde_json::from_value(new.clone()).map_err(malformed)?;
        let kind_fits = b.role_ref.kind == "ClusterRole" || (b.role_ref.kind == "Role" && self.kind == "RoleBinding");
        let unchanged = old.and_then(role_ref_of).is_none_or(|o| o == b.role_ref);
        // a changed roleRef is the validation's to refuse, unless its `bind` was asked
        if !kind_fits || (!unchanged && self.grants.may_bind(&b.role_ref).is_none()) {
            return Ok(());
        }
        check_binding(&policy, &self.user, &self.grants, &self.resource, &self.namespace, name, &b.role_ref)
    }
}

/// Refuses a write of an object a policy file defines: the file is its source.
fn file_defined(
    rbac: Option<&RbacAuthorizer>,
    kind: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Result<(), Status> {
    let Some(file) = rbac.and_then(|r| r.defined_by_file(kind, namespace, name)) else { return Ok(()) };
    let why = format!(
        "{kind} {} is defined by an RBAC policy file ({}); change it there",
        crate::api::field::quote(name),
        file.display()
    );
    Err(Status::forbidden(GROUP, resource, name, &why))
}

/// kube's update rule for bindings, on the stored and the new object (both defaulted).
fn roleref_changed(old: &Value, new: &Value) -> Vec<StatusCause> {
    let parse = |v: &Value| {
        let mut v = v.clone();
        default_binding_json(&mut v);
        serde_json::from_value::<Binding>(v).ok()
    };
    match (parse(old), parse(new)) {
        (Some(o), Some(n)) => validate_binding_update(&n, &o),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
