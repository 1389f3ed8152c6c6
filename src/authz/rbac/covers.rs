//! Whether one set of rules covers another (k8s.io/component-helpers/auth/rbac/validation
//! `Covers`), and the compact description of what is not covered that kube's escalation error
//! lists (pkg/registry/rbac/validation `CompactRules`, pkg/apis/rbac/v1 `CompactString`).

use super::types::PolicyRule;
use std::collections::BTreeSet;

const ALL: &str = "*";

fn has(set: &[String], e: &str) -> bool {
    set.iter().any(|s| s == e)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

/// `rule` split into rules of one group, resource, verb and (if any) resource name, and of one
/// non-resource URL and verb: each is then covered by a single owner rule or not at all.
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: one(verb),
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    out.extend(
                        rule.resource_names.iter().map(|n| PolicyRule { resource_names: one(n), ..base.clone() }),
                    );
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule { non_resource_urls: one(url), verbs: one(verb), ..Default::default() });
        }
    }
    out
}

/// `*`, every resource named, or `*/sub` for each `resource/sub` asked.
fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|w| has(owner, w) || w.split_once('/').is_some_and(|(_, sub)| has(owner, &format!("*/{sub}"))))
}

fn url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

/// kube's `ruleCovers`: the owner rule allows everything the (broken down) sub-rule does.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover(&owner.resources, &sub.resources);
    let urls = sub.non_resource_urls.iter().all(|p| owner.non_resource_urls.iter().any(|o| url_covers(o, p)));
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && urls && names
}

/// kube's `Covers`: the broken-down rules of `servant` that no rule of `owner` covers (none:
/// `owner` covers `servant`).
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant.iter().flat_map(breakdown).filter(|sub| !owner.iter().any(|o| rule_covers(o, sub))).collect()
}

