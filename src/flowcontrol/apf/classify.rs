//! kube's classification (apf_controller.go `Match` and rule.go): the first FlowSchema, by
//! matchingPrecedence then name, one of whose rules matches both the request's user and
//! what it asks for; its distinguisher names the flow.

use super::types::{FlowSchema, NonResourceRule, PolicyRulesWithSubjects, ResourceRule, Subject};
use crate::authn::UserInfo;
use crate::request_info::RequestInfo;

/// The `*` of kube's flowcontrol rules.
const ALL: &str = "*";

/// Whether the schema matches the request; the caller walks schemas in order.
pub fn matches(fs: &FlowSchema, user: &UserInfo, info: &RequestInfo) -> bool {
    fs.spec.rules.iter().any(|r| rule_matches(r, user, info))
}

fn rule_matches(r: &PolicyRulesWithSubjects, user: &UserInfo, info: &RequestInfo) -> bool {
    if !r.subjects.iter().any(|s| subject_matches(s, user)) {
        return false;
    }
    if info.is_resource_request {
        r.resource_rules.iter().any(|rr| resource_matches(rr, info))
    } else {
        r.non_resource_rules.iter().any(|nr| non_resource_matches(nr, info))
    }
}

fn subject_matches(s: &Subject, user: &UserInfo) -> bool {
    match s.kind.as_str() {
        "User" => s.user.as_ref().is_some_and(|u| u.name == ALL || u.name == user.username),
        "Group" => s.group.as_ref().is_some_and(|g| g.name == ALL || user.groups.contains(&g.name)),
        "ServiceAccount" => s.service_account.as_ref().is_some_and(|sa| {
            let Some(rest) = user.username.strip_prefix("system:serviceaccount:") else { return false };
            let Some((ns, name)) = rest.split_once(':') else { return false };
            ns == sa.namespace && (sa.name == ALL || sa.name == name)
        }),
        _ => false,
    }
}

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == ALL || x == v)
}

fn resource_matches(r: &ResourceRule, info: &RequestInfo) -> bool {
    has(&r.verbs, info.verb())
        && has(&r.api_groups, info.api_group())
        && r.resources.iter().any(|x| x == ALL || names_resource(x, info.resource(), info.subresource()))
        && if info.namespace().is_empty() { r.cluster_scope } else { has(&r.namespaces, info.namespace()) }
}

/// Whether a rule's `resource` or `resource/subresource` names the request's (without
/// building the joined name for every rule tried).
fn names_resource(rule: &str, resource: &str, subresource: &str) -> bool {
    if subresource.is_empty() {
        return rule == resource;
    }
    rule.strip_prefix(resource).and_then(|r| r.strip_prefix('/')) == Some(subresource)
}

fn non_resource_matches(r: &NonResourceRule, info: &RequestInfo) -> bool {
    has(&r.verbs, info.verb()) && r.non_resource_urls.iter().any(|p| url_matches(p, info.path()))
}

/// kube's nonResourceURLs (`matchPolicyRuleNonResourceURL`): `*`, the exact path, or what is
/// below the rule's path: `/healthz` covers `/healthz/etcd`, and `/healthz/*` covers that but
/// not `/healthz` itself.
fn url_matches(pattern: &str, path: &str) -> bool {
    if pattern == ALL || pattern == path {
        return true;
    }
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// The flow's distinguisher: the user's name, the namespace, or nothing.
pub fn distinguisher(fs: &FlowSchema, user: &UserInfo, info: &RequestInfo) -> String {
    match fs.spec.distinguisher_method.as_ref().map(|d| d.kind.as_str()) {
        Some("ByUser") => user.username.clone(),
        Some("ByNamespace") => info.namespace().to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_resource_url_patterns() {
        assert!(url_matches("*", "/anything"));
        assert!(url_matches("/healthz", "/healthz"));
        // what is below a rule's path is covered, with or without its `/*`
        assert!(url_matches("/healthz", "/healthz/etcd"));
        assert!(url_matches("/healthz", "/healthz/"));
        assert!(!url_matches("/healthz", "/healthzx"));
        assert!(!url_matches("/healthz/*", "/healthz"));
        assert!(url_matches("/healthz/*", "/healthz/etcd"));
        assert!(!url_matches("/healthz/*", "/healthzx"));
    }

    #[test]
    fn resource_names_with_subresources() {
        assert!(names_resource("pods", "pods", ""));
        assert!(!names_resource("pods", "pods", "status"));
        assert!(names_resource("pods/status", "pods", "status"));
        assert!(!names_resource("pods/status", "pods", ""));
        assert!(!names_resource("podsx/status", "pods", "status"));
        assert!(!names_resource("pods/statusx", "pods", "status"));
    }
}
