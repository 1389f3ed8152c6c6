//! kube's defaults and validation of `flowcontrol.apiserver.k8s.io/v1` FlowSchemas and
//! PriorityLevelConfigurations (k8s.io/kubernetes pkg/apis/flowcontrol/v1 defaults and
//! pkg/apis/flowcontrol/validation), on the JSON as written: the store answers an invalid write
//! with kube's 422 and causes, and a policy file naming an invalid object is refused with the
//! same texts. Both sides default first, as kube decodes before it validates.
//!
//! One difference: kube prints the offending spec of a mandatory object Go's way (`%#v`, with
//! pointer addresses); here it is the spec's JSON.

use crate::api::field::{self, cause, forbidden, not_supported, required};
use crate::api::status::StatusCause;
use crate::store::validation::{dns_label, dns_subdomain};
use serde_json::{json, Value};

/// kube's bounds (`FlowSchemaMaxMatchingPrecedence`, `priorityLevelConfigurationQueuingMaxQueues`,
/// shuffle sharding's `MaxHashBits`).
const MAX_PRECEDENCE: i64 = 10000;
const MAX_QUEUES: i64 = 10_000_000;
const MAX_HASH_BITS: f64 = 60.0;
const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch"];
const NS_INTRO: &str = "each member of this list must be '*' or a DNS-1123 label; ";

/// v1's defaults: a schema's matchingPrecedence 1000; a limited level's 30 shares, lendable 0%
/// and queuing 64 queues, hand 8, 50 per queue; an exempt level's 0 shares and 0%.
pub fn set_defaults(resource: &str, obj: &mut Value) {
    match resource {
        "flowschemas" if obj["spec"].is_object() && obj["spec"]["matchingPrecedence"].as_i64().unwrap_or(0) == 0 => {
            obj["spec"]["matchingPrecedence"] = json!(1000);
        }
        "prioritylevelconfigurations" => {
            let spec = &mut obj["spec"];
            if spec["limited"].is_object() {
                let l = &mut spec["limited"];
                default_null(l, "nominalConcurrencyShares", 30);
                default_null(l, "lendablePercent", 0);
                if l["limitResponse"]["queuing"].is_object() {
                    let q = &mut l["limitResponse"]["queuing"];
                    for (k, d) in [("queues", 64), ("handSize", 8), ("queueLengthLimit", 50)] {
                        if q[k].as_i64().unwrap_or(0) == 0 {
                            q[k] = json!(d);
                        }
                    }
                }
            }
            if spec["exempt"].is_object() {
                default_null(&mut spec["exempt"], "nominalConcurrencyShares", 0);
                default_null(&mut spec["exempt"], "lendablePercent", 0);
            }
        }
        _ => {}
    }
}

fn default_null(v: &mut Value, key: &str, d: i64) {
    if v[key].is_null() {
        v[key] = json!(d);
    }
}

/// Go's rendering of a bad value: numbers plain, strings quoted, string lists as `[]string{..}`.
fn shown(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[]string{{{}}}", a.iter().map(shown).collect::<Vec<_>>().join(", ")),
        Value::Null => "\"\"".into(),
        other => other.to_string(),
    }
}

fn invalid(path: &str, v: &Value, detail: &str) -> StatusCause {
    field::invalid(path, &shown(v), detail)
}

fn str_at<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn list(v: &Value) -> Vec<&str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

/// kube's Semantic.DeepEqual on decoded objects: absent, null, zero and empty are one.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter().map(|(k, v)| (k.clone(), normalized(v))).filter(|(_, v)| !crate::api::is_go_zero(v)).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// A mandatory bootstrap object's spec, defaulted.
fn mandatory_spec(resource: &str, name: &str) -> Option<Value> {
    let mandatory = if resource == "flowschemas" { super::MANDATORY_SCHEMAS } else { super::MANDATORY_LEVELS };
    if !mandatory.contains(&name) {
        return None;
    }
    let (_, mut boot) = super::ensurer::bootstrap_objects()
        .into_iter()
        .find(|(r, v)| *r == resource && v["metadata"]["name"] == name)?;
    set_defaults(resource, &mut boot);
    Some(boot["spec"].clone())
}

