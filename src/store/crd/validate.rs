//! kube's validation of a CustomResourceDefinition itself (apiextensions' validation.go, the
//! checks users meet first), with its texts, and the defaults its strategy sets (singular,
//! listKind, conversion `None`).

use crate::api::field::{self, cause, quote as q, required};
use crate::api::status::StatusCause;
use crate::store::validation::{is_dns_subdomain, regex_error};
use serde_json::{json, Value};

fn invalid(path: &str, value: &str, msg: &str) -> StatusCause {
    field::invalid(path, &q(value), msg)
}

/// kube's DNS-1035 label (plural names, version names).
pub(crate) fn dns1035(field: &str, value: &str, out: &mut Vec<StatusCause>) {
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if !ok {
        let msg = if b.len() > 63 {
            "must be no more than 63 characters".to_string()
        } else {
            regex_error(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
                "[a-z]([-a-z0-9]*[a-z0-9])?",
                &["my-name", "abc-123"],
            )
        };
        out.push(invalid(field, value, &msg));
    }
}

/// The defaults kube's CRD strategy sets.
pub fn set_defaults(crd: &mut Value) {
    let names = &mut crd["spec"]["names"];
    if names.is_object() {
        let kind = names["kind"].as_str().unwrap_or_default().to_string();
        if names["singular"].as_str().unwrap_or_default().is_empty() && !kind.is_empty() {
            names["singular"] = json!(kind.to_ascii_lowercase());
        }
        if names["listKind"].as_str().unwrap_or_default().is_empty() && !kind.is_empty() {
            names["listKind"] = json!(format!("{kind}List"));
        }
    }
    if crd["spec"].is_object() && !crd["spec"]["conversion"].is_object() {
        crd["spec"]["conversion"] = json!({"strategy": "None"});
    }
}

/// kube's validation of a CRD (over `old` on an update).
pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let spec = &crd["spec"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (name, group, plural) = (s(&crd["metadata"]["name"]), s(&spec["group"]), s(&spec["names"]["plural"]));
    if name != format!("{plural}.{group}") {
        out.push(invalid("metadata.name", &name, "must be spec.names.plural+\".\"+spec.group"));
    }
    if group.is_empty() {
        out.push(required("spec.group", ""));
    } else {
        if !is_dns_subdomain(&group) {
            out.push(invalid("spec.group", &group, &regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                &["example.com"],
            )));
        }
        if group.split('.').count() < 2 {
            out.push(invalid("spec.group", &group, "should be a domain with at least one dot"));
        }
        let protected = group == "k8s.io"
            || group.ends_with(".k8s.io")
            || group == "kubernetes.io"
            || group.ends_with(".kubernetes.io");
        if protected
            && crd["metadata"]["annotations"]["api-approved.kubernetes.io"].as_str().unwrap_or_default().is_empty()
        {
            out.push(required(
                "metadata.annotations[api-approved.kubernetes.io]",
                "protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
            ));
        }
    }
    match spec["scope"].as_str().unwrap_or_default() {
        "" => out.push(required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => out.push(cause(
            "FieldValueNotSupported",
            "spec.scope",
            format!("Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"", q(other)),
        )),
    }
    if let Some(old) = old {
        if old["spec"]["scope"] != spec["scope"] {
            out.push(invalid("spec.scope", &s(&spec["scope"]), "field is immutable"));
        }
        if old["spec"]["group"] != spec["group"] {
            out.push(invalid("spec.group", &group, "field is immutable"));
        }
    }
    names(spec, &mut out);
    versions(spec, &mut out);
    // a version objects may still be stored at cannot go away
    let listed: Vec<&Value> = spec["versions"].as_array().into_iter().flatten().map(|v| &v["name"]).collect();
    for (i, sv) in crd["status"]["storedVersions"].as_array().into_iter().flatten().enumerate() {
        if !listed.contains(&sv) {
            out.push(invalid(
                &format!("status.storedVersions[{i}]"),
                sv.as_str().unwrap_or_default(),
                "must appear in spec.versions",
            ));
        }
    }
    out
}

fn names(spec: &Value, out: &mut Vec<StatusCause>) {
    let n = &spec["names"];
    let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
    if s("plural").is_empty() {
        out.push(required("spec.names.plural", ""));
    } else {
        dns1035("spec.names.plural", &s("plural"), out);
    }
    if !s("singular").is_empty() {
        dns1035("spec.names.singular", &s("singular"), out);
    }
    if s("kind").is_empty() {
        out.push(required("spec.names.kind", ""));
    }
    if !s("kind").is_empty() && s("kind") == s("listKind") {
        out.push(invalid("spec.names.listKind", &s("listKind"), "kind and listKind may not be the same"));
    }
    for (i, sn) in n["shortNames"].as_array().into_iter().flatten().enumerate() {
        dns1035(&format!("spec.names.shortNames[{i}]"), sn.as_str().unwrap_or_default(), out);
    }
}

fn versions(spec: &Value, out: &mut Vec<StatusCause>) {
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        out.push(required("spec.versions", "must have at least one version"));
        return;
    }
    let storage = versions.iter().filter(|v| v["storage"] == json!(true)).count();
    if storage != 1 {
        out.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            format!("Invalid value: {}: must have exactly one version marked as storage version", json!(versions)),
        ));
    }
    if !versions.iter().any(|v| v["served"] == json!(true)) {
        out.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            format!("Invalid value: {}: must have at least one version marked as served", json!(versions)),
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = v["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            out.push(required(&format!("{at}.name"), ""));
        } else {
            dns1035(&format!("{at}.name"), name, out);
            if versions[..i].iter().any(|o| o["name"] == v["name"]) {
                out.push(invalid(&format!("{at}.name"), name, "must be unique"));
            }
        }
        let schema = &v["schema"]["openAPIV3Schema"];
        let schema_at = format!("{at}.schema.openAPIV3Schema");
        if !schema.is_object() {
            out.push(required(&schema_at, "schemas are required"));
        } else {
            structural(schema, &schema_at, true, out);
        }
        if let Some(scale) = v["subresources"]["scale"].as_object() {
            scale_paths(scale, &format!("{at}.subresources.scale"), out);
        }
        for (j, c) in v["additionalPrinterColumns"].as_array().into_iter().flatten().enumerate() {
            let cat = format!("{at}.additionalPrinterColumns[{j}]");
            if c["name"].as_str().unwrap_or_default().is_empty() {
                out.push(required(&format!("{cat}.name"), ""));
            }
            if c["jsonPath"].as_str().unwrap_or_default().is_empty() {
                out.push(required(&format!("{cat}.jsonPath"), ""));
            }
            let t = c["type"].as_str().unwrap_or_default();
            if !matches!(t, "integer" | "number" | "string" | "boolean" | "date") {
                out.push(cause(
                    "FieldValueNotSupported",
                    &format!("{cat}.type"),
                    format!("Unsupported value: {}: supported values: \"boolean\", \"date\", \"integer\", \"number\", \"string\"", q(t)),
                ));
            }
        }
    }
}

