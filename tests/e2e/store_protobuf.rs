//! Protobuf responses as kube-apiserver writes them, read here with a protobuf reader of the
//! test's own (wire format and generated.proto field numbers, nothing of the server's): an
//! object, a list, and a watch stream in kube's length-prefixed `WatchEvent` frames; the Go
//! client in kubectl (`kubectl create rolebinding` asks for protobuf) decodes them; content
//! negotiation falls back to JSON for kinds without protobuf, and answers 406 when nothing
//! the client accepts is offered.

use crate::common::{stderr, Frontdoor};
use serde_json::Value;
use std::io::Read;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// A message's fields in order: (number, varint or bytes).
fn fields(mut b: &[u8]) -> Vec<(u32, Result<u64, Vec<u8>>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = b[0];
            *b = &b[1..];
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = varint(&mut b);
        match tag & 7 {
            0 => out.push(((tag >> 3) as u32, Ok(varint(&mut b)))),
            2 => {
                let n = varint(&mut b) as usize;
                out.push(((tag >> 3) as u32, Err(b[..n].to_vec())));
                b = &b[n..];
            }
            w => panic!("unexpected wire type {w}"),
        }
    }
    out
}

pub fn bytes(b: &[u8], n: u32) -> Vec<Vec<u8>> {
    fields(b).into_iter().filter(|(f, _)| *f == n).filter_map(|(_, v)| v.err()).collect()
}

pub fn string(b: &[u8], n: u32) -> String {
    String::from_utf8(bytes(b, n).pop().unwrap_or_default()).unwrap()
}

/// `k8s\0` + runtime.Unknown{typeMeta{apiVersion, kind}, raw}.
pub fn envelope(b: &[u8]) -> (String, String, Vec<u8>) {
    let unknown = b.strip_prefix(b"k8s\x00").expect("the k8s protobuf magic");
    let type_meta = bytes(unknown, 1).pop().unwrap();
    (string(&type_meta, 1), string(&type_meta, 2), bytes(unknown, 2).pop().unwrap())
}

/// A ConfigMap message: its name and data.
pub fn configmap(raw: &[u8]) -> (String, Vec<(String, String)>) {
    let meta = bytes(raw, 1).pop().unwrap();
    let data = bytes(raw, 2).iter().map(|e| (string(e, 1), string(e, 2))).collect();
    (string(&meta, 1), data)
}

#[test]
fn protobuf_objects_lists_and_watches() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    fd.kubectl_ok(&["create", "cm", "pb", "--from-literal=k=v"]);

    // an object
    let r = c.get(format!("{cms}/pb")).header("Accept", format!("{PROTOBUF}, */*")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], PROTOBUF);
    let (api_version, kind, raw) = envelope(&r.bytes().unwrap());
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "ConfigMap"));
    assert_eq!(configmap(&raw), ("pb".to_string(), vec![("k".to_string(), "v".to_string())]));

    // a list: ListMeta (resourceVersion) and the items
    let r = c.get(&cms).header("Accept", PROTOBUF).send().unwrap();
    assert_eq!(r.headers()["content-type"], PROTOBUF);
    let (_, kind, raw) = envelope(&r.bytes().unwrap());
    assert_eq!(kind, "ConfigMapList");
    let rv: u64 = string(&bytes(&raw, 1).pop().unwrap(), 2).parse().unwrap();
    assert!(rv > 0);
    let names: Vec<String> = bytes(&raw, 2).iter().map(|i| configmap(i).0).collect();
    assert!(names.contains(&"pb".to_string()), "{names:?}");

    // a watch: length-prefixed WatchEvent frames, the object in its own envelope; the write
    // comes first and the watch replays it from the list's resourceVersion (a write after a
    // slow start would miss the watch's short timeout)
    fd.kubectl_ok(&["create", "cm", "later", "--from-literal=a=b"]);
    let watch = {
        let (c, url) =
            (c.clone(), format!("{cms}?watch=1&resourceVersion={rv}&timeoutSeconds=2&allowWatchBookmarks=true"));
        std::thread::spawn(move || {
            let mut r = c.get(url).header("Accept", format!("{PROTOBUF}, application/json")).send().unwrap();
            assert_eq!(r.headers()["content-type"], "application/vnd.kubernetes.protobuf;stream=watch");
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            all
        })
    };
    let stream = watch.join().unwrap();
    let mut events = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        // a bare WatchEvent, as kube's raw stream serializer writes it (no envelope: client-go
        // reads the frame straight into a WatchEvent)
        let raw = rest[4..4 + n].to_vec();
        assert!(!raw.starts_with(b"k8s\x00"), "no envelope around the event");
        let ty = string(&raw, 1);
        let object = bytes(&bytes(&raw, 2).pop().unwrap(), 1).pop().unwrap();
        let (_, object_kind, object_raw) = envelope(&object);
        assert_eq!(object_kind, "ConfigMap");
        events.push((ty, configmap(&object_raw)));
        rest = &rest[4 + n..];
    }
    assert_eq!(events[0], ("ADDED".to_string(), ("later".to_string(), vec![("a".to_string(), "b".to_string())])));
    assert_eq!(events.last().unwrap().0, "BOOKMARK");

    // the Go client in kubectl decodes what it asked protobuf for
    let o = fd.kubectl(&["-v=8", "create", "rolebinding", "rb", "--role=reader", "--user=alice", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains(&format!("Accept: {PROTOBUF},application/json")), "{log}");
    assert!(log.contains(&format!("Content-Type: {PROTOBUF}")), "{log}");
    let rb: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rb["roleRef"]["name"], "reader");
    assert_eq!(rb["subjects"][0]["name"], "alice");
    assert!(rb["metadata"]["uid"].is_string());

    // negotiation: a kind without protobuf falls back to JSON, or is a 406 when only protobuf will do
    let apiservices = fd.url("/apis/apiregistration.k8s.io/v1/apiservices");
    let r = c.get(&apiservices).header("Accept", format!("{PROTOBUF},application/json")).send().unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (200, "application/json"));
    let r = c.get(&apiservices).header("Accept", PROTOBUF).send().unwrap();
    assert_eq!(r.status(), 406);
    let s: Value = r.json().unwrap();
    assert_eq!(s["reason"], "NotAcceptable");
    assert_eq!(s["message"], "only the following media types are accepted: application/json, application/yaml");
    let r = c.get(format!("{cms}/pb")).header("Accept", "application/yaml").send().unwrap();
    assert_eq!(r.headers()["content-type"], "application/yaml");
    let y: Value = serde_yaml::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(y["data"]["k"], "v");
    assert_eq!(c.get(&cms).header("Accept", "text/html").send().unwrap().status(), 406);
}
