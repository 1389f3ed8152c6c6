//! Decoding a body as its kind's typed object, as kube's handlers do with `fieldValidation`:
//! a value of the wrong type is a 400 whatever the directive; unknown and duplicate fields are a
//! 400 under `Strict`, a `Warning` each under `Warn` (kube's default when the query has none),
//! nothing under `Ignore`; unknown fields are never stored.

use super::Target;
use crate::api::Status;
use crate::store::schema;
use serde_json::Value;

/// kube's `fieldValidation` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    Ignore,
    Warn,
    Strict,
}

/// The directive of a request's `fieldValidation` (checked by `Options::validate_write`);
/// absent is kube's default, Warn.
pub fn directive(value: &str) -> Directive {
    match value {
        "Strict" => Directive::Strict,
        "Ignore" => Directive::Ignore,
        _ => Directive::Warn,
    }
}

/// How the body was sent, for the wording of what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A create or update body (`<Kind> in version "v1" cannot be handled as a <Kind>: ...`).
    Body { yaml: bool },
    /// The object a JSON, merge or strategic merge patch made.
    Patch,
}

/// Decodes `obj` as `t`'s kind (a kind without a schema, from `--resources-file`, is taken as
/// it is): prunes unknown fields, refuses wrong types, and reports unknown and `duplicates`
/// fields as the directive says.
pub fn check(t: &Target, obj: &mut Value, duplicates: Vec<String>, source: Source) -> Result<(), Status> {
    let d = directive(&t.query.field_validation);
    let s = schema::get();
    let custom = custom_decode(t, obj);
    let def = match (&custom, s.kind(&t.def.group, &t.def.version, &t.def.kind)) {
        (Some(_), _) => None,
        (None, Some(def)) => Some(def),
        (None, None) => return Ok(()),
    };
    let kind = &t.def.kind;
    let handled = |e: &str| match source {
        Source::Body { .. } => format!("{kind} in version \"{}\" cannot be handled as a {kind}: {e}", t.def.version),
        Source::Patch => e.to_string(),
    };
    if !obj.is_object() {
        return Ok(()); // check_type words this
    }
    let decoded = match (def, custom) {
        (Some(def), _) => schema::decode(s, def, obj),
        (None, Some(custom)) => custom,
        (None, None) => return Ok(()),
    };
    if let Some(e) = decoded.error {
        return Err(Status::bad_request(handled(&e)));
    }
    let yaml = matches!(source, Source::Body { yaml: true });
    let mut findings: Vec<String> = Vec::new();
    if yaml && !duplicates.is_empty() {
        // go-yaml's errors come as one, before the unknown fields
        let lines: Vec<String> = duplicates.iter().map(|d| format!("  {d}")).collect();
        findings.push(format!("yaml: unmarshal errors:\n{}", lines.join("\n")));
    } else {
        findings.extend(duplicates.iter().cloned());
    }
    findings.extend(decoded.unknown.iter().cloned());
    match d {
        Directive::Ignore => Ok(()),
        _ if findings.is_empty() => Ok(()),
        Directive::Strict => {
            Err(Status::bad_request(handled(&format!("strict decoding error: {}", findings.join(", ")))))
        }
        Directive::Warn => {
            let mut w = t.warnings.lock().unwrap_or_else(|e| e.into_inner());
            w.extend(duplicates);
            w.extend(decoded.unknown);
            Ok(())
        }
    }
}