/// kube's `ValidateFlowSchema` less ObjectMeta (the store checks that for every kind).
pub fn flow_schema(obj: &Value) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let spec = &obj["spec"];
    let precedence = &spec["matchingPrecedence"];
    let p = precedence.as_i64().unwrap_or(0);
    let field = "spec.matchingPrecedence";
    if p <= 0 {
        out.push(invalid(field, precedence, "must be a positive value"));
    }
    if p > MAX_PRECEDENCE {
        out.push(invalid(field, precedence, &format!("must not be greater than {MAX_PRECEDENCE}")));
    }
    if p == 1 && name != "exempt" {
        out.push(invalid(field, precedence, "only the schema named 'exempt' may have matchingPrecedence 1"));
    }
    if spec["distinguisherMethod"].is_object() {
        let t = str_at(&spec["distinguisherMethod"], "type");
        if t != "ByUser" && t != "ByNamespace" {
            out.push(not_supported(
                "spec.distinguisherMethod.type",
                &format!("flowcontrol.FlowDistinguisherMethod{{Type:{}}}", field::quote(t)),
                &["ByNamespace", "ByUser"],
            ));
        }
    }
    let level = str_at(&spec["priorityLevelConfiguration"], "name");
    if level.is_empty() {
        out.push(required("spec.priorityLevelConfiguration.name", "must reference a priority level"));
    }
    for m in dns_subdomain(level).into_iter().filter(|_| !level.is_empty()) {
        out.push(invalid("spec.priorityLevelConfiguration.name", &json!(level), &m));
    }
    for (i, rule) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        rule_with_subjects(rule, &format!("spec.rules[{i}]"), &mut out);
    }
    if let Some(want) = mandatory_spec("flowschemas", name) {
        if normalized(spec) != normalized(&want) {
            out.push(cause(
                "FieldValueInvalid",
                "spec",
                format!("Invalid value: {spec}: spec of '{name}' must equal the fixed value"),
            ));
        }
    }
    conditions(&obj["status"], &mut out);
    out
}

fn rule_with_subjects(rule: &Value, path: &str, out: &mut Vec<StatusCause>) {
    let subjects = rule["subjects"].as_array().map(Vec::as_slice).unwrap_or_default();
    if subjects.is_empty() {
        out.push(required(&format!("{path}.subjects"), "subjects must contain at least one value"));
    }
    for (i, s) in subjects.iter().enumerate() {
        subject(s, &format!("{path}.subjects[{i}]"), out);
    }
    let resource_rules = rule["resourceRules"].as_array().map(Vec::as_slice).unwrap_or_default();
    let non_resource_rules = rule["nonResourceRules"].as_array().map(Vec::as_slice).unwrap_or_default();
    if resource_rules.is_empty() && non_resource_rules.is_empty() {
        out.push(required(path, "at least one of resourceRules and nonResourceRules has to be non-empty"));
    }
    for (i, r) in resource_rules.iter().enumerate() {
        resource_rule(r, &format!("{path}.resourceRules[{i}]"), out);
    }
    for (i, r) in non_resource_rules.iter().enumerate() {
        non_resource_rule(r, &format!("{path}.nonResourceRules[{i}]"), out);
    }
}

