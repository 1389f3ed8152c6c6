//! The compiled RBAC policy: aggregated ClusterRoles and an index of bindings by subject
//! (user, group; service accounts as their user names) and namespace, so a decision looks up
//! only the bindings that can apply to the requester instead of walking every binding.

use super::rules::{rule_allows, selector_matches};
use super::types::{PolicyRule, RbacObject, Role, Subject};
use crate::api::field::quote;
use crate::authn::UserInfo;
use crate::authz::{Attributes, Decision};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a binding grants: the rules of a role, or the error of a missing role (kept so a
/// denial can say why, as kube's RBAC does).
#[derive(Debug, Clone, Copy)]
enum Target {
    Role(u32),
    Missing(u32),
}

#[derive(Debug, Clone, Copy)]
struct Grant {
    target: Target,
    /// Index of the precomputed "RBAC: allowed by ..." reason (built once, not per request).
    reason: u32,
}

#[derive(Debug, Default)]
struct SubjectIndex {
    users: FxHashMap<String, Vec<Grant>>,
    groups: FxHashMap<String, Vec<Grant>>,
}

impl SubjectIndex {
    /// Every grant applying to `user`, by name and then by each group.
    fn each<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = &'a Grant> + 'a {
        self.users
            .get(user.username.as_str())
            .into_iter()
            .chain(user.groups.iter().filter_map(|g| self.groups.get(g.as_str())))
            .flatten()
    }

    fn add(&mut self, s: &Subject, binding_ns: &str, g: Grant) {
        match s.kind.as_str() {
            "User" => self.users.entry(s.name.clone()).or_default().push(g),
            "Group" => self.groups.entry(s.name.clone()).or_default().push(g),
            "ServiceAccount" => {
                let ns = if s.namespace.is_empty() { binding_ns } else { s.namespace.as_str() };
                if !ns.is_empty() {
                    self.users.entry(format!("system:serviceaccount:{ns}:{}", s.name)).or_default().push(g);
                }
            }
            _ => {}
        }
    }
}

/// An immutable, compiled policy; swapped whole on every change.
#[derive(Debug, Default)]
pub struct Policy {
    roles: Vec<Vec<PolicyRule>>,
    /// ClusterRoles by name and Roles by (namespace, name): ids into `roles`.
    cluster_role_ids: FxHashMap<String, u32>,
    role_ids: FxHashMap<(String, String), u32>,
    /// Shared with every request a grant allows (`Arc`): the text is built once, here.
    reasons: Vec<Arc<str>>,
    missing: Vec<String>,
    /// The role each `missing` entry names: (ClusterRole?, name).
    missing_refs: Vec<(bool, String)>,
    cluster: SubjectIndex,
    namespaces: FxHashMap<String, SubjectIndex>,
    /// Object counts, for the reload log.
    pub counts: [usize; 4],
}

/// The rules that apply to a user in a namespace, for SelfSubjectRulesReview.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    pub rules: Vec<PolicyRule>,
    pub errors: Vec<String>,
    /// The roles behind `errors`: (ClusterRole?, name).
    pub missing: Vec<(bool, String)>,
}

fn describe_subject(s: &Subject, binding_ns: &str) -> String {
    if s.kind == "ServiceAccount" {
        let ns = if s.namespace.is_empty() { binding_ns } else { &s.namespace };
        format!("{} {}", s.kind, quote(&format!("{}/{}", s.name, ns)))
    } else {
        format!("{} {}", s.kind, quote(&s.name))
    }
}

