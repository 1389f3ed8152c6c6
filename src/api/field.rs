//! kube's field errors (k8s.io/apimachinery's `validation/field`): the causes of a 422 Invalid,
//! worded as kube words them. A value is passed as its caller shows it (Go prints a string
//! quoted, a number bare), since kinds differ in how they render theirs.

use super::status::StatusCause;

/// A cause of any `reason` (`FieldValueTypeInvalid`, `FieldValueTooMany`, ...).
pub fn cause(reason: &str, field: &str, message: String) -> StatusCause {
    StatusCause { reason: reason.into(), message, field: field.into() }
}

/// Go's `%q` (`strconv.Quote`) of a string, as kube's errors quote values: double-quoted, with Go's escapes for quotes,
/// backslashes and control characters. Go also escapes the other runes Unicode does not call
/// printable (U+00A0, say) as `\uXXXX`; those are left as they are here.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `field.Invalid`: `shown` is the value as printed.
pub fn invalid(field: &str, shown: &str, detail: &str) -> StatusCause {
    cause("FieldValueInvalid", field, format!("Invalid value: {shown}: {detail}"))
}

/// `field.Required`, with its detail when it has one.
pub fn required(field: &str, detail: &str) -> StatusCause {
    let message = if detail.is_empty() { "Required value".into() } else { format!("Required value: {detail}") };
    cause("FieldValueRequired", field, message)
}

/// `field.Forbidden`.
pub fn forbidden(field: &str, detail: &str) -> StatusCause {
    cause("FieldValueForbidden", field, format!("Forbidden: {detail}"))
}

/// `field.NotSupported`: the supported values quoted, in the order given.
pub fn not_supported(field: &str, shown: &str, supported: &[&str]) -> StatusCause {
    let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
    cause("FieldValueNotSupported", field, format!("Unsupported value: {shown}: supported values: {}", list.join(", ")))
}

/// `field.TooLong` for a byte length.
pub fn too_long(field: &str, max: impl std::fmt::Display) -> StatusCause {
    cause("FieldValueTooLong", field, format!("Too long: may not be more than {max} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_worded_as_kube_words_them() {
        let c = invalid("metadata.name", &quote("a\"b"), "a lowercase RFC 1123 subdomain");
        assert_eq!(
            (c.reason.as_str(), c.field.as_str(), c.message.as_str()),
            ("FieldValueInvalid", "metadata.name", r#"Invalid value: "a\"b": a lowercase RFC 1123 subdomain"#)
        );
        assert_eq!(required("spec", "").message, "Required value");
        assert_eq!(required("spec", "must be set").message, "Required value: must be set");
        assert_eq!(forbidden("spec", "no").message, "Forbidden: no");
        assert_eq!(
            not_supported("spec.type", "\"x\"", &["Exempt", "Limited"]).message,
            r#"Unsupported value: "x": supported values: "Exempt", "Limited""#
        );
        assert_eq!(too_long("data", 3).message, "Too long: may not be more than 3 bytes");
    }

    #[test]
    fn quote_is_gos_percent_q() {
        assert_eq!(quote("a\"b\\c\u{1}\u{7f}\t\u{b}é\u{85}"), r#""a\"b\\c\x01\x7f\t\vé\u0085""#);
        // Rust's `{:?}` writes these `\0` and `\u{301}` (a combining mark); Go prints the mark
        assert_eq!(quote("\0e\u{301}'"), "\"\\x00e\u{301}'\"");
    }
}