fn subject(s: &Value, path: &str, out: &mut Vec<StatusCause>) {
    let kind = str_at(s, "kind");
    let present = |k: &str| !s[k].is_null();
    let (own, others): (&str, &[(&str, &str)]) = match kind {
        "ServiceAccount" => ("serviceAccount", &[("user", "User"), ("group", "Group")]),
        "User" => ("user", &[("serviceAccount", "ServiceAccount"), ("group", "Group")]),
        "Group" => ("group", &[("serviceAccount", "ServiceAccount"), ("user", "User")]),
        other => {
            out.push(not_supported(
                &format!("{path}.kind"),
                &field::quote(other),
                &["Group", "ServiceAccount", "User"],
            ));
            return;
        }
    };
    let field = format!("{path}.{own}");
    let v = &s[own];
    if v.is_null() {
        out.push(required(&field, &format!("{own} is required when subject kind is '{kind}'")));
    } else if kind == "ServiceAccount" {
        let name = str_at(v, "name");
        if name.is_empty() {
            out.push(required(&format!("{field}.name"), ""));
        } else if name != "*" {
            for m in dns_subdomain(name) {
                out.push(invalid(&format!("{field}.name"), &json!(name), &m));
            }
        }
        let ns = str_at(v, "namespace");
        if ns.is_empty() {
            out.push(required(&format!("{field}.namespace"), "must specify namespace for service account"));
        }
        for m in dns_label(ns).into_iter().filter(|_| !ns.is_empty()) {
            out.push(invalid(&format!("{field}.namespace"), &json!(ns), &m));
        }
    } else if str_at(v, "name").is_empty() {
        out.push(required(&format!("{field}.name"), ""));
    }
    for (k, kind_name) in others {
        if present(k) {
            out.push(forbidden(
                &format!("{path}.{k}"),
                &format!("{k} is forbidden when subject kind is not '{kind_name}'"),
            ));
        }
    }
}

/// The verbs of a rule: required, '*' alone, or kube's verbs.
fn verbs(rule: &Value, path: &str, out: &mut Vec<StatusCause>) {
    let field = format!("{path}.verbs");
    let v = list(&rule["verbs"]);
    if v.is_empty() {
        out.push(required(&field, "verbs must contain at least one value"));
    } else if v.contains(&"*") {
        if v.len() > 1 {
            out.push(invalid(&field, &rule["verbs"], "if '*' is present, must not specify other verbs"));
        }
    } else if !v.iter().all(|x| VERBS.contains(x)) {
        out.push(not_supported(&field, &shown(&rule["verbs"]), VERBS));
    }
}

fn resource_rule(rule: &Value, path: &str, out: &mut Vec<StatusCause>) {
    verbs(rule, path, out);
    for (key, what) in [("apiGroups", "api group"), ("resources", "resource")] {
        let field = format!("{path}.{key}");
        let v = list(&rule[key]);
        if v.is_empty() {
            out.push(required(&field, &format!("resource rules must supply at least one {what}")));
        } else if v.len() > 1 && v.contains(&"*") {
            out.push(invalid(&field, &rule[key], &format!("if '*' is present, must not specify other {what}s")));
        }
    }
    let field = format!("{path}.namespaces");
    let ns = list(&rule["namespaces"]);
    if ns.is_empty() && rule["clusterScope"] != true {
        out.push(required(&field, "resource rules that are not cluster scoped must supply at least one namespace"));
    } else if ns.contains(&"*") {
        if ns.len() > 1 {
            out.push(invalid(&field, &rule["namespaces"], "if '*' is present, must not specify other namespaces"));
        }
    } else {
        for (i, n) in ns.iter().enumerate() {
            for m in dns_label(n) {
                out.push(invalid(&format!("{field}[{i}]"), &json!(n), &format!("{NS_INTRO}{m}")));
            }
        }
    }
}

fn non_resource_rule(rule: &Value, path: &str, out: &mut Vec<StatusCause>) {
    verbs(rule, path, out);
    let field = format!("{path}.nonResourceURLs");
    let urls = list(&rule["nonResourceURLs"]);
    if urls.is_empty() {
        out.push(required(&field, "nonResourceURLs must contain at least one value"));
    } else if urls.contains(&"*") {
        if urls.len() > 1 {
            out.push(invalid(
                &field,
                &rule["nonResourceURLs"],
                "if '*' is present, must not specify other non-resource URLs",
            ));
        }
    } else {
        for (i, u) in urls.iter().enumerate() {
            if let Some(m) = url_path(u) {
                out.push(invalid(&format!("{field}[{i}]"), &json!(u), m));
            }
        }
    }
}

