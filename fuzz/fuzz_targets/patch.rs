//! The patch formats and server-side apply. Input: a mode byte, then `TARGET\0PATCH` (no NUL:
//! the whole input is the patch of a stock ConfigMap). The three patch functions run on the
//! target directly; then the patch goes through the store's PATCH verb (JSON patch, merge,
//! strategic, apply by mode) as a dry run against an object another field manager applied,
//! so every input sees the same stored state.
#![no_main]
use frontdoor::request_info::query::Query;
use frontdoor::store::rest::{self, Options, Target};
use frontdoor::store::{patch, redb::RedbStorage, resources, Store};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::sync::{Arc, OnceLock};

const TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
const RESOURCES: [&str; 3] = ["configmaps", "secrets", "serviceaccounts"];

fn target<'a>(s: &'a Store, resource: &str, query: &str, content_type: &str) -> Target<'a> {
    Target {
        def: s.def("", resource).unwrap(),
        namespace: "default".into(),
        name: "x".into(),
        subresource: String::new(),
        query: Options::decode(&Query::parse(query)).unwrap(),
        table: false,
        partial: false,
        output: Default::default(),
        content_type: content_type.into(),
        user_agent: "fuzz".into(),
        admit: None,
        // an apply of a missing object creates it (the writer may create)
        create_right: Some(Ok(())),
        warnings: Default::default(),
    }
}

fn store() -> &'static Store {
    static S: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    &S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(RedbStorage::open(dir.path(), 1000).unwrap());
        let s = Store::with_storage(resources::defaults(), storage).unwrap();
        // an applied configuration names its kind and version, as kube's apply requires
        let objects = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1", "b": "2"}, "metadata": {"labels": {"app": "x"}}}),
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "stringData": {"k": "v"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "secrets": [{"name": "s1"}, {"name": "s2"}], "imagePullSecrets": [{"name": "p"}]}),
        ];
        for (resource, body) in RESOURCES.iter().zip(objects) {
            let t = target(&s, resource, "fieldManager=other", TYPES[3]);
            rest::patch(&s, &t, body.to_string().as_bytes()).unwrap();
        }
        (dir, s)
    })
    .1
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (target_bytes, patch_bytes) = match rest.iter().position(|&c| c == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&br#"{"kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"1"}}"#[..], rest),
    };
    if let (Ok(t), Ok(p)) = (frontdoor::api::decode::json(target_bytes), frontdoor::api::decode::json(patch_bytes)) {
        let mut merged = t.clone();
        patch::merge_patch(&mut merged, &p);
        let _ = patch::json_patch(&t, &p);
        let mut strategic = t.clone();
        let _ = patch::strategic_merge_patch(&mut strategic, &p, Some("io.k8s.api.core.v1.ConfigMap"));
        // a merge patch is idempotent (RFC 7386)
        let mut again = merged.clone();
        patch::merge_patch(&mut again, &p);
        assert_eq!(again, merged);
    }
    let s = store();
    let resource = RESOURCES[(mode as usize / 4) % RESOURCES.len()];
    let query =
        if mode & 0x80 != 0 { "fieldManager=fuzz&dryRun=All&force=true" } else { "fieldManager=fuzz&dryRun=All" };
    let t = target(s, resource, query, TYPES[mode as usize % 4]);
    let before = s.storage.get(&t.def.key("default", "x")).map(|o| o.rev);
    let _ = rest::patch(s, &t, patch_bytes);
    // a dry run writes nothing
    assert_eq!(s.storage.get(&t.def.key("default", "x")).map(|o| o.rev), before);
});
