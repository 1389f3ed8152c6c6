//! An event's JSON line, written straight into a buffer. The bytes are exactly those of
//! `Event`'s serde form (the reference: the tests compare the two); the cost is a fraction,
//! which matters because every request writes two events. Keys are constants, timestamps
//! reuse the formatted second, and a string that needs no escaping, nearly every one, is
//! copied whole; the others go through serde_json's escaper.

use super::event::{Event, MicroTime, ObjectReference, ResponseStatus};
use crate::authn::UserInfo;
use std::cell::RefCell;
use std::time::UNIX_EPOCH;

/// Appends `ev` as one line of JSON (without the newline).
pub fn write_event(out: &mut Vec<u8>, ev: &Event<'_>) {
    out.extend_from_slice(b"{\"kind\":");
    string(out, ev.kind);
    out.extend_from_slice(b",\"apiVersion\":");
    string(out, ev.api_version);
    out.extend_from_slice(b",\"level\":");
    string(out, ev.level.as_str());
    out.extend_from_slice(b",\"auditID\":");
    string(out, ev.audit_id);
    out.extend_from_slice(b",\"stage\":");
    string(out, ev.stage.as_str());
    out.extend_from_slice(b",\"requestURI\":");
    string(out, ev.request_uri);
    out.extend_from_slice(b",\"verb\":");
    string(out, ev.verb);
    out.extend_from_slice(b",\"user\":");
    user(out, ev.user);
    if let Some(u) = ev.impersonated_user {
        out.extend_from_slice(b",\"impersonatedUser\":");
        user(out, u);
    }
    if !ev.source_ips.is_empty() {
        out.extend_from_slice(b",\"sourceIPs\":");
        strings(out, ev.source_ips.iter());
    }
    if !ev.user_agent.is_empty() {
        out.extend_from_slice(b",\"userAgent\":");
        string(out, ev.user_agent);
    }
    if let Some(o) = &ev.object_ref {
        out.extend_from_slice(b",\"objectRef\":");
        object_ref(out, o);
    }
    match &ev.response_status {
        Some(ResponseStatus::Code(code)) => {
            out.extend_from_slice(b",\"responseStatus\":{\"metadata\":{},\"code\":");
            out.extend_from_slice(itoa::Buffer::new().format(*code).as_bytes());
            out.push(b'}');
        }
        Some(ResponseStatus::Status(v)) => value(out, b",\"responseStatus\":", v),
        None => {}
    }
    if let Some(v) = &ev.request_object {
        value(out, b",\"requestObject\":", v);
    }
    if let Some(v) = &ev.response_object {
        value(out, b",\"responseObject\":", v);
    }
    out.extend_from_slice(b",\"requestReceivedTimestamp\":");
    micro_time(out, ev.request_received_timestamp);
    out.extend_from_slice(b",\"stageTimestamp\":");
    micro_time(out, ev.stage_timestamp);
    if !ev.annotations.is_empty() {
        out.extend_from_slice(b",\"annotations\":");
        joined(out, b'{', &ev.annotations, b'}', |out, (k, v)| {
            string(out, k);
            out.push(b':');
            string(out, v);
        });
    }
    out.push(b'}');
}