/// kube's `ValidateNonResourceURLPath`: a leading slash, no white-space or `//`, and `*` only
/// as a `/*` suffix.
fn url_path(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        return Some("must not be empty");
    }
    if p == "/" {
        return None;
    }
    if !p.starts_with('/') {
        return Some("must start with slash");
    }
    if p.contains(' ') {
        return Some("must not contain white-space");
    }
    if p.contains("//") {
        return Some("must not contain double slash");
    }
    let stars = p.matches('*').count();
    if stars > 1 || (stars == 1 && !p.ends_with("/*")) {
        return Some("wildcard can only do suffix matching");
    }
    None
}

/// Status conditions: each with a type, no type twice.
fn conditions(status: &Value, out: &mut Vec<StatusCause>) {
    let mut seen = Vec::new();
    for (i, c) in status["conditions"].as_array().into_iter().flatten().enumerate() {
        let t = str_at(c, "type");
        let field = format!("status.conditions[{i}].type");
        if seen.contains(&t) {
            out.push(cause("FieldValueDuplicate", &field, format!("Duplicate value: {}", field::quote(t))));
        }
        seen.push(t);
        if t.is_empty() {
            out.push(required(&field, "must not be empty"));
        }
    }
}

/// kube's `ValidatePriorityLevelConfiguration` (v1: zero shares allowed) less ObjectMeta.
pub fn priority_level(obj: &Value) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let spec = &obj["spec"];
    let kind = str_at(spec, "type");
    if (name == "exempt") != (kind == "Exempt") {
        out.push(invalid("spec.type", &json!(kind), "type must be 'Exempt' if and only if name is 'exempt'"));
    }
    match kind {
        "Exempt" => {
            if !spec["limited"].is_null() {
                out.push(forbidden("spec.limited", "must be nil if the type is not Limited"));
            }
            if spec["exempt"].is_object() {
                let e = &spec["exempt"];
                non_negative(e, "spec.exempt.nominalConcurrencyShares", "nominalConcurrencyShares", &mut out);
                percent(e, "spec.exempt.lendablePercent", &mut out);
            }
        }
        "Limited" => {
            if !spec["exempt"].is_null() {
                out.push(forbidden("spec.exempt", "must be nil if the type is Limited"));
            }
            if spec["limited"].is_null() {
                out.push(required("spec.limited", "must not be empty when type is Limited"));
            } else {
                limited(&spec["limited"], &mut out);
            }
        }
        other => out.push(not_supported("spec.type", &field::quote(other), &["Exempt", "Limited"])),
    }
    if let Some(mut want) = mandatory_spec("prioritylevelconfigurations", name) {
        let (have, msg) = if name == "exempt" {
            // the admin may change the exempt level's `spec.exempt`, nothing else
            want["exempt"] = Value::Null;
            let mut have = spec.clone();
            if have.is_object() {
                have["exempt"] = Value::Null;
            }
            (have, format!("spec of '{name}' except the 'spec.exempt' field must equal the fixed value"))
        } else {
            (spec.clone(), format!("spec of '{name}' must equal the fixed value"))
        };
        if normalized(&have) != normalized(&want) {
            out.push(cause("FieldValueInvalid", "spec", format!("Invalid value: {spec}: {msg}")));
        }
    }
    conditions(&obj["status"], &mut out);
    out
}

fn non_negative(v: &Value, field: &str, key: &str, out: &mut Vec<StatusCause>) {
    if v[key].as_i64().is_some_and(|n| n < 0) {
        out.push(invalid(field, &v[key], "must be a non-negative integer"));
    }
}

fn percent(v: &Value, field: &str, out: &mut Vec<StatusCause>) {
    if v["lendablePercent"].as_i64().is_some_and(|n| !(0..=100).contains(&n)) {
        out.push(invalid(field, &v["lendablePercent"], "must be between 0 and 100, inclusive"));
    }
}

