//! The event's JSON, written by hand into the caller's buffer: constant keys go out as
//! literals and strings are scanned eight bytes at a time for what needs escaping (profiled:
//! serde's per-byte escaping of keys and values was most of the audit's user-space cost).
//! The bytes are exactly serde_json's for the same `Event` (its derive is the reference the
//! tests compare against); objects and Status bodies still go through serde_json.

use super::event::{Event, ObjectReference, ResponseStatus};
use crate::authn::UserInfo;
use std::io::Write;

/// Appends `ev` as one line of compact JSON (no newline).
pub fn write_event(out: &mut Vec<u8>, ev: &Event<'_>) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"kind\":");
    write_str(out, ev.kind);
    out.extend_from_slice(b",\"apiVersion\":");
    write_str(out, ev.api_version);
    out.extend_from_slice(b",\"level\":");
    write_str(out, ev.level.as_str());
    out.extend_from_slice(b",\"auditID\":");
    write_str(out, ev.audit_id);
    out.extend_from_slice(b",\"stage\":");
    write_str(out, ev.stage.as_str());
    out.extend_from_slice(b",\"requestURI\":");
    write_str(out, ev.request_uri);
    out.extend_from_slice(b",\"verb\":");
    write_str(out, ev.verb);
    out.extend_from_slice(b",\"user\":");
    write_user(out, ev.user);
    if let Some(u) = ev.impersonated_user {
        out.extend_from_slice(b",\"impersonatedUser\":");
        write_user(out, u);
    }
    if !ev.source_ips.is_empty() {
        out.extend_from_slice(b",\"sourceIPs\":");
        write_strs(out, ev.source_ips);
    }
    if !ev.user_agent.is_empty() {
        out.extend_from_slice(b",\"userAgent\":");
        write_str(out, ev.user_agent);
    }
    if let Some(r) = &ev.object_ref {
        out.extend_from_slice(b",\"objectRef\":");
        write_object_ref(out, r);
    }
    match &ev.response_status {
        None => {}
        Some(ResponseStatus::Code(code)) => {
            out.extend_from_slice(b",\"responseStatus\":{\"metadata\":{},\"code\":");
            write!(out, "{code}").map_err(serde_json::Error::io)?;
            out.push(b'}');
        }
        Some(ResponseStatus::Status(v)) => {
            out.extend_from_slice(b",\"responseStatus\":");
            serde_json::to_writer(&mut *out, v)?;
        }
    }
    if let Some(v) = &ev.request_object {
        out.extend_from_slice(b",\"requestObject\":");
        serde_json::to_writer(&mut *out, v)?;
    }
    if let Some(v) = &ev.response_object {
        out.extend_from_slice(b",\"responseObject\":");
        serde_json::to_writer(&mut *out, v)?;
    }
    out.extend_from_slice(b",\"requestReceivedTimestamp\":");
    serde_json::to_writer(&mut *out, &ev.request_received_timestamp)?;
    out.extend_from_slice(b",\"stageTimestamp\":");
    serde_json::to_writer(&mut *out, &ev.stage_timestamp)?;
    if !ev.annotations.is_empty() {
        out.extend_from_slice(b",\"annotations\":{");
        for (i, (k, v)) in ev.annotations.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            write_str(out, v);
        }
        out.push(b'}');
    }
    out.push(b'}');
    Ok(())
}

/// authentication.k8s.io/v1 UserInfo, empty fields left out (as its serde derive does).
fn write_user(out: &mut Vec<u8>, u: &UserInfo) {
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(k);
    };
    if !u.username.is_empty() {
        key(out, b"\"username\":");
        write_str(out, &u.username);
    }
    if !u.uid.is_empty() {
        key(out, b"\"uid\":");
        write_str(out, &u.uid);
    }
    if !u.groups.is_empty() {
        key(out, b"\"groups\":");
        write_strs(out, &u.groups);
    }
    if !u.extra.is_empty() {
        key(out, b"\"extra\":{");
        for (i, (k, v)) in u.extra.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            write_strs(out, v);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

fn write_object_ref(out: &mut Vec<u8>, r: &ObjectReference<'_>) {
    out.push(b'{');
    let fields: [(&[u8], &str); 6] = [
        (b"\"resource\":", r.resource),
        (b"\"namespace\":", r.namespace),
        (b"\"name\":", r.name),
        (b"\"apiGroup\":", r.api_group),
        (b"\"apiVersion\":", r.api_version),
        (b"\"subresource\":", r.subresource),
    ];
    let mut first = true;
    for (k, v) in fields {
        if v.is_empty() {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(k);
        write_str(out, v);
    }
    out.push(b'}');
}

fn write_strs(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.push(b']');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes in `x` is a control character, `"` or `\`.
fn has_special(x: u64) -> bool {
    let below_space = x.wrapping_sub(ONES * 0x20) & !x;
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    (below_space | (quote.wrapping_sub(ONES) & !quote) | (backslash.wrapping_sub(ONES) & !backslash)) & HIGHS != 0
}

/// A JSON string, escaped as serde_json escapes (`\"`, `\\`, `\b\f\n\r\t`, other control
/// characters as `\u00XX`; everything else, UTF-8 included, as it is).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        while let Some(chunk) = bytes.get(i..i + 8) {
            if has_special(u64::from_le_bytes(chunk.try_into().expect("8 bytes"))) {
                break;
            }
            i += 8;
        }
        let Some(&b) = bytes.get(i) else { break };
        if b < 0x20 || b == b'"' || b == b'\\' {
            out.extend_from_slice(&bytes[start..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_str(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap()
    }

    #[test]
    fn strings_escape_exactly_as_serde_json() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "exactly8".into(),
            "sixteen bytes!!!".into(),
            "\"".into(),
            "\\".into(),
            "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{0}i\u{1}\u{1f}j\u{7f}k".into(),
            "caf\u{e9} \u{1F600} \u{2028}\u{2029} </script> & <".into(),
            "1234567\"1234567\\12345678\u{0}".into(),
            "/api/v1/namespaces/default/pods?labelSelector=app%3Dx&watch=true".into(),
        ];
        // every byte value at every position of a 17-byte window
        for b in 0u8..=0x7f {
            for pos in 0..17 {
                let mut v = vec![b'x'; 17];
                v[pos] = b;
                samples.push(String::from_utf8(v).unwrap());
            }
        }
        for s in &samples {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_str(s), "{s:?}");
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), *s);
        }
    }

    #[test]
    fn special_byte_detection_has_no_misses() {
        for b in 0u8..=255 {
            for pos in 0..8 {
                let mut x = [b'a'; 8];
                x[pos] = b;
                let special = b < 0x20 || b == b'"' || b == b'\\';
                if special {
                    assert!(has_special(u64::from_le_bytes(x)), "byte {b:#x} at {pos}");
                }
            }
        }
        assert!(!has_special(u64::from_le_bytes(*b"abcdefgh")));
        assert!(!has_special(u64::from_le_bytes("caf\u{e9}\u{e9}!".as_bytes().try_into().unwrap())));
    }
}
