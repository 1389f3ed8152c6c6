//! Hostile bodies are refused promptly, in kube's words; ordinary ones decode as before.

use super::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Generous: the machine running tests is shared and noisy; a regression is minutes.
const PROMPT: Duration = Duration::from_secs(5);

/// Both JSON decoders (`json_strict` also reports duplicate fields): they must refuse alike.
type Decoder = fn(&[u8]) -> Result<serde_json::Value, String>;
const JSON_DECODERS: [Decoder; 2] = [json, |b| json_strict(b).map(|s| s.value)];

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    out
}

#[test]
fn deep_json_is_refused_as_go_words_it() {
    for json in JSON_DECODERS {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(timed(|| json(deep.as_bytes())), Err("invalid character '[' exceeded max depth".into()));
        let deep = format!("{{\"a\":{}1{}}}", "{\"b\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(json(deep.as_bytes()), Err("invalid character '{' exceeded max depth".into()));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(json(ok.as_bytes()).is_ok());
        // brackets in strings are not nesting
        let s = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert_eq!(json(s.as_bytes()).unwrap()["a"].as_str().unwrap().len(), 1001);
    }
}

#[test]
fn deep_yaml_flow_and_block_is_refused_as_go_yaml_words_it() {
    let want = Err(format!("yaml: exceeded max depth of {MAX_DEPTH}"));
    for doc in [
        "[".repeat(100_000) + &"]".repeat(100_000),
        "a: ".to_string() + &"{b: ".repeat(100_000) + "1" + &"}".repeat(100_000),
        "- ".repeat(100_000) + "x\n",
        (0..MAX_DEPTH + 1).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect::<String>(),
    ] {
        assert_eq!(timed(|| yaml(doc.as_bytes())), want);
    }
    let ok = (0..MAX_DEPTH - 1).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect::<String>()
        + &"  ".repeat(99)
        + "x: 1\n";
    assert!(yaml(ok.as_bytes()).is_ok(), "{:?}", yaml(ok.as_bytes()));
}

#[test]
fn yaml_aliases_may_not_explode() {
    // billion laughs: nine levels of nine-fold aliases
    let mut doc = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
    for (i, c) in "bcdefghij".chars().enumerate() {
        let prev = (b'a' + i as u8) as char;
        doc.push_str(&format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
    }
    assert!(timed(|| yaml(doc.as_bytes())).is_err());
    // wide: one anchor of 20,000 items, aliased 20,000 times (serde_yaml alone runs out of memory)
    let wide = format!("a: &a [{}]\nb: [{}]\n", vec!["x"; 20_000].join(","), vec!["*a"; 20_000].join(","));
    assert_eq!(timed(|| yaml(wide.as_bytes())), Err("yaml: document contains excessive aliasing".into()));
    // a few aliases are fine
    let v = yaml(b"base: &b {k: v}\none: *b\ntwo: *b\n").unwrap();
    assert_eq!(v["two"], json!({"k": "v"}));
}

#[test]
fn huge_flat_bodies_decode() {
    let items: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\":\"v\"")).collect();
    let big = format!("{{{}}}", items.join(","));
    assert!(big.len() > 2_000_000);
    assert_eq!(timed(|| json(big.as_bytes())).unwrap().as_object().unwrap().len(), 200_000);
    assert_eq!(timed(|| yaml(big.as_bytes())).unwrap().as_object().unwrap().len(), 200_000);
    let block: String = (0..60_000).map(|i| format!("k{i}: v\n")).collect();
    assert_eq!(timed(|| yaml(block.as_bytes())).unwrap().as_object().unwrap().len(), 60_000);
}

#[test]
fn yaml_token_count_is_bounded_json_is_not() {
    // 3 tokens a key: 70,000 keys are past the bound as YAML, and fine as the same JSON
    let block: String = (0..70_000).map(|i| format!("k{i}: v\n")).collect();
    let want = format!("yaml: document has more than {MAX_YAML_NODES} tokens; send a larger object as JSON");
    assert_eq!(timed(|| yaml(block.as_bytes())), Err(want.clone()));
    let tiny = format!("[{}]", vec!["a"; 1_000_000].join(","));
    assert_eq!(timed(|| yaml(tiny.as_bytes())), Err(want));
    let items: Vec<String> = (0..70_000).map(|i| format!("\"k{i}\":\"v\"")).collect();
    let json_body = format!("{{{}}}", items.join(","));
    assert_eq!(yaml(json_body.as_bytes()).unwrap().as_object().unwrap().len(), 70_000);
    // a YAML comment or a block scalar is one token however long
    let long = format!("# {}\nbig: |\n{}", "c".repeat(1_000_000), "  line\n".repeat(300_000));
    assert_eq!(yaml(long.as_bytes()).unwrap()["big"].as_str().unwrap().len(), 5 * 300_000);
}

