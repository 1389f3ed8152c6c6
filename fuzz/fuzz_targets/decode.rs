//! Request body decoding: the first byte picks JSON, YAML, kube protobuf (with and without
//! the envelope's magic, so the fuzzer need not find it) or the REST handlers' decode by
//! content type (`CONTENT-TYPE\nBODY`). A decoded body is never nested past MAX_DEPTH, and the
//! two JSON decoders accept the same bodies as the same values.
#![no_main]
use frontdoor::api::decode::{self, value_depth, MAX_DEPTH};
use libfuzzer_sys::fuzz_target;

fn bounded(v: &serde_json::Value) {
    assert!(value_depth(v) <= MAX_DEPTH, "decoded {} levels deep", value_depth(v));
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            // the strict decoder (which also reports duplicate fields) reads every body as `json` does
            let decoded = decode::json(body);
            let strict = decode::json_strict(body).map(|s| s.value);
            assert_eq!(decoded.as_ref().ok(), strict.as_ref().ok(), "json and json_strict disagree");
            if let Ok(v) = decoded {
                bounded(&v);
                // what we encode we decode again, the same
                assert_eq!(decode::json(&serde_json::to_vec(&v).unwrap()).as_ref(), Ok(&v));
            }
        }
        1 => {
            if let Ok(v) = decode::yaml(body) {
                bounded(&v);
            }
        }
        2 => {
            let mut enveloped = b"k8s\x00".to_vec();
            enveloped.extend_from_slice(body);
            for b in [body, &enveloped[..]] {
                if let Ok(v) = frontdoor::store::protobuf::decode(b) {
                    bounded(&v);
                }
            }
        }
        _ => {
            let (ct, body) = match body.iter().position(|&c| c == b'\n') {
                Some(i) => (String::from_utf8_lossy(&body[..i]).into_owned(), &body[i + 1..]),
                None => (String::new(), body),
            };
            if let Ok(v) = frontdoor::store::rest::decode(body, &ct, "ConfigMap") {
                bounded(&v);
            }
        }
    }
});
