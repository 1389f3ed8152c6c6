//! Kubernetes API types frontdoor reads and writes on the wire.

pub mod decode;
pub mod documents;
pub mod duration;
pub mod field;
pub mod headers;
pub mod status;

pub use status::Status;
pub mod resource;

pub use resource::ApiResource;

/// Whether `v` is Go's zero value for its JSON type (null, false, 0, "", [] or {}): what a field
/// tagged `omitempty` leaves out, and what kube's semantic equality takes for absent.
pub fn is_go_zero(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

/// `v` as Go's `json.Marshal` writes it: compact, keys sorted (serde_json's map is ordered),
/// and HTML-safe: `<`, `>`, `&`, U+2028 and U+2029 escaped. (serde_json escapes the rest as Go
/// does: `"`, `\\`, the short forms and `\u00XX` for other control characters.)
pub fn go_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}