#[test]
fn the_scan_reads_strings_and_escapes_as_the_parser_does() {
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    let refused = Err("invalid character '[' exceeded max depth".to_string());
    // an escaped backslash ends before the quote, which closes the string: the nesting counts
    assert_eq!(check_json_depth(format!(r#"["a\\",{deep}]"#).as_bytes()), refused);
    // an escaped quote does not close it: the brackets are the string's
    assert_eq!(check_json_depth(format!(r#"["a\"{deep}"]"#).as_bytes()), Ok(()));
    assert_eq!(check_json_depth(format!(r#"["\u005c",{deep}]"#).as_bytes()), refused);
    // cut short inside a string or an escape: no verdict of the scan's own, no panic
    for cut in [&b"\"abc"[..], b"\"abc\\", b"\"", b"[\"\\\\"] {
        assert_eq!(check_json_depth(cut), Ok(()), "{}", String::from_utf8_lossy(cut));
    }
    // commas in strings are no values; the count is exact around them
    let at = |n: usize| format!("[{}]", vec![r#""a,\",b""#; n].join(","));
    assert!(check_json_depth(at(MAX_JSON_VALUES - 1).as_bytes()).is_ok());
    assert!(check_json_depth(at(MAX_JSON_VALUES).as_bytes()).is_err());
}

#[test]
fn json_value_count_is_bounded() {
    for json in JSON_DECODERS {
        let want = Err(format!("json: document has more than {MAX_JSON_VALUES} values"));
        // the count is exact: the root, each comma, each non-empty container's first value
        let at = |n: usize| format!("{{\"a\":[{}]}}", vec!["1"; n].join(","));
        assert!(json(at(MAX_JSON_VALUES - 2).as_bytes()).is_ok());
        assert_eq!(json(at(MAX_JSON_VALUES - 1).as_bytes()), want);
        let nested = format!("{{\"spec\":[{}]}}", vec!["[[[[]]]]"; MAX_JSON_VALUES / 4].join(" , "));
        assert_eq!(timed(|| json(nested.as_bytes())), want);
        // empty containers, strings holding commas and brackets are no values of their own
        let quiet = format!("{{\"a\":[{}],\"s\":\"{}\"}}", vec!["[]"; 1000].join(","), ",[{".repeat(MAX_JSON_VALUES));
        assert!(json(quiet.as_bytes()).is_ok());
        // a ConfigMap filling kube's 3 MiB body limit is within the bound
        let items: Vec<String> = (0..280_000).map(|i| format!("\"k{i}\":\"\"")).collect();
        let big = format!("{{\"data\":{{{}}}}}", items.join(","));
        assert!(big.len() > 3_000_000, "{}", big.len());
        assert!(json(big.as_bytes()).is_ok());
    }
}

#[test]
fn an_array_is_told_from_an_object_without_building_it() {
    assert!(is_json_array(b" [1, 2, {\"a\": []}]"));
    assert!(!is_json_array(b"{\"a\": [1]}"));
    assert!(!is_json_array(b"[1, 2,"), "malformed: left to the parser, which says where");
    assert!(!is_json_array(b"- a\n- b\n"));
}

#[test]
fn yaml_keeps_its_meaning() {
    let v =
        yaml(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x # c\ndata:\n  a: '1'\n  b: |\n    [[[\n  n: 2\n")
            .unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1", "b": "[[[\n", "n": 2}})
    );
    assert!(yaml(b"a: 1\n---\nb: 2\n").is_err(), "one document");
    assert!(yaml(b"a: [1, 2").is_err());
}

#[test]
fn kubes_unrecognized_summary() {
    assert_eq!(
        unrecognized("ConfigMap", "e", br#"{"apiVersion":"v1","kind":"ConfigMap","data":{}}"#),
        r#"the object provided is unrecognized (must be of type ConfigMap): e ({"apiVersion":"v1","kind":"Con ...)"#
    );
    assert_eq!(
        unrecognized("ConfigMap", "e", b"[["),
        "the object provided is unrecognized (must be of type ConfigMap): e (5b5b)"
    );
    assert_eq!(
        unrecognized("ConfigMap", "e", b""),
        "the object provided is unrecognized (must be of type ConfigMap): e (<empty>)"
    );
}

#[test]
fn duplicate_fields_are_reported_as_kube_words_them() {
    let s = json_strict(br#"{"metadata": {"name": "a", "name": "b"}, "data": [{"k": 1, "k": 2}]}"#).unwrap();
    assert_eq!(s.value["metadata"]["name"], "b");
    assert_eq!(s.duplicates, vec![r#"duplicate field "metadata.name""#, r#"duplicate field "data[0].k""#]);
    assert_eq!(s.value["data"][0]["k"], 2);
    assert!(json_strict(br#"{"a": 1}"#).unwrap().duplicates.is_empty());
    // a large map, keys out of order, the duplicate far from its first: the last still wins
    let mut pairs: Vec<String> = (0..5000).rev().map(|i| format!("\"k{i}\":{i}")).collect();
    pairs.push("\"k17\":-1".into());
    let s = json_strict(format!("{{{}}}", pairs.join(",")).as_bytes()).unwrap();
    assert_eq!(
        (s.value.as_object().unwrap().len(), &s.value["k17"], &s.value["k4999"]),
        (5000, &json!(-1), &json!(4999))
    );
    assert_eq!(s.duplicates, vec![r#"duplicate field "k17""#]);
    let y = yaml_strict(b"metadata:\n  name: a\ndata:\n  k: v\n  k: w\n").unwrap();
    assert_eq!(y.value["data"]["k"], "w");
    assert_eq!(y.duplicates, vec![r#"line 5: key "k" already set in map"#]);
}

#[test]
fn large_numbers_decode_to_the_nearest_float_as_go_does() {
    // found by the decode fuzz target: without correct rounding a number past u64 came back
    // one ulp off once encoded and decoded again
    let v = json(b"666666666666661666666").unwrap();
    assert_eq!(json(&serde_json::to_vec(&v).unwrap()), Ok(v.clone()));
    assert_eq!(v.as_f64(), Some(666666666666661666666f64));
}

#[test]
fn a_large_map_in_no_order_decodes_as_inserting_its_keys_would() {
    // keys that tie on their first 8 bytes, that are prefixes of others, NULs and non-ASCII,
    // in a scrambled order, with keys set twice: the strict decoder sorts these itself
    let mut keys: Vec<String> = (0..6000u32)
        .map(|i| match i % 4 {
            0 => format!("config.key.{}", i.wrapping_mul(2654435761) % 9973),
            1 => format!("{}", i.wrapping_mul(40503) % 1000),
            2 => format!("a\u{0}{}é", i % 50),
            _ => "x".repeat(1 + (i as usize * 7) % 13),
        })
        .collect();
    keys.rotate_left(1234);
    let body = format!(
        "{{{}}}",
        keys.iter().enumerate().map(|(i, k)| format!("{}:{i}", json!(k))).collect::<Vec<_>>().join(",")
    );
    let s = json_strict(body.as_bytes()).unwrap();
    assert_eq!(s.value, json(body.as_bytes()).unwrap());
    assert_eq!(s.value["x"], json!(keys.iter().rposition(|k| k == "x").unwrap()));
    assert!(!s.duplicates.is_empty());
}

#[test]
fn the_bounds_scan_sizes_the_large_containers_in_document_order() {
    let map = |n: usize| format!("{{{}}}", (0..n).map(|i| format!("\"k{i}\":[{i}]")).collect::<Vec<_>>().join(","));
    let list = |n: usize| format!("[{}]", vec!["\"a,]\\\"\""; n].join(" , "));
    // containers in order: 0 the outer array, 1 {}, 2 the 1500-list, 3 the 2000-map, then
    // its 2000 one-item lists, then the 1024-list
    let body = format!("[{{}}, {}, {}, {}]", list(1500), map(2000), list(1024));
    let shape = scan_json(body.as_bytes()).unwrap();
    assert_eq!(shape.large, vec![(2, 1500), (3, 2000), (2004, 1024)]);
    assert_eq!((shape.size_of(3), shape.size_of(0), shape.size_of(1)), (2000, 0, 0));
    let empty = scan_json(b"[[], {}, [ ], { }]").unwrap();
    assert_eq!(empty, Shape::default());
    assert_eq!(json_strict(body.as_bytes()).unwrap().value, json(body.as_bytes()).unwrap());
}
