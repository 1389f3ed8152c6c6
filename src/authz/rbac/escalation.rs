//! Escalation prevention as kube's RBAC storage does it (pkg/registry/rbac/*/policybased,
//! pkg/registry/rbac/escalation_check.go, validation.ConfirmNoEscalation): a Role or ClusterRole
//! may only grant what its writer holds (or the writer may `escalate` it), a binding may only
//! refer to a role whose permissions its writer holds (or the writer may `bind` it), and
//! system:masters may do anything. What the authorizer chain says about `escalate` and `bind`
//! is asked before the write (the chain is async; the write is not) and handed in as [`Grants`].

// Status (kube's error body) is the error type, as in the store whose writes these check.
#![allow(clippy::result_large_err)]

use super::covers::{describe_missing, uncovered};
use super::policy::Policy;
use super::types::{PolicyRule, Role, RoleRef};
use crate::api::Status;
use crate::authn::UserInfo;

use super::validation::GROUP;

/// What the authorizer chain allows the writer, resolved before the write.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// `escalate` on the role being written (kube's `RoleEscalationAuthorized`).
    pub escalate: bool,
    /// `bind` on each role a binding being written may refer to (kube's `BindingAuthorized`).
    pub bind: Vec<(RoleRef, bool)>,
}

impl Grants {
    /// Whether `bind` on `rr` was asked and allowed; `None` when it was not asked.
    pub fn may_bind(&self, rr: &RoleRef) -> Option<bool> {
        self.bind.iter().find(|(r, _)| r == rr).map(|(_, allowed)| *allowed)
    }
}

/// kube's superuser check (`EscalationAllowed`): system:masters may always write RBAC.
pub fn escalation_allowed(user: &UserInfo) -> bool {
    user.is_system_master()
}

/// kube's `ConfirmNoEscalation`: the writer's own RBAC rules in `namespace` (the cluster's and,
/// for a namespace, its bindings') must cover `rules`. The error is kube's text.
pub fn confirm_no_escalation(
    policy: &Policy,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let owner = policy.rules_for(user, namespace);
    let missing = uncovered(&owner.rules, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        crate::api::field::quote(&user.username),
        super::covers::go_quoted(&user.groups),
        describe_missing(missing).join("\n")
    );
    if !owner.missing.is_empty() {
        // the registry's NotFound errors, as one aggregate inside Go's %v of an []error
        let errs: Vec<String> = owner
            .missing
            .iter()
            .map(|(cluster, name)| {
                let res = if *cluster { "clusterroles" } else { "roles" };
                format!("{res}.{GROUP} {} not found", crate::api::field::quote(name))
            })
            .collect();
        let aggregate = if errs.len() == 1 { errs[0].clone() } else { format!("[{}]", errs.join(", ")) };
        msg.push_str(&format!("; resolution errors: [{aggregate}]"));
    }
    Err(msg)
}

/// The ClusterRole storage's rule: an aggregationRule gathers anything, so it needs all of it.
fn full_authority() -> Vec<PolicyRule> {
    let all = vec!["*".to_string()];
    vec![
        PolicyRule { verbs: all.clone(), api_groups: all.clone(), resources: all.clone(), ..Default::default() },
        PolicyRule { verbs: all.clone(), non_resource_urls: all, ..Default::default() },
    ]
}

/// A Role (`resource` "roles", in `namespace`) or ClusterRole ("clusterroles") being created
/// (`old` None) or updated: kube's policybased role storage.
pub fn check_role(
    policy: &Policy,
    user: &UserInfo,
    grants: &Grants,
    resource: &str,
    namespace: &str,
    old: Option<&Role>,
    new: &Role,
) -> Result<(), Status> {
    if escalation_allowed(user) || grants.escalate {
        return Ok(());
    }
    let name = &new.metadata.name;
    let forbidden = |why: &str| Status::forbidden(GROUP, resource, name, why);
    confirm_no_escalation(policy, user, namespace, &new.rules).map_err(|e| forbidden(&e))?;
    let aggregates = |r: &Role| r.aggregation_rule.as_ref().is_some_and(|a| !a.cluster_role_selectors.is_empty());
    if resource == "clusterroles"
        && (aggregates(new) || old.is_some_and(aggregates))
        && confirm_no_escalation(policy, user, namespace, &full_authority()).is_err()
    {
        return Err(forbidden("must have cluster-admin privileges to use the aggregationRule"));
    }
    Ok(())
}

/// A RoleBinding (`resource` "rolebindings", in `namespace`) or ClusterRoleBinding being
/// written with `role_ref`: kube's policybased binding storage. A role that does not exist
/// is kube's NotFound (unless the writer may bind it, or is system:masters).
pub fn check_binding(
    policy: &Policy,
    user: &UserInfo,
    grants: &Grants,
    resource: &str,
    namespace: &str,
    name: &str,
    role_ref: &RoleRef,
) -> Result<(), Status> {
    if escalation_allowed(user) || grants.may_bind(role_ref) == Some(true) {
        return Ok(());
    }
    let Some(rules) = policy.role_rules(&role_ref.kind, namespace, &role_ref.name) else {
        let res = if role_ref.kind == "ClusterRole" { "clusterroles" } else { "roles" };
        return Err(Status::not_found(GROUP, res, &role_ref.name));
    };
    confirm_no_escalation(policy, user, namespace, rules).map_err(|e| Status::forbidden(GROUP, resource, name, &e))
}

/// kube's `IsOnlyMutatingGCFields`: an update that changes nothing but owner references,
/// finalizers and deletion marks is let through unchecked (the garbage collector's writes).
pub fn only_gc_fields(old: &serde_json::Value, new: &serde_json::Value) -> bool {
    const IGNORED: [&str; 8] = [
        "ownerReferences",
        "finalizers",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "managedFields",
        "generation",
    ];
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            for k in IGNORED {
                m.remove(k);
            }
        }
        v
    };
    strip(old) == strip(new)
}

#[cfg(test)]
mod tests;