/// kube's `CompactRules`: rules of one group, one resource and at most one name that differ
/// only in verbs become one rule with those verbs (in order of appearance).
pub fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut other = Vec::new();
    for r in rules {
        let is_simple = r.resource_names.len() <= 1
            && r.non_resource_urls.is_empty()
            && r.api_groups.len() == 1
            && r.resources.len() == 1;
        if !is_simple {
            other.push(r);
            continue;
        }
        let same = |s: &&mut PolicyRule| {
            s.api_groups == r.api_groups && s.resources == r.resources && s.resource_names == r.resource_names
        };
        match simple.iter_mut().find(same) {
            Some(s) => {
                for v in r.verbs {
                    if !s.verbs.contains(&v) {
                        s.verbs.push(v);
                    }
                }
            }
            None => simple.push(r),
        }
    }
    other.extend(simple);
    other
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quoted(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| crate::api::field::quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// kube's `CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
pub fn compact_string(r: &PolicyRule) -> String {
    let parts: Vec<String> = [
        ("APIGroups", &r.api_groups),
        ("Resources", &r.resources),
        ("NonResourceURLs", &r.non_resource_urls),
        ("ResourceNames", &r.resource_names),
        ("Verbs", &r.verbs),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}:{}", go_quoted(v)))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The lines of kube's escalation error: each missing rule compacted, sorted, once.
pub fn describe_missing(missing: Vec<PolicyRule>) -> Vec<String> {
    compact(missing).iter().map(compact_string).collect::<BTreeSet<_>>().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            ..Default::default()
        }
    }

    fn urls(verbs: &[&str], u: &[&str]) -> PolicyRule {
        PolicyRule { verbs: v(verbs), non_resource_urls: v(u), ..Default::default() }
    }

    /// Cases from kube's policy_comparator_test.go.
    #[test]
    fn covers_table() {
        let cases: Vec<(&str, Vec<PolicyRule>, Vec<PolicyRule>, bool)> = vec![
            ("exact", vec![rule(&["get"], &[""], &["pods"], &[])], vec![rule(&["get"], &[""], &["pods"], &[])], true),
            (
                "star verb",
                vec![rule(&["*"], &[""], &["pods"], &[])],
                vec![rule(&["delete"], &[""], &["pods"], &[])],
                true,
            ),
            (
                "star group",
                vec![rule(&["get"], &["*"], &["pods"], &[])],
                vec![rule(&["get"], &["apps"], &["pods"], &[])],
                true,
            ),
            (
                "star resource",
                vec![rule(&["get"], &[""], &["*"], &[])],
                vec![rule(&["get"], &[""], &["pods/log"], &[])],
                true,
            ),
            (
                "star subresource",
                vec![rule(&["get"], &[""], &["*/log"], &[])],
                vec![rule(&["get"], &[""], &["pods/log"], &[])],
                true,
            ),
            (
                "subresource is not the resource",
                vec![rule(&["get"], &[""], &["pods/log"], &[])],
                vec![rule(&["get"], &[""], &["pods"], &[])],
                false,
            ),
            (
                "resource is not its subresource",
                vec![rule(&["get"], &[""], &["pods"], &[])],
                vec![rule(&["get"], &[""], &["pods/log"], &[])],
                false,
            ),
            (
                "split across owner rules",
                vec![rule(&["get"], &[""], &["pods"], &[]), rule(&["list"], &[""], &["pods"], &[])],
                vec![rule(&["get", "list"], &[""], &["pods"], &[])],
                true,
            ),
            (
                "names covered by no names",
                vec![rule(&["get"], &[""], &["pods"], &[])],
                vec![rule(&["get"], &[""], &["pods"], &["a"])],
                true,
            ),
            (
                "no names not covered by names",
                vec![rule(&["get"], &[""], &["pods"], &["a"])],
                vec![rule(&["get"], &[""], &["pods"], &[])],
                false,
            ),
            (
                "names subset",
                vec![rule(&["get"], &[""], &["pods"], &["a", "b"])],
                vec![rule(&["get"], &[""], &["pods"], &["b"])],
                true,
            ),
            (
                "names other",
                vec![rule(&["get"], &[""], &["pods"], &["a"])],
                vec![rule(&["get"], &[""], &["pods"], &["c"])],
                false,
            ),
            ("url exact", vec![urls(&["get"], &["/metrics"])], vec![urls(&["get"], &["/metrics"])], true),
            ("url prefix", vec![urls(&["get"], &["/api/*"])], vec![urls(&["get"], &["/api/v1"])], true),
            ("url star", vec![urls(&["*"], &["*"])], vec![urls(&["post"], &["/x"])], true),
            ("url other", vec![urls(&["get"], &["/metrics"])], vec![urls(&["get"], &["/healthz"])], false),
            (
                "resource rule is not a url rule",
                vec![rule(&["*"], &["*"], &["*"], &[])],
                vec![urls(&["get"], &["/x"])],
                false,
            ),
            (
                "url rule is not a resource rule",
                vec![urls(&["*"], &["*"])],
                vec![rule(&["get"], &[""], &["pods"], &[])],
                false,
            ),
            (
                "star verb asked, not held",
                vec![rule(&["get", "list"], &["*"], &["*"], &[])],
                vec![rule(&["*"], &["*"], &["*"], &[])],
                false,
            ),
            ("nothing asked", vec![], vec![rule(&[], &[""], &["pods"], &[])], true),
        ];
        for (name, owner, servant, want) in cases {
            assert_eq!(uncovered(&owner, &servant).is_empty(), want, "{name}");
        }
    }

    #[test]
    fn missing_rules_are_described_as_kube_does() {
        let owner = vec![rule(&["get", "list"], &[""], &["configmaps"], &[])];
        let servant = vec![
            rule(&["get", "list", "watch"], &[""], &["configmaps", "secrets"], &[]),
            rule(&["delete"], &[""], &["pods"], &["p", "q"]),
            urls(&["get"], &["/metrics"]),
        ];
        assert_eq!(
            describe_missing(uncovered(&owner, &servant)),
            [
                r#"{APIGroups:[""], Resources:["configmaps"], Verbs:["watch"]}"#,
                r#"{APIGroups:[""], Resources:["pods"], ResourceNames:["p"], Verbs:["delete"]}"#,
                r#"{APIGroups:[""], Resources:["pods"], ResourceNames:["q"], Verbs:["delete"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "watch"]}"#,
                r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#,
            ]
        );
    }
}
