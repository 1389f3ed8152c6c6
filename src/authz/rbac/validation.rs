//! kube's RBAC defaulting and validation (pkg/apis/rbac/v1 defaults, pkg/apis/rbac/validation),
//! error for error, with kube's field-error texts. Policy files, stored objects fed to the
//! authorizer and writes through the API all go through these, so the store never holds an
//! object the authorizer would not compile.

use super::types::{Binding, LabelSelector, PolicyRule, Role, RoleRef, Subject};
use crate::api::field::{self, quote};
use crate::api::status::StatusCause;
use crate::store::validation::{validate_name, NameRule};

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// kube's aggregate of field errors: one as is, several as `[a, b]`.
pub fn join(errors: &[StatusCause]) -> String {
    let all: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
    if all.len() == 1 {
        all[0].clone()
    } else {
        format!("[{}]", all.join(", "))
    }
}

/// Go's `%#v` of a `[]string`.
pub fn go_strings(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// kube's defaults: a binding's roleRef.apiGroup and its User/Group subjects' apiGroup.
pub fn default_binding(b: &mut Binding) {
    if b.role_ref.api_group.is_empty() {
        b.role_ref.api_group = GROUP.into();
    }
    for s in &mut b.subjects {
        if s.api_group.is_empty() && matches!(s.kind.as_str(), "User" | "Group") {
            s.api_group = GROUP.into();
        }
    }
}

/// The same defaults on a binding's JSON, so that what is stored is what kube would store.
pub fn default_binding_json(v: &mut serde_json::Value) {
    if v["roleRef"].is_object() && v["roleRef"]["apiGroup"].as_str().unwrap_or("").is_empty() {
        v["roleRef"]["apiGroup"] = GROUP.into();
    }
    if let Some(subjects) = v.get_mut("subjects").and_then(|s| s.as_array_mut()) {
        for s in subjects.iter_mut().filter(|s| s.is_object()) {
            let user_or_group = matches!(s["kind"].as_str(), Some("User" | "Group"));
            if user_or_group && s["apiGroup"].as_str().unwrap_or("").is_empty() {
                s["apiGroup"] = GROUP.into();
            }
        }
    }
}

fn name_errors(field: &str, name: &str) -> Vec<StatusCause> {
    validate_name(NameRule::PathSegment, name)
        .into_iter()
        .map(|c| {
            let reason = if c.reason == "FieldValueRequired" { "FieldValueRequired" } else { "FieldValueInvalid" };
            field::cause(reason, field, c.message)
        })
        .collect()
}

/// kube's `ValidateLabelSelector`: the operators and their values.
pub fn validate_selector(sel: &LabelSelector, field: &str) -> Vec<StatusCause> {
    let mut errs = Vec::new();
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let f = format!("{field}.matchExpressions[{i}]");
        match e.operator.as_str() {
            "In" | "NotIn" if e.values.is_empty() => errs
                .push(field::required(&format!("{f}.values"), "must be specified when `operator` is 'In' or 'NotIn'")),
            "Exists" | "DoesNotExist" if !e.values.is_empty() => errs.push(field::forbidden(
                &format!("{f}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => errs.push(field::invalid(&format!("{f}.operator"), &quote(op), "not a valid selector operator")),
        }
    }
    errs
}

/// kube's `ValidatePolicyRule`.
pub fn validate_rule(rule: &PolicyRule, namespaced: bool, field: &str) -> Vec<StatusCause> {
    let mut errs = Vec::new();
    if rule.verbs.is_empty() {
        errs.push(field::required(&format!("{field}.verbs"), "verbs must contain at least one value"));
    }
    if !rule.non_resource_urls.is_empty() {
        let urls = go_strings(&rule.non_resource_urls);
        if namespaced {
            errs.push(field::invalid(
                &format!("{field}.nonResourceURLs"),
                &urls,
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !rule.api_groups.is_empty() || !rule.resources.is_empty() || !rule.resource_names.is_empty() {
            errs.push(field::invalid(
                &format!("{field}.nonResourceURLs"),
                &urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if rule.api_groups.is_empty() {
        errs.push(field::required(&format!("{field}.apiGroups"), "resource rules must supply at least one api group"));
    }
    if rule.resources.is_empty() {
        errs.push(field::required(&format!("{field}.resources"), "resource rules must supply at least one resource"));
    }
    errs
}

/// kube's `ValidateRole` / `ValidateClusterRole` (name, rules, aggregationRule).
pub fn validate_role(r: &Role, namespaced: bool) -> Vec<StatusCause> {
    let mut errs = name_errors("metadata.name", &r.metadata.name);
    for (i, rule) in r.rules.iter().enumerate() {
        errs.extend(validate_rule(rule, namespaced, &format!("rules[{i}]")));
    }
    if let Some(agg) = r.aggregation_rule.as_ref().filter(|_| !namespaced) {
        if agg.cluster_role_selectors.is_empty() {
            errs.push(field::required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, s) in agg.cluster_role_selectors.iter().enumerate() {
            errs.extend(validate_selector(s, &format!("aggregationRule.clusterRoleSelectors[{i}]")));
        }
    }
    errs
}

/// kube's `ValidateRoleBinding` / `ValidateClusterRoleBinding`, on a defaulted binding.
pub fn validate_binding(b: &Binding, namespaced: bool) -> Vec<StatusCause> {
    let mut errs = name_errors("metadata.name", &b.metadata.name);
    let rr = &b.role_ref;
    if rr.api_group != GROUP {
        errs.push(field::not_supported("roleRef.apiGroup", &quote(&rr.api_group), &[GROUP]));
    }
    match (rr.kind.as_str(), namespaced) {
        ("ClusterRole", _) | ("Role", true) => {}
        (k, true) => errs.push(field::not_supported("roleRef.kind", &quote(k), &["Role", "ClusterRole"])),
        (k, false) => errs.push(field::not_supported("roleRef.kind", &quote(k), &["ClusterRole"])),
    }
    if rr.name.is_empty() {
        errs.push(field::required("roleRef.name", ""));
    } else {
        errs.extend(name_errors("roleRef.name", &rr.name).into_iter().filter(|e| e.reason == "FieldValueInvalid"));
    }
    for (i, s) in b.subjects.iter().enumerate() {
        errs.extend(validate_subject(s, namespaced, &format!("subjects[{i}]")));
    }
    errs
}

/// kube's `ValidateRoleBindingSubject`.
fn validate_subject(s: &Subject, namespaced: bool, field: &str) -> Vec<StatusCause> {
    let mut errs = Vec::new();
    if s.name.is_empty() {
        errs.push(field::required(&format!("{field}.name"), ""));
    }
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                for c in validate_name(NameRule::Subdomain, &s.name) {
                    errs.push(field::cause("FieldValueInvalid", &format!("{field}.name"), c.message));
                }
            }
            if !s.api_group.is_empty() {
                errs.push(field::not_supported(&format!("{field}.apiGroup"), &quote(&s.api_group), &[""]));
            }
            if !namespaced && s.namespace.is_empty() {
                errs.push(field::required(&format!("{field}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if s.api_group != GROUP {
                errs.push(field::not_supported(&format!("{field}.apiGroup"), &quote(&s.api_group), &[GROUP]));
            }
        }
        k => errs.push(field::not_supported(&format!("{field}.kind"), &quote(k), &["ServiceAccount", "User", "Group"])),
    }
    errs
}

/// kube's `ValidateRoleBindingUpdate`'s own rule: roleRef never changes.
pub fn validate_binding_update(new: &Binding, old: &Binding) -> Vec<StatusCause> {
    if new.role_ref == old.role_ref {
        return Vec::new();
    }
    vec![field::invalid("roleRef", &go_role_ref(&new.role_ref), "cannot change roleRef")]
}

/// Go's `%#v` of the internal rbac.RoleRef, as kube prints it in this error.
fn go_role_ref(r: &RoleRef) -> String {
    format!("rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}", quote(&r.api_group), quote(&r.kind), quote(&r.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::rbac::load::parse_manifests;
    use crate::authz::rbac::types::RbacObject;

    fn errors_of(text: &str) -> String {
        format!("{:#}", parse_manifests(text).unwrap_err())
    }

    #[test]
    fn rule_errors_are_kubes_all_of_them() {
        let e = errors_of(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: n}\nrules:\n- {verbs: [get], nonResourceURLs: [/x], resources: [pods]}\n- {resources: [pods]}\n",
        );
        assert!(e.ends_with(r#"[rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs, rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs, rules[1].verbs: Required value: verbs must contain at least one value, rules[1].apiGroups: Required value: resource rules must supply at least one api group]"#), "{e}");
    }

    #[test]
    fn binding_errors_and_defaults() {
        let e = errors_of(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\nsubjects: [{kind: ServiceAccount, name: sa}, {kind: Robot, name: r}, {kind: User, name: ''}]\n",
        );
        assert!(e.ends_with(r#"[roleRef.kind: Unsupported value: "": supported values: "ClusterRole", roleRef.name: Required value, subjects[0].namespace: Required value, subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group", subjects[2].name: Required value]"#), "{e}");
        let ok = parse_manifests(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b, namespace: n}\nroleRef: {kind: Role, name: r}\nsubjects: [{kind: User, name: u}, {kind: ServiceAccount, name: sa}]\n",
        )
        .unwrap();
        let RbacObject::RoleBinding(b) = &ok[0] else { panic!() };
        assert_eq!(b.role_ref.api_group, GROUP);
        assert_eq!(b.subjects[0].api_group, GROUP);
        assert_eq!(b.subjects[1].api_group, "");

        let mut v = serde_json::json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "Group", "name": "g"}, {"kind": "ServiceAccount", "name": "s"}]});
        default_binding_json(&mut v);
        assert_eq!(v["roleRef"]["apiGroup"], GROUP);
        assert_eq!(v["subjects"][0]["apiGroup"], GROUP);
        assert!(v["subjects"][1].get("apiGroup").is_none());
    }

    #[test]
    fn role_ref_is_immutable() {
        let old = Binding {
            role_ref: RoleRef { api_group: GROUP.into(), kind: "ClusterRole".into(), name: "view".into() },
            ..Default::default()
        };
        let mut new = old.clone();
        assert!(validate_binding_update(&new, &old).is_empty());
        new.role_ref.name = "edit".into();
        assert_eq!(
            join(&validate_binding_update(&new, &old)),
            r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#
        );
    }
}
