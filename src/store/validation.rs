//! Object name validation as kube applies it per resource, with kube's messages.

use crate::api::field;
use crate::api::status::StatusCause;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// kube's RFC 1123 subdomain: at most 253 characters, dot-separated parts of lower-case
/// alphanumerics and '-' starting and ending alphanumeric (no bound on a part's length: a
/// 200-character configmap name is valid).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        })
}

/// The RFC 1123 label regex alone (no length bound).
fn label_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// kube's `IsDNS1123Label` messages (empty when valid).
pub fn dns_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !label_shaped(s) {
        errs.push(LABEL_MSG.to_string());
    }
    errs
}

/// kube's `IsDNS1123Subdomain` messages (empty when valid).
pub fn dns_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(label_shaped) {
        errs.push(SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// Go's `RegexError`: the message, its examples and the regex.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn is_qualified_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// kube's `IsQualifiedName` (label keys, annotation keys, finalizer names): its messages.
pub fn qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                // both of IsDNS1123Subdomain's messages when both apply (too long and ill-formed)
                errs.extend(dns_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            )]
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    if !is_qualified_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// kube's `IsValidLabelValue`.
pub fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_part(value) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// kube's `IsConfigMapKey` (ConfigMap and Secret data keys).
pub fn config_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if value.is_empty() || !value.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match value {
        "." => errs.push("must not be '.'".into()),
        ".." => errs.push("must not be '..'".into()),
        v if v.starts_with("..") => errs.push("must not start with '..'".into()),
        _ => {}
    }
    errs
}

/// Which rule a resource's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// Any valid path segment (RBAC objects, e.g. `system:controller:x`).
    PathSegment,
}

pub fn rule_for(group: &str, resource: &str) -> NameRule {
    match (group, resource) {
        ("", "namespaces") => NameRule::Label,
        // RBAC objects, and APIServices (`v1.` is the core group's: named version.group)
        ("rbac.authorization.k8s.io", _) | ("apiregistration.k8s.io", "apiservices") => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

fn invalid(name: &str, msg: &str) -> StatusCause {
    field::invalid("metadata.name", &field::quote(name), msg)
}

/// The causes for an invalid name (empty when the name is fine).
pub fn validate_name(rule: NameRule, name: &str) -> Vec<StatusCause> {
    if name.is_empty() {
        return vec![field::required("metadata.name", "name or generateName is required")];
    }
    match rule {
        NameRule::Label if !is_label(name) => {
            let mut msg = LABEL_MSG.to_string();
            if name.len() > 63 {
                msg = "must be no more than 63 characters".into();
            }
            vec![invalid(name, &msg)]
        }
        NameRule::Subdomain if !is_dns_subdomain(name) => {
            let msg = if name.len() > 253 { "must be no more than 253 characters" } else { SUBDOMAIN_MSG };
            vec![invalid(name, msg)]
        }
        NameRule::PathSegment if name == "." || name == ".." => {
            vec![invalid(name, &format!("may not be '{name}'"))]
        }
        NameRule::PathSegment if name.contains('/') || name.contains('%') => {
            let bad = if name.contains('/') { "/" } else { "%" };
            vec![invalid(name, &format!("may not contain '{bad}'"))]
        }
        _ => Vec::new(),
    }
}

/// kube's generateName suffix: five characters from its alphabet (no vowels, no confusables).
pub fn generate_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes.iter().take(5).map(|b| ALPHA[*b as usize % ALPHA.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate_name(NameRule::Subdomain, "a.b-c").is_empty());
        assert!(validate_name(NameRule::Subdomain, &"a".repeat(200)).is_empty(), "a label may be longer than 63");
        assert!(!validate_name(NameRule::Subdomain, &"a".repeat(254)).is_empty());
        assert!(!validate_name(NameRule::Label, &"a".repeat(64)).is_empty());
        assert!(qualified_name("example.com/My.Name_1").is_empty());
        assert_eq!(qualified_name("a b")[0], "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
        assert_eq!(qualified_name("/x")[0], "prefix part must be non-empty");
        assert!(label_value("").is_empty() && !label_value("-x").is_empty());
        assert!(config_key("a.b_C-1").is_empty());
        assert!(config_key("a b")[0].starts_with("a valid config key must consist of alphanumeric characters"));
        assert_eq!(config_key("..x"), vec!["must not start with '..'"]);
        let c = validate_name(NameRule::Subdomain, "Bad_Name");
        assert_eq!(c[0].field, "metadata.name");
        assert!(c[0].message.starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
        assert!(!validate_name(NameRule::Label, "a.b").is_empty());
        assert!(validate_name(NameRule::PathSegment, "system:admin").is_empty());
        assert!(!validate_name(NameRule::PathSegment, "a/b").is_empty());
        assert_eq!(validate_name(NameRule::Label, "")[0].reason, "FieldValueRequired");
        let s = generate_suffix();
        assert_eq!(s.len(), 5);
    }
}
