//! RequestInfo and the query, selector and continue-token parsers: input is
//! `METHOD\nPATH\nQUERY`. Beyond not crashing: RequestInfo must agree with itself when the same
//! query is parsed once (what the chain does) or inside `resolve`, and a continue token that
//! decodes names a start inside its list and reads back from the token made of it.
#![no_main]
use frontdoor::request_info::query::{ListOptions, Query};
use frontdoor::request_info::{selector, RequestInfo};
use frontdoor::store::rest::continue_token;
use frontdoor::store::selectors::{FieldSelector, LabelSelector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let raw_query = parts.next();
    let query = Query::parse(raw_query.unwrap_or(""));
    let a = RequestInfo::resolve(method, path, raw_query);
    let b = RequestInfo::resolve_parsed(method, path, raw_query, &query);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    if let Ok(info) = &a {
        let _ = (info.is_long_running(), info.is_read_only(), info.scope());
    }
    let _ = ListOptions::decode(&query);
    let _ = frontdoor::store::rest::Options::decode(&query);
    for s in query.all("fieldSelector").chain(std::iter::once(path)) {
        let _ = selector::field_exact_match(s, "metadata.name");
        if let Ok(f) = FieldSelector::parse(s, &["type"]) {
            let _ = f.matches(&serde_json::json!({"metadata": {"name": "a", "namespace": "b"}, "type": "t"}));
        }
    }
    for c in query.all("continue").chain(std::iter::once(path)) {
        if let Ok((_, start)) = continue_token::decode(c) {
            assert!(!start.starts_with('/') && !start.split('/').any(|s| s == ".."), "{start:?}");
            assert_eq!(continue_token::decode(&continue_token::encode_latest(&start)), Ok((None, start)));
        }
    }
    for s in query.all("labelSelector").chain(std::iter::once(path)) {
        let valid = selector::label_selector_is_valid(s);
        if let Ok(l) = LabelSelector::parse(s) {
            let _ = l.matches(&serde_json::json!({"metadata": {"labels": {"a": "b", "c": ""}}}));
            let _ = valid;
        }
    }
});
