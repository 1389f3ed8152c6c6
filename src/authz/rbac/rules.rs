//! kube's RBAC rule matching (k8s.io/component-helpers/auth/rbac/validation `RuleAllows`)
//! and label selectors for ClusterRole aggregation. Allocation-free on the request path.

use super::types::{LabelSelector, PolicyRule};
use crate::authz::Attributes;
use std::collections::BTreeMap;

const ALL: &str = "*";

pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == ALL || g == group)
}

/// `resources` entries match `*`, the exact resource (`pods`), the combined
/// `resource/subresource` (`pods/log`), or `*/subresource` (`*/scale`).
pub fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        if r == ALL {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        // combined "resource/subresource" without building it
        if r.len() == resource.len() + 1 + subresource.len()
            && r.starts_with(resource)
            && r.as_bytes()[resource.len()] == b'/'
            && r.ends_with(subresource)
        {
            return true;
        }
        r.len() == subresource.len() + 2 && r.starts_with("*/") && r.ends_with(subresource)
    })
}

/// No resourceNames means every name; otherwise the request must name one of them
/// (so a rule with resourceNames never allows list or create without a name).
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

/// `*`, an exact path, or a prefix ending in `*` (`/apis/*`).
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls
        .iter()
        .any(|u| u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*'))))
}

/// Whether `rule` allows the request.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes<'_>) -> bool {
    if a.resource_request {
        verb_matches(rule, &a.verb)
            && api_group_matches(rule, &a.api_group)
            && resource_matches(rule, &a.resource, &a.subresource)
            && resource_name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_url_matches(rule, &a.path)
    }
}

/// metav1.LabelSelector semantics: matchLabels and matchExpressions (In, NotIn, Exists,
/// DoesNotExist) all hold; an empty selector selects everything.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    sel.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && sel.match_expressions.iter().all(|e| {
            let got = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => got.is_some_and(|v| e.values.contains(v)),
                "NotIn" => got.is_none_or(|v| !e.values.contains(v)),
                "Exists" => got.is_some(),
                "DoesNotExist" => got.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: vec![],
        }
    }

    fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        PolicyRule { verbs: v(verbs), non_resource_urls: v(urls), ..Default::default() }
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes<'static> {
        crate::authz::testing::res(&UserInfo::new("u", vec![]), verb, "ns", group, resource, sub, name)
    }

    fn path<'a>(verb: &'a str, p: &'a str) -> Attributes<'a> {
        let user = std::borrow::Cow::Owned(UserInfo::new("u", vec![]));
        Attributes { user, verb: verb.into(), path: p.into(), ..Default::default() }
    }

    #[test]
    fn resource_rules_table() {
        let cases: &[(&str, PolicyRule, Attributes, bool)] = &[
            ("exact", rule(&["get"], &[""], &["pods"], &[]), res("get", "", "pods", "", "p"), true),
            ("verb mismatch", rule(&["get"], &[""], &["pods"], &[]), res("list", "", "pods", "", ""), false),
            ("verb star", rule(&["*"], &[""], &["pods"], &[]), res("deletecollection", "", "pods", "", ""), true),
            ("group mismatch", rule(&["get"], &["apps"], &["pods"], &[]), res("get", "", "pods", "", ""), false),
            (
                "group star",
                rule(&["get"], &["*"], &["deployments"], &[]),
                res("get", "apps", "deployments", "", ""),
                true,
            ),
            ("resource star", rule(&["get"], &[""], &["*"], &[]), res("get", "", "secrets", "", ""), true),
            (
                "resource star covers subresources",
                rule(&["get"], &[""], &["*"], &[]),
                res("get", "", "pods", "log", ""),
                true,
            ),
            (
                "resource does not cover subresource",
                rule(&["get"], &[""], &["pods"], &[]),
                res("get", "", "pods", "log", ""),
                false,
            ),
            (
                "combined subresource",
                rule(&["get"], &[""], &["pods/log"], &[]),
                res("get", "", "pods", "log", "p"),
                true,
            ),
            (
                "subresource rule is not the parent",
                rule(&["get"], &[""], &["pods/log"], &[]),
                res("get", "", "pods", "", "p"),
                false,
            ),
            (
                "other subresource",
                rule(&["get"], &[""], &["pods/log"], &[]),
                res("get", "", "pods", "exec", "p"),
                false,
            ),
            (
                "star subresource",
                rule(&["update"], &["apps"], &["*/scale"], &[]),
                res("update", "apps", "deployments", "scale", "d"),
                true,
            ),
            (
                "star subresource other",
                rule(&["update"], &["apps"], &["*/scale"], &[]),
                res("update", "apps", "deployments", "status", "d"),
                false,
            ),
            (
                "star subresource needs subresource",
                rule(&["update"], &["apps"], &["*/scale"], &[]),
                res("update", "apps", "scale", "", ""),
                false,
            ),
            (
                "prefix-only lookalike",
                rule(&["get"], &[""], &["pod/log"], &[]),
                res("get", "", "pods", "log", ""),
                false,
            ),
            (
                "resourceNames match",
                rule(&["get"], &[""], &["configmaps"], &["a", "b"]),
                res("get", "", "configmaps", "", "b"),
                true,
            ),
            (
                "resourceNames miss",
                rule(&["get"], &[""], &["configmaps"], &["a"]),
                res("get", "", "configmaps", "", "c"),
                false,
            ),
            (
                "resourceNames never match list",
                rule(&["list"], &[""], &["configmaps"], &["a"]),
                res("list", "", "configmaps", "", ""),
                false,
            ),
            ("resource rule never matches a path", rule(&["get"], &["*"], &["*"], &[]), path("get", "/healthz"), false),
            ("exact url", urls(&["get"], &["/healthz"]), path("get", "/healthz"), true),
            ("url mismatch", urls(&["get"], &["/healthz"]), path("get", "/healthz/ping"), false),
            ("url star", urls(&["get"], &["*"]), path("get", "/anything"), true),
            ("url trailing star", urls(&["get"], &["/apis/*"]), path("get", "/apis/apps/v1"), true),
            ("url trailing star bare prefix", urls(&["get"], &["/apis/*"]), path("get", "/apis/"), true),
            ("url trailing star miss", urls(&["get"], &["/apis/*"]), path("get", "/api"), false),
            ("url verb", urls(&["get"], &["/metrics"]), path("post", "/metrics"), false),
            ("url rule never matches a resource", urls(&["*"], &["*"]), res("get", "", "pods", "", ""), false),
        ];
        for (name, r, a, want) in cases {
            assert_eq!(rule_allows(r, a), *want, "{name}");
        }
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        let mut s = LabelSelector::default();
        assert!(selector_matches(&s, &labels), "empty selects all");
        s.match_labels.insert("a".into(), "1".into());
        assert!(selector_matches(&s, &labels));
        s.match_labels.insert("a".into(), "2".into());
        assert!(!selector_matches(&s, &labels));
        let e = |op: &str, vals: &[&str]| LabelSelector {
            match_expressions: vec![super::super::types::LabelSelectorRequirement {
                key: "a".into(),
                operator: op.into(),
                values: vals.iter().map(|v| v.to_string()).collect(),
            }],
            ..Default::default()
        };
        assert!(selector_matches(&e("In", &["1", "3"]), &labels));
        assert!(!selector_matches(&e("NotIn", &["1"]), &labels));
        assert!(selector_matches(&e("Exists", &[]), &labels));
        assert!(!selector_matches(&e("DoesNotExist", &[]), &labels));
    }
}