fn limited(l: &Value, out: &mut Vec<StatusCause>) {
    non_negative(l, "spec.limited.nominalConcurrencyShares", "nominalConcurrencyShares", out);
    let lr = &l["limitResponse"];
    let path = "spec.limited.limitResponse";
    match str_at(lr, "type") {
        "Reject" => {
            if !lr["queuing"].is_null() {
                out.push(forbidden(
                    &format!("{path}.queuing"),
                    "must be nil if limited.limitResponse.type is not Limited",
                ));
            }
        }
        "Queue" => {
            if lr["queuing"].is_null() {
                out.push(required(
                    &format!("{path}.queuing"),
                    "must not be empty if limited.limitResponse.type is Limited",
                ));
            } else {
                queuing(&lr["queuing"], &format!("{path}.queuing"), out);
            }
        }
        other => out.push(not_supported(&format!("{path}.type"), &field::quote(other), &["Queue", "Reject"])),
    }
    percent(l, "spec.limited.lendablePercent", out);
    if l["borrowingLimitPercent"].as_i64().is_some_and(|n| n < 0) {
        out.push(invalid(
            "spec.limited.borrowingLimitPercent",
            &l["borrowingLimitPercent"],
            "if specified, must be a non-negative integer",
        ));
    }
}

fn queuing(q: &Value, path: &str, out: &mut Vec<StatusCause>) {
    let n = |k: &str| q[k].as_i64().unwrap_or(0);
    let (queues, hand, limit) = (n("queues"), n("handSize"), n("queueLengthLimit"));
    if limit <= 0 {
        out.push(invalid(&format!("{path}.queueLengthLimit"), &json!(limit), "must be positive"));
    }
    if queues <= 0 {
        out.push(invalid(&format!("{path}.queues"), &json!(queues), "must be positive"));
    } else if queues > MAX_QUEUES {
        out.push(invalid(&format!("{path}.queues"), &json!(queues), &format!("must not be greater than {MAX_QUEUES}")));
    }
    let field = format!("{path}.handSize");
    if hand <= 0 {
        out.push(invalid(&field, &json!(hand), "must be positive"));
    } else if hand > queues {
        out.push(invalid(&field, &json!(hand), &format!("should not be greater than queues ({queues})")));
    } else if ((queues as f64).log2() * hand as f64).ceil() > MAX_HASH_BITS {
        out.push(invalid(
            &field,
            &json!(hand),
            &format!(
                "required entropy bits of deckSize {queues} and handSize {hand} should not be greater than {MAX_HASH_BITS}"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(spec: Value) -> Value {
        let mut o = json!({"metadata": {"name": "s"}, "spec": spec});
        set_defaults("flowschemas", &mut o);
        o
    }

    fn pl(name: &str, spec: Value) -> Value {
        let mut o = json!({"metadata": {"name": name}, "spec": spec});
        set_defaults("prioritylevelconfigurations", &mut o);
        o
    }

    fn shown_causes(c: &[StatusCause]) -> Vec<String> {
        c.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    fn rule() -> Value {
        json!({"subjects": [{"kind": "User", "user": {"name": "u"}}], "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]})
    }

    #[test]
    fn flow_schemas_as_kube_validates_them() {
        let ok = fs(json!({"priorityLevelConfiguration": {"name": "global-default"}, "rules": [rule()]}));
        assert_eq!(ok["spec"]["matchingPrecedence"], 1000, "defaulted");
        assert!(flow_schema(&ok).is_empty(), "{:?}", flow_schema(&ok));

        let bad = fs(json!({
            "matchingPrecedence": 10001,
            "priorityLevelConfiguration": {"name": ""},
            "distinguisherMethod": {"type": "ByGroup"},
            "rules": [
                {"subjects": []},
                {"subjects": [
                    {"kind": "User"},
                    {"kind": "Group", "group": {"name": "g"}, "user": {"name": "u"}},
                    {"kind": "ServiceAccount", "serviceAccount": {"name": "Bad_Name"}},
                    {"kind": "Robot"}
                 ],
                 "resourceRules": [{"verbs": ["*", "get"], "apiGroups": [], "resources": ["*", "pods"], "namespaces": ["Bad"]}],
                 "nonResourceRules": [{"verbs": ["fly"], "nonResourceURLs": ["healthz", "/a//b", "/a*"]}]}
            ]
        }));
        let got = shown_causes(&flow_schema(&bad));
        let want = [
            "spec.matchingPrecedence: Invalid value: 10001: must not be greater than 10000",
            "spec.distinguisherMethod.type: Unsupported value: flowcontrol.FlowDistinguisherMethod{Type:\"ByGroup\"}: supported values: \"ByNamespace\", \"ByUser\"",
            "spec.priorityLevelConfiguration.name: Required value: must reference a priority level",
            "spec.rules[0].subjects: Required value: subjects must contain at least one value",
            "spec.rules[0]: Required value: at least one of resourceRules and nonResourceRules has to be non-empty",
            "spec.rules[1].subjects[0].user: Required value: user is required when subject kind is 'User'",
            "spec.rules[1].subjects[1].user: Forbidden: user is forbidden when subject kind is not 'User'",
            "spec.rules[1].subjects[2].serviceAccount.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "spec.rules[1].subjects[2].serviceAccount.namespace: Required value: must specify namespace for service account",
            "spec.rules[1].subjects[3].kind: Unsupported value: \"Robot\": supported values: \"Group\", \"ServiceAccount\", \"User\"",
            "spec.rules[1].resourceRules[0].verbs: Invalid value: []string{\"*\", \"get\"}: if '*' is present, must not specify other verbs",
            "spec.rules[1].resourceRules[0].apiGroups: Required value: resource rules must supply at least one api group",
            "spec.rules[1].resourceRules[0].resources: Invalid value: []string{\"*\", \"pods\"}: if '*' is present, must not specify other resources",
            "spec.rules[1].resourceRules[0].namespaces[0]: Invalid value: \"Bad\": each member of this list must be '*' or a DNS-1123 label; a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.rules[1].nonResourceRules[0].verbs: Unsupported value: []string{\"fly\"}: supported values: \"create\", \"delete\", \"deletecollection\", \"get\", \"list\", \"patch\", \"proxy\", \"update\", \"watch\"",
            "spec.rules[1].nonResourceRules[0].nonResourceURLs[0]: Invalid value: \"healthz\": must start with slash",
            "spec.rules[1].nonResourceRules[0].nonResourceURLs[1]: Invalid value: \"/a//b\": must not contain double slash",
            "spec.rules[1].nonResourceRules[0].nonResourceURLs[2]: Invalid value: \"/a*\": wildcard can only do suffix matching",
        ];
        assert_eq!(got, want);

        // precedence 1 is the exempt schema's alone; negative is not positive
        let mut one = fs(json!({"matchingPrecedence": 1, "priorityLevelConfiguration": {"name": "x"}}));
        assert_eq!(
            shown_causes(&flow_schema(&one)),
            ["spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may have matchingPrecedence 1"]
        );
        one["spec"]["matchingPrecedence"] = json!(-3);
        assert_eq!(
            shown_causes(&flow_schema(&one)),
            ["spec.matchingPrecedence: Invalid value: -3: must be a positive value"]
        );
    }

    #[test]
    fn mandatory_objects_keep_kubes_spec() {
        let boot = |r: &str, n: &str| {
            let mut v = super::super::ensurer::bootstrap_objects()
                .into_iter()
                .find(|(res, v)| *res == r && v["metadata"]["name"] == n)
                .unwrap()
                .1;
            set_defaults(r, &mut v);
            v
        };
        let mut catch_all = boot("flowschemas", "catch-all");
        assert!(flow_schema(&catch_all).is_empty());
        catch_all["spec"]["matchingPrecedence"] = json!(5000);
        let c = flow_schema(&catch_all);
        assert_eq!(c.len(), 1);
        assert!(c[0].message.ends_with(": spec of 'catch-all' must equal the fixed value"), "{}", c[0].message);

        // every bootstrap object is valid as kube defines it
        for (r, mut v) in super::super::ensurer::bootstrap_objects() {
            set_defaults(r, &mut v);
            let c = if r == "flowschemas" { flow_schema(&v) } else { priority_level(&v) };
            assert!(c.is_empty(), "{}: {:?}", v["metadata"]["name"], c);
        }

        let mut exempt = boot("prioritylevelconfigurations", "exempt");
        exempt["spec"]["exempt"] = json!({"nominalConcurrencyShares": 10, "lendablePercent": 50});
        assert!(priority_level(&exempt).is_empty(), "the admin may set spec.exempt");
        exempt["spec"]["exempt"]["lendablePercent"] = json!(101);
        assert_eq!(
            shown_causes(&priority_level(&exempt)),
            ["spec.exempt.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive"]
        );
        let mut catch_all = boot("prioritylevelconfigurations", "catch-all");
        catch_all["spec"]["limited"]["nominalConcurrencyShares"] = json!(50);
        let c = priority_level(&catch_all);
        assert!(c[0].message.ends_with(": spec of 'catch-all' must equal the fixed value"), "{c:?}");
    }

    #[test]
    fn priority_levels_as_kube_validates_them() {
        let q = |queuing: Value| {
            pl("p", json!({"type": "Limited", "limited": {"limitResponse": {"type": "Queue", "queuing": queuing}}}))
        };
        let ok = q(json!({}));
        assert_eq!(ok["spec"]["limited"]["nominalConcurrencyShares"], 30);
        assert_eq!(
            ok["spec"]["limited"]["limitResponse"]["queuing"],
            json!({"queues": 64, "handSize": 8, "queueLengthLimit": 50})
        );
        assert!(priority_level(&ok).is_empty());
        assert_eq!(
            shown_causes(&priority_level(&q(json!({"queues": 4, "handSize": 5})))),
            ["spec.limited.limitResponse.queuing.handSize: Invalid value: 5: should not be greater than queues (4)"]
        );
        assert_eq!(
            shown_causes(&priority_level(&q(json!({"queues": 10000000, "handSize": 10, "queueLengthLimit": -1})))),
            [
                "spec.limited.limitResponse.queuing.queueLengthLimit: Invalid value: -1: must be positive",
                "spec.limited.limitResponse.queuing.handSize: Invalid value: 10: required entropy bits of deckSize 10000000 and handSize 10 should not be greater than 60",
            ]
        );
        assert_eq!(
            shown_causes(&priority_level(&q(json!({"queues": 10000001, "handSize": 1})))),
            ["spec.limited.limitResponse.queuing.queues: Invalid value: 10000001: must not be greater than 10000000"]
        );

        let bad = pl(
            "p",
            json!({"type": "Limited", "exempt": {}, "limited": {
                "nominalConcurrencyShares": -1, "lendablePercent": 101, "borrowingLimitPercent": -5,
                "limitResponse": {"type": "Reject", "queuing": {}}}}),
        );
        assert_eq!(
            shown_causes(&priority_level(&bad)),
            [
                "spec.exempt: Forbidden: must be nil if the type is Limited",
                "spec.limited.nominalConcurrencyShares: Invalid value: -1: must be a non-negative integer",
                "spec.limited.limitResponse.queuing: Forbidden: must be nil if limited.limitResponse.type is not Limited",
                "spec.limited.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive",
                "spec.limited.borrowingLimitPercent: Invalid value: -5: if specified, must be a non-negative integer",
            ]
        );
        let zero = pl(
            "p",
            json!({"type": "Limited", "limited": {"nominalConcurrencyShares": 0, "limitResponse": {"type": "Reject"}}}),
        );
        assert!(priority_level(&zero).is_empty(), "v1 allows zero shares");
        assert_eq!(
            shown_causes(&priority_level(&pl("p", json!({"type": "Limited", "limited": {"limitResponse": {"type": "Queue"}}})))),
            ["spec.limited.limitResponse.queuing: Required value: must not be empty if limited.limitResponse.type is Limited"]
        );
        assert_eq!(
            shown_causes(&priority_level(&pl("p", json!({"type": "Exempt"})))),
            ["spec.type: Invalid value: \"Exempt\": type must be 'Exempt' if and only if name is 'exempt'"]
        );
        assert_eq!(
            shown_causes(&priority_level(&pl("p", json!({"type": "Sometimes"})))),
            ["spec.type: Unsupported value: \"Sometimes\": supported values: \"Exempt\", \"Limited\""]
        );
        assert_eq!(
            shown_causes(&priority_level(&pl("p", json!({"type": "Limited"})))),
            ["spec.limited: Required value: must not be empty when type is Limited"]
        );
    }
}