/// Writes an object's fields, each preceded by a comma but the first.
struct Fields<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Fields<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Fields { out, first: true }
    }

    /// `"key":`; `key` needs no escaping.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string field, left out when empty (`skip_serializing_if = "str::is_empty"`).
    fn non_empty(&mut self, key: &str, v: &str) {
        if !v.is_empty() {
            string(self.key(key), v);
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

fn user(out: &mut Vec<u8>, u: &UserInfo) {
    let mut f = Fields::open(out);
    f.non_empty("username", &u.username);
    f.non_empty("uid", &u.uid);
    if !u.groups.is_empty() {
        strings(f.key("groups"), &u.groups);
    }
    if !u.extra.is_empty() {
        joined(f.key("extra"), b'{', &u.extra, b'}', |out, (k, v)| {
            string(out, k);
            out.push(b':');
            strings(out, v);
        });
    }
    f.close();
}

fn object_ref(out: &mut Vec<u8>, o: &ObjectReference<'_>) {
    let mut f = Fields::open(out);
    f.non_empty("resource", o.resource);
    f.non_empty("namespace", o.namespace);
    f.non_empty("name", o.name);
    f.non_empty("apiGroup", o.api_group);
    f.non_empty("apiVersion", o.api_version);
    f.non_empty("subresource", o.subresource);
    f.close();
}

fn strings<S: AsRef<str>>(out: &mut Vec<u8>, v: impl IntoIterator<Item = S>) {
    joined(out, b'[', v, b']', |out, s| string(out, s.as_ref()));
}

/// `open`, the items separated by commas, `close`: a JSON array, or an object's entries.
fn joined<T>(
    out: &mut Vec<u8>,
    open: u8,
    items: impl IntoIterator<Item = T>,
    close: u8,
    item: impl Fn(&mut Vec<u8>, T),
) {
    out.push(open);
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, x);
    }
    out.push(close);
}