impl Policy {
    /// Compiles objects (later ones replace earlier ones with the same kind/namespace/name).
    pub fn compile(objects: Vec<RbacObject>) -> Policy {
        let mut merged: BTreeMap<(&'static str, String, String), RbacObject> = BTreeMap::new();
        for o in objects {
            merged.insert(o.key(), o);
        }
        let mut cluster_roles: BTreeMap<String, Role> = BTreeMap::new();
        let mut roles: BTreeMap<(String, String), Role> = BTreeMap::new();
        let mut bindings = Vec::new();
        for (_, o) in merged {
            match o {
                RbacObject::ClusterRole(r) => {
                    cluster_roles.insert(r.metadata.name.clone(), r);
                }
                RbacObject::Role(r) => {
                    roles.insert((r.metadata.namespace.clone(), r.metadata.name.clone()), r);
                }
                RbacObject::RoleBinding(b) => bindings.push((false, b)),
                RbacObject::ClusterRoleBinding(b) => bindings.push((true, b)),
            }
        }
        aggregate(&mut cluster_roles);

        let mut p = Policy {
            counts: [
                roles.len(),
                cluster_roles.len(),
                bindings.iter().filter(|b| !b.0).count(),
                bindings.iter().filter(|b| b.0).count(),
            ],
            ..Default::default()
        };
        for (name, r) in cluster_roles {
            p.cluster_role_ids.insert(name, p.roles.len() as u32);
            p.roles.push(r.rules);
        }
        for (key, r) in roles {
            p.role_ids.insert(key, p.roles.len() as u32);
            p.roles.push(r.rules);
        }
        for (cluster, b) in bindings {
            let rr = b.role_ref;
            let ns = b.metadata.namespace.clone();
            let target = match p.role_id(&rr.kind, &ns, &rr.name) {
                Some(id) => Target::Role(id),
                None => {
                    let res = if rr.kind == "ClusterRole" { "clusterrole" } else { "role" };
                    p.missing.push(format!("{res}.rbac.authorization.k8s.io {} not found", quote(&rr.name)));
                    p.missing_refs.push((rr.kind == "ClusterRole", rr.name.clone()));
                    Target::Missing(p.missing.len() as u32 - 1)
                }
            };
            let index = if cluster { &mut p.cluster } else { p.namespaces.entry(ns.clone()).or_default() };
            for s in &b.subjects {
                let subject = describe_subject(s, &ns);
                let reason = if cluster {
                    format!(
                        "RBAC: allowed by ClusterRoleBinding {} of {} {} to {subject}",
                        quote(&b.metadata.name),
                        rr.kind,
                        quote(&rr.name)
                    )
                } else {
                    format!(
                        "RBAC: allowed by RoleBinding {} of {} {} to {subject}",
                        quote(&format!("{}/{}", b.metadata.name, ns)),
                        rr.kind,
                        quote(&rr.name)
                    )
                };
                p.reasons.push(reason.into());
                let reason = p.reasons.len() as u32 - 1;
                index.add(s, &ns, Grant { target, reason });
            }
        }
        p
    }

    fn role_id(&self, kind: &str, namespace: &str, name: &str) -> Option<u32> {
        match kind {
            "ClusterRole" => self.cluster_role_ids.get(name).copied(),
            "Role" => self.role_ids.get(&(namespace.to_string(), name.to_string())).copied(),
            _ => None,
        }
    }

    /// The rules of the role a binding in `namespace` refers to (kube's
    /// `GetRoleReferenceRules`); ClusterRoles with their aggregated rules.
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<&[PolicyRule]> {
        self.role_id(kind, namespace, name).map(|id| self.roles[id as usize].as_slice())
    }

    /// kube's RBAC decision: Allow with the granting binding as reason, or NoOpinion
    /// (with any missing-role errors met on the way as reason).
    pub fn authorize(&self, a: &Attributes<'_>) -> (Decision, Arc<str>) {
        let mut missing: Vec<u32> = Vec::new();
        let ns_index = if a.namespace.is_empty() { None } else { self.namespaces.get(&*a.namespace) };
        let grants = self.cluster.each(&a.user).chain(ns_index.into_iter().flat_map(|i| i.each(&a.user)));
        for g in grants {
            match g.target {
                Target::Role(id) => {
                    if self.roles[id as usize].iter().any(|r| rule_allows(r, a)) {
                        return (Decision::Allow, self.reasons[g.reason as usize].clone());
                    }
                }
                Target::Missing(e) => {
                    if !missing.contains(&e) {
                        missing.push(e);
                    }
                }
            }
        }
        let reason = match missing.as_slice() {
            [] => Arc::default(),
            [one] => format!("RBAC: {}", self.missing[*one as usize]).into(),
            many => format!(
                "RBAC: [{}]",
                many.iter().map(|e| self.missing[*e as usize].as_str()).collect::<Vec<_>>().join(", ")
            )
            .into(),
        };
        (Decision::NoOpinion, reason)
    }

    /// The rules granted to `user` at the cluster scope and, if given, in `namespace`.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Rules {
        let mut out = Rules::default();
        let mut seen = Vec::new();
        let ns_index = if namespace.is_empty() { None } else { self.namespaces.get(namespace) };
        for g in self.cluster.each(user).chain(ns_index.into_iter().flat_map(|i| i.each(user))) {
            match g.target {
                Target::Role(id) if !seen.contains(&id) => {
                    seen.push(id);
                    out.rules.extend(self.roles[id as usize].iter().cloned());
                }
                Target::Missing(e) => {
                    let msg = self.missing[e as usize].clone();
                    if !out.errors.contains(&msg) {
                        out.errors.push(msg);
                        out.missing.push(self.missing_refs[e as usize].clone());
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// kube's ClusterRole aggregation controller, run to a fixed point: an aggregated role's
/// rules become the union of the rules of every other ClusterRole its selectors match.
fn aggregate(cluster_roles: &mut BTreeMap<String, Role>) {
    for _ in 0..16 {
        let mut changed = false;
        let names: Vec<String> =
            cluster_roles.iter().filter(|(_, r)| r.aggregation_rule.is_some()).map(|(n, _)| n.clone()).collect();
        for name in names {
            let sels = cluster_roles[&name].aggregation_rule.clone().unwrap_or_default().cluster_role_selectors;
            let mut rules: Vec<PolicyRule> = Vec::new();
            for sel in &sels {
                for (other, r) in cluster_roles.iter() {
                    if *other == name || !selector_matches(sel, &r.metadata.labels) {
                        continue;
                    }
                    for rule in &r.rules {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                        }
                    }
                }
            }
            let role = cluster_roles.get_mut(&name).expect("present");
            if role.rules != rules {
                role.rules = rules;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}
