//! Object name validation as kube applies it per resource, with kube's messages.

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

pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
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
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

fn invalid(name: &str, msg: &str) -> StatusCause {
    StatusCause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{name}\": {msg}"),
        field: "metadata.name".into(),
    }
}

/// The causes for an invalid name (empty when the name is fine).
pub fn validate_name(rule: NameRule, name: &str) -> Vec<StatusCause> {
    if name.is_empty() {
        return vec![StatusCause {
            reason: "FieldValueRequired".into(),
            message: "Required value: name or generateName is required".into(),
            field: "metadata.name".into(),
        }];
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