/// kube's checks of the scale subresource's paths: the paths the scale subresource reads and
/// writes stay under `.spec` and `.status`, so a grant of `<resource>/scale` writes nothing else.
fn scale_paths(scale: &serde_json::Map<String, Value>, at: &str, out: &mut Vec<StatusCause>) {
    let rules: [(&str, &[&str], &str, bool); 3] = [
        ("specReplicasPath", &[".spec."], "should be a json path under .spec", true),
        ("statusReplicasPath", &[".status."], "should be a json path under .status", true),
        ("labelSelectorPath", &[".spec.", ".status."], "should be a json path under either .spec or .status", false),
    ];
    for (key, under, msg, needed) in rules {
        let field = format!("{at}.{key}");
        match scale.get(key).and_then(Value::as_str).unwrap_or_default() {
            "" if needed => out.push(required(&field, "")),
            "" => {}
            p if !p.starts_with('.') => out.push(invalid(&field, p, "must be a simple json path starting with .")),
            p if !under.iter().any(|u| p.starts_with(u)) => out.push(invalid(&field, p, msg)),
            _ => {}
        }
    }
}

/// The structural schema rules users meet: every specified field has a type (unless it
/// preserves unknown fields or is int-or-string), the root is an object, arrays have items.
fn structural(schema: &Value, at: &str, root: bool, out: &mut Vec<StatusCause>) {
    let loose = schema["x-kubernetes-preserve-unknown-fields"] == json!(true)
        || schema["x-kubernetes-int-or-string"] == json!(true);
    let t = schema["type"].as_str().unwrap_or_default();
    if root {
        if t.is_empty() {
            out.push(required(&format!("{at}.type"), "must not be empty at the root"));
        } else if t != "object" {
            out.push(invalid(&format!("{at}.type"), t, "must be object at the root"));
        }
    } else if t.is_empty() && !loose {
        out.push(required(&format!("{at}.type"), "must not be empty for specified object fields"));
    }
    for (i, r) in schema["x-kubernetes-validations"].as_array().into_iter().flatten().enumerate() {
        let rule = r["rule"].as_str().unwrap_or_default();
        let at = format!("{at}.x-kubernetes-validations[{i}].rule");
        if rule.is_empty() {
            out.push(required(&at, ""));
        } else if let Some(e) = super::cel::compile_error(rule) {
            out.push(invalid(&at, rule, &e));
        }
    }
    if t == "array" && !schema["items"].is_object() {
        out.push(required(&format!("{at}.items"), "must be specified"));
    }
    if schema["properties"].is_object() && schema["additionalProperties"].is_object() {
        out.push(cause(
            "FieldValueForbidden",
            &format!("{at}.additionalProperties"),
            "Forbidden: additionalProperties and properties are mutual exclusive".into(),
        ));
    }
    for (k, p) in schema["properties"].as_object().into_iter().flatten() {
        structural(p, &format!("{at}.properties[{k}]"), false, out);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        structural(items, &format!("{at}.items"), false, out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|i| i.is_object()) {
        structural(extra, &format!("{at}.additionalProperties"), false, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object",
                "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}})
    }

    fn texts(c: &[StatusCause]) -> Vec<String> {
        c.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn a_good_crd_is_valid_and_defaulted() {
        let mut c = crd();
        set_defaults(&mut c);
        assert!(validate(&c, None).is_empty(), "{:?}", texts(&validate(&c, None)));
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["spec"]["names"]["singular"], "widget");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
    }

    #[test]
    fn kubes_texts() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong.example.com");
        c["spec"]["scope"] = json!("Global");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"] = json!({});
        let t = texts(&validate(&c, None));
        for want in [
            "metadata.name: Invalid value: \"wrong.example.com\": must be spec.names.plural+\".\"+spec.group",
            "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type: Required value: must not be empty for specified object fields",
        ] {
            assert!(t.contains(&want.to_string()), "{want} not in {t:#?}");
        }
        assert!(t.iter().any(|m| m.ends_with("must have exactly one version marked as storage version")));
        let mut g = crd();
        g["spec"]["group"] = json!("example");
        g["metadata"]["name"] = json!("widgets.example");
        assert!(texts(&validate(&g, None))
            .contains(&"spec.group: Invalid value: \"example\": should be a domain with at least one dot".to_string()));
        let mut gone = crd();
        gone["status"]["storedVersions"] = json!(["v1alpha1", "v1"]);
        assert!(texts(&validate(&gone, None)).contains(
            &"status.storedVersions[0]: Invalid value: \"v1alpha1\": must appear in spec.versions".to_string()
        ));
        // the scale subresource's paths stay under .spec and .status
        let mut scaled = crd();
        let sub = &mut scaled["spec"]["versions"][0]["subresources"];
        *sub = json!({"scale": {"specReplicasPath": ".metadata.labels.x", "statusReplicasPath": ".spec.y",
            "labelSelectorPath": ".metadata.name"}});
        let at = "spec.versions[0].subresources.scale";
        assert_eq!(
            texts(&validate(&scaled, None)),
            [
                format!("{at}.specReplicasPath: Invalid value: \".metadata.labels.x\": should be a json path under .spec"),
                format!("{at}.statusReplicasPath: Invalid value: \".spec.y\": should be a json path under .status"),
                format!("{at}.labelSelectorPath: Invalid value: \".metadata.name\": should be a json path under either .spec or .status"),
            ]
        );
        scaled["spec"]["versions"][0]["subresources"] = json!({"scale": {"specReplicasPath": "spec.n"}});
        assert_eq!(
            texts(&validate(&scaled, None)),
            [
                format!("{at}.specReplicasPath: Invalid value: \"spec.n\": must be a simple json path starting with ."),
                format!("{at}.statusReplicasPath: Required value"),
            ]
        );
        scaled["spec"]["versions"][0]["subresources"] = json!({"scale": {"specReplicasPath": ".spec.n", "statusReplicasPath": ".status.n", "labelSelectorPath": ".spec.sel"}});
        assert!(validate(&scaled, None).is_empty());
        let mut old = crd();
        old["spec"]["scope"] = json!("Cluster");
        assert!(texts(&validate(&crd(), Some(&old)))
            .contains(&"spec.scope: Invalid value: \"Namespaced\": field is immutable".to_string()));
    }
}