/// A custom object decoded as kube's CRD handler does: pruned and defaulted by its schema
/// (None for a built-in kind), the pruned fields reported as unknown ones; and its metadata
/// decoded as ObjectMeta (kube's `objectmeta.Coerce`): unknown fields pruned and reported, a
/// value of the wrong type refused, so that no typed client meets a stored object it cannot
/// decode.
fn custom_decode(t: &Target, obj: &mut Value) -> Option<schema::Decoded> {
    let schema = t.def.custom.as_ref()?.schema.as_ref();
    let pruned = schema.map(|s| crate::store::crd::structural::prune_and_default(s, obj)).unwrap_or_default();
    let mut decoded = match obj.get_mut("metadata").filter(|m| !m.is_null()) {
        Some(meta) => schema::decode_at(schema::get(), OBJECT_META, meta, "metadata"),
        None => schema::Decoded::default(),
    };
    decoded.unknown.extend(pruned.iter().map(|p| format!("unknown field \"{p}\"")));
    decoded.unknown.sort();
    Some(decoded)
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Server-side apply's decoding of an applied configuration: duplicate keys per the directive
/// (`error strict decoding YAML: ...` under Strict), and no field the schema has not, whatever
/// the directive, as kube's typed apply refuses them.
pub fn check_apply(t: &Target, obj: &mut Value, duplicates: Vec<String>) -> Result<(), Status> {
    let d = directive(&t.query.field_validation);
    if !duplicates.is_empty() {
        match d {
            Directive::Strict => {
                let lines: Vec<String> = duplicates.iter().map(|d| format!("  {d}")).collect();
                return Err(Status::bad_request(format!(
                    "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n{}",
                    lines.join("\n")
                )));
            }
            Directive::Warn => t.warnings.lock().unwrap_or_else(|e| e.into_inner()).extend(duplicates),
            Directive::Ignore => {}
        }
    }
    // kube's versionCheckManager, then structuredMergeManager: an applied configuration names
    // the endpoint's very kind and version, and no managedFields (they are the server's)
    let (av, kind) = (obj["apiVersion"].as_str().unwrap_or(""), obj["kind"].as_str().unwrap_or(""));
    if obj.is_object() && (av != t.def.api_version() || kind != t.def.kind) {
        // Go's GroupVersionKind.String(), of what ParseGroupVersion makes of it
        let gv = match av.split('/').collect::<Vec<_>>()[..] {
            [""] => "/".to_string(),
            [v] => format!("/{v}"),
            [g, v] => format!("{g}/{v}"),
            _ => "/".to_string(),
        };
        return Err(Status::bad_request(format!("invalid object type: {gv}, Kind={kind}")));
    }
    if obj["metadata"].get("managedFields").is_some_and(|m| !m.is_null()) {
        return Err(Status::bad_request("metadata.managedFields must be nil"));
    }
    if let Some(c) = &t.def.custom {
        // kube prunes an applied custom object by its schema (defaults are the stored object's)
        if let (Some(schema), true) = (&c.schema, obj.is_object()) {
            let mut defaulted = obj.clone();
            crate::store::crd::structural::prune_and_default(schema, &mut defaulted);
            prune_only(&defaulted, obj);
        }
        return Ok(());
    }
    let s = schema::get();
    let Some(def) = s.kind(&t.def.group, &t.def.version, &t.def.kind) else {
        return Ok(());
    };
    if !obj.is_object() {
        return Ok(());
    }
    let decoded = schema::decode(s, def, obj);
    let typed = |e: &str| {
        let ns = if t.namespace.is_empty() { String::new() } else { format!("{}/", t.namespace) };
        let av = t.def.api_version();
        let gv = if t.def.group.is_empty() { format!("/{av}") } else { av };
        Status::bad_request(format!(
            "failed to create typed patch object ({ns}{}; {gv}, Kind={}): {e}",
            t.name, t.def.kind
        ))
    };
    if let Some(e) = decoded.error {
        return Err(typed(&e));
    }
    if let Some(u) = decoded.unknown.first() {
        let field = u.trim_start_matches("unknown field \"").trim_end_matches('"');
        return Err(typed(&format!(".{field}: field not declared in schema")));
    }
    Ok(())
}

/// Removes from `obj` what `kept` (its pruned and defaulted form) has not: pruning without the
/// defaults, so an applied configuration claims only the fields it sets.
fn prune_only(kept: &Value, obj: &mut Value) {
    if let (Some(k), Some(o)) = (kept.as_object(), obj.as_object_mut()) {
        o.retain(|key, _| k.contains_key(key));
        for (key, v) in o.iter_mut() {
            prune_only(&k[key], v);
        }
    } else if let (Some(k), Some(o)) = (kept.as_array(), obj.as_array_mut()) {
        for (kv, ov) in k.iter().zip(o.iter_mut()) {
            prune_only(kv, ov);
        }
    }
}

/// A `Warning` header value as kube writes one (`299 - "<text>"`, `"` and `\\` escaped: its
/// `makeQuotedString`); `warning_headers` never gives it a control character.
fn warning_header(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 8);
    q.push_str("299 - \"");
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The `Warning` header values of a response's warnings, as kube's warning recorder writes them
/// (k8s.io/apiserver `filters/warning.go`): each text once (a retried write may say the same
/// twice), and no more than about 4k runes of text in all, since every warning is a header and a
/// request with many unknown fields once made megabytes of them, more than clients read
/// (curl and kubectl failed while the object was created). As kube: once the texts would pass
/// `total` runes, every warning, those before included, is cut to `item` runes, and the
/// warnings after the total is reached again are dropped. Texts are counted and cut before
/// they are quoted, so a header never ends in half an escape. A text with a control character
/// (Go's `unicode.IsControl`, Rust's `char::is_control`: U+0000-U+001F, U+007F-U+009F) is no
/// header, as kube's `NewWarningHeader` refuses it, but still counts as said.
pub fn warning_headers(texts: &[String], total: usize, item: usize) -> Vec<String> {
    let cut = |t: &str| t.char_indices().nth(item).map_or(t.len(), |(i, _)| i);
    let (mut seen, mut ordered, mut headers) = (std::collections::HashSet::new(), Vec::new(), Vec::new());
    let (mut written, mut truncating) = (0, false);
    for text in texts.iter().filter(|t| !t.is_empty()) {
        if truncating && written >= total {
            break;
        }
        if !seen.insert(text.as_str()) {
            continue;
        }
        ordered.push(text.as_str());
        let t = if truncating { &text[..cut(text)] } else { text.as_str() };
        // kube's NewWarningHeader refuses such a text, and the recorder drops the warning
        if t.chars().any(char::is_control) {
            continue;
        }
        let runes = t.chars().count();
        if written + runes <= total || truncating {
            written += runes;
            headers.push(warning_header(t));
            continue;
        }
        // over the total: from now on every warning is cut, those written before too
        truncating = true;
        written = 0;
        headers = ordered
            .iter()
            .map(|t| &t[..cut(t)])
            .filter(|t| !t.chars().any(char::is_control))
            .inspect(|t| written += t.chars().count())
            .map(warning_header)
            .collect();
    }
    headers
}

/// kube's `truncateAtTotalRunes` and `truncateItemRunes`, the bounds of `warning_headers`.
pub const WARNING_TOTAL_RUNES: usize = 4 * 1024;
pub const WARNING_ITEM_RUNES: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_and_warning_headers() {
        assert_eq!(directive(""), Directive::Warn);
        assert_eq!(directive("Strict"), Directive::Strict);
        assert_eq!(directive("Ignore"), Directive::Ignore);
        assert_eq!(warning_header(r#"unknown field "datax""#), r#"299 - "unknown field \"datax\"""#);
    }

    fn headers(texts: &[&str], total: usize, item: usize) -> Vec<String> {
        let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        warning_headers(&texts, total, item).into_iter().map(|h| h[7..h.len() - 1].to_string()).collect()
    }

    #[test]
    fn warnings_once_each_and_truncated_as_kube() {
        // kube's Test_recorder_AddWarning: empty texts none, the same text once, in order
        assert!(headers(&["", ""], 25, 5).is_empty());
        assert_eq!(
            headers(&["mytext1", "mytext2", "mytext1", "mytext3"], 4096, 256),
            ["mytext1", "mytext2", "mytext3"]
        );
        // kube's TestTruncation, with its bounds of 25 and 5 runes: all kept while the total fits
        let before = ["aaaaaaaaaa", "aaaaaaaaaa", "bb", "ccc", "Iñtërnâtiô"];
        assert_eq!(headers(&before, 25, 5), ["aaaaaaaaaa", "bb", "ccc", "Iñtërnâtiô"]);
        // "e" passes 25: every item is cut to 5 runes (on a rune boundary), those before too,
        // and once the total is reached again ("ggggg", 26) the rest ("h") is dropped
        let after = [&before[..], &["e", "ffffffffff", "ffffffffff", "gggggggggg", "h"]].concat();
        assert_eq!(headers(&after, 25, 5), ["aaaaa", "bb", "ccc", "Iñtër", "e", "fffff", "ggggg"]);
        // cut before quoting: the header holds whole escapes
        assert_eq!(warning_headers(&[r#"ab\"c"#.to_string()], 0, 3), [r#"299 - "ab\\""#]);
        // kube's bounds: 250k unknown fields make ~4 KiB of text, not megabytes
        let many: Vec<String> = (0..250_000).map(|i| format!("unknown field \"data{i}x\"")).collect();
        let h = warning_headers(&many, WARNING_TOTAL_RUNES, WARNING_ITEM_RUNES);
        let bytes: usize = h.iter().map(String::len).sum();
        assert!(h.len() < 200 && bytes < 2 * WARNING_TOTAL_RUNES, "{} headers, {bytes} bytes", h.len());
    }

    #[test]
    fn a_warning_with_a_control_character_is_dropped_as_kube_drops_it() {
        // kube's NewWarningHeader refuses C0, DEL and C1 controls; the recorder goes on without
        // that warning (it still counts as said: the same text again is not a second try)
        let texts = ["a\u{1}b", "tab\there", "del\u{7f}", "c1\u{85}", "ok", "a\u{1}b", "é ☃"];
        assert_eq!(headers(&texts, 4096, 256), ["ok", "é ☃"]);
        // once truncating, a text whose control character was cut off is written
        let texts = ["aaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbb", "ccccc\u{1}", "\u{1}ddddd"];
        assert_eq!(headers(&texts, 25, 5), ["aaaaa", "bbbbb", "ccccc"]);
    }
}