/// A JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // writing to a Vec cannot fail
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Whether any byte needs escaping (serde_json's table: control characters, `"` and `\`).
/// Whole 16-byte blocks are checked without an early exit, so they compile to vector code.
fn needs_escape(s: &[u8]) -> bool {
    let escaped = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut blocks = s.chunks_exact(16);
    let mut any = false;
    for block in &mut blocks {
        any |= block.iter().fold(false, |acc, &b| acc | escaped(b));
    }
    any || blocks.remainder().iter().any(|&b| escaped(b))
}

fn value(out: &mut Vec<u8>, key: &[u8], v: &impl serde::Serialize) {
    out.extend_from_slice(key);
    // writing to a Vec cannot fail, nor can serialising a JSON value
    let _ = serde_json::to_writer(&mut *out, v);
}

thread_local! {
    /// The last whole second formatted on this thread, and its `2006-01-02T15:04:05.`.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

/// metav1.MicroTime's form, `"2006-01-02T15:04:05.000000Z"`; the calendar part comes from
/// chrono once a second.
fn micro_time(out: &mut Vec<u8>, t: MicroTime) {
    let Ok(since) = t.0.duration_since(UNIX_EPOCH) else {
        return string(out, &super::event::micro_time(t.0));
    };
    let (secs, micros) = (since.as_secs(), since.subsec_micros());
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let whole = super::event::micro_time(UNIX_EPOCH + std::time::Duration::from_secs(secs));
            match whole.as_bytes().get(..20) {
                Some(prefix) if whole.len() == 27 => {
                    cached.1.copy_from_slice(prefix);
                    cached.0 = secs;
                }
                // a year past 9999 has more digits: format it whole, uncached
                _ => return string(out, &super::event::micro_time(t.0)),
            }
        }
        out.push(b'"');
        out.extend_from_slice(&cached.1);
        let mut digits = [b'0'; 6];
        let mut m = micros;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (m % 10) as u8;
            m /= 10;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"Z\"");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::policy::{Level, Stage};
    use crate::filters::request_received::{Incoming, SourceIps};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    fn written(ev: &Event<'_>) -> String {
        let mut out = Vec::new();
        write_event(&mut out, ev);
        String::from_utf8(out).unwrap()
    }

    fn at(micros: u64) -> MicroTime {
        MicroTime(UNIX_EPOCH + Duration::from_micros(micros))
    }

    /// Every shape of event, written here and by serde: byte for byte the same.
    #[test]
    fn writes_what_serde_writes() {
        let odd = "al\"ice\\ \u{0}\u{1f}\n\t\u{7f} caf\u{e9} \u{1F600} \u{2028}</script>";
        let mut user = UserInfo::new(odd, vec!["g\"1".into(), "\u{10FFFF}".into(), "plain".into()]);
        user.uid = "u-1".into();
        user.extra.insert("k\u{0}".into(), vec![odd.into(), "b".into()]);
        user.extra.insert("scopes".into(), vec![]);
        let plain = UserInfo::new("alice", vec![]);
        let incoming = Incoming::new("", "", "", &["10.0.0.1", "::1"], None);
        let mut annotations = BTreeMap::new();
        annotations.insert("authorization.k8s.io/reason", odd);
        annotations.insert("authorization.k8s.io/decision", "allow");
        let base = || Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: Level::Metadata,
            audit_id: "83f2d85a-8da6-448b-8517-67eac724e77c",
            stage: Stage::RequestReceived,
            request_uri: "/api/v1/namespaces/a%20b/pods?labelSelector=x%3Dy&q=\u{e9}\"",
            verb: "list",
            user: &user,
            impersonated_user: None,
            source_ips: incoming.source_ips(),
            user_agent: odd,
            object_ref: Some(ObjectReference {
                resource: "pods",
                namespace: "a b",
                name: "",
                api_group: "",
                api_version: "v1",
                subresource: "",
            }),
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: at(1_700_000_000_123_456),
            stage_timestamp: at(1_700_000_000_999_999),
            annotations: BTreeMap::new(),
        };
        let status = json!({"metadata": {}, "status": "Failure", "message": odd, "reason": "NotFound", "code": 404});
        let events = [
            base(),
            Event {
                stage: Stage::ResponseComplete,
                impersonated_user: Some(&plain),
                response_status: Some(ResponseStatus::Code(201)),
                annotations: annotations.clone(),
                stage_timestamp: at(1_700_000_001_000_000),
                ..base()
            },
            Event {
                level: Level::RequestResponse,
                stage: Stage::Panic,
                user: &plain,
                source_ips: SourceIps::default(),
                user_agent: "",
                object_ref: Some(ObjectReference {
                    resource: "deployments",
                    namespace: "",
                    name: "web",
                    api_group: "apps",
                    api_version: "v1",
                    subresource: "scale",
                }),
                response_status: Some(ResponseStatus::Status(status.clone())),
                request_object: Some(json!({"kind": "Scale", "spec": {"replicas": 3, "x": [1.5, null, true]}})),
                response_object: Some(json!({"kind": "Scale", "note": odd})),
                annotations: annotations.clone(),
                ..base()
            },
            Event {
                user: &crate::audit::event::NO_USER,
                object_ref: None,
                verb: "",
                request_uri: "",
                audit_id: "",
                stage: Stage::ResponseStarted,
                request_received_timestamp: at(0),
                stage_timestamp: at(253_402_300_799_999_999), // 9999-12-31T23:59:59.999999Z
                ..base()
            },
        ];
        for ev in &events {
            assert_eq!(written(ev), serde_json::to_string(ev).unwrap());
        }
    }

    #[test]
    fn finds_every_byte_that_needs_escaping() {
        for len in [0, 1, 15, 16, 17, 40] {
            assert!(!needs_escape(&vec![b'a'; len]));
            for at in 0..len {
                for b in [0u8, 0x1f, b'"', b'\\'] {
                    let mut v = vec![0x7f; len];
                    v[at] = b;
                    assert!(needs_escape(&v), "{b:#x} at {at} of {len}");
                }
            }
        }
    }

    /// The cached second never leaks into another second's timestamp.
    #[test]
    fn timestamps_match_chrono_across_seconds() {
        let mut t = 1_700_000_000_000_000u64;
        for step in [1, 999_999, 1, 7, 1_000_000, 3_600_000_000, 86_400_000_000, 13, 999_990, 31_536_000_000_000] {
            t += step;
            let mut out = Vec::new();
            micro_time(&mut out, at(t));
            let want = serde_json::to_string(&at(t)).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
        let mut out = Vec::new();
        micro_time(&mut out, MicroTime(SystemTime::UNIX_EPOCH - Duration::from_secs(1)));
        assert_eq!(String::from_utf8(out).unwrap(), "\"1969-12-31T23:59:59.000000Z\"");
    }
}
