//! Large lists, streamed: a list over one 64 KiB chunk leaves in chunks (HTTP/1.1 chunked, no
//! Content-Length; HTTP/2 data frames) with exactly the bytes of its pages put together, as
//! JSON, protobuf and a Table; kubectl and the Python client read it whole; the audit event and
//! the request metrics record it as the 200 it is.

use crate::common::{audited, Frontdoor};
use crate::store_protobuf::{bytes, configmap, envelope, string};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::process::Command;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The items of a JSON list, each as the bytes it has in the list.
fn item_bytes(list: &[u8]) -> (Value, Vec<String>) {
    #[derive(serde::Deserialize)]
    struct L<'a> {
        metadata: Value,
        #[serde(borrow)]
        items: Vec<&'a RawValue>,
    }
    let l: L = serde_json::from_slice(list).unwrap();
    (l.metadata, l.items.iter().map(|i| i.get().to_string()).collect())
}

#[test]
fn large_lists_are_streamed_with_the_bytes_of_their_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, log) = (dir.path().join("audit-policy.yaml"), dir.path().join("audit.log"));
    std::fs::write(&policy, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: RequestResponse, resources: [{group: '', resources: [configmaps]}]}]\n").unwrap();
    let fd = Frontdoor::start_in(
        dir,
        &["--audit-policy-file", policy.to_str().unwrap(), "--audit-log-path", log.to_str().unwrap()],
    );
    let c = fd.admin_client();
    fd.kubectl_ok(&["create", "namespace", "big"]);
    let cms = fd.url("/api/v1/namespaces/big/configmaps");
    const N: usize = 400;
    for i in 0..N {
        let cm = json!({"metadata": {"name": format!("cm-{i:04}"), "labels": {"n": i.to_string()}},
                        "data": {"k": format!("{i}-{}", "\u{e9}x\"".repeat(300))}});
        assert_eq!(c.post(&cms).json(&cm).send().unwrap().status(), 201);
    }

    // HTTP/1.1: chunked, no length, the bytes of the pages at the same revision
    let h1 = fd.client_builder_with_cert("admin").http1_only().build().unwrap();
    let r = h1.get(&cms).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    assert!(r.headers().get("content-length").is_none());
    let audit_id = r.headers()["audit-id"].to_str().unwrap().to_string();
    let whole = r.bytes().unwrap();
    assert!(whole.len() > 4 * 64 * 1024, "{}", whole.len());
    let (meta, items) = item_bytes(&whole);
    assert_eq!(items.len(), N + 1, "the ConfigMaps and kube-root-ca.crt");
    let rv = meta["resourceVersion"].as_str().unwrap().to_string();
    let mut paged = Vec::new();
    let mut next = format!("{cms}?limit=20&resourceVersion={rv}&resourceVersionMatch=Exact");
    loop {
        let page = c.get(&next).send().unwrap();
        assert!(page.headers().get("content-length").is_some(), "a page under a chunk goes whole");
        let (m, mut its) = item_bytes(&page.bytes().unwrap());
        paged.append(&mut its);
        match m["continue"].as_str() {
            Some(token) => next = format!("{cms}?limit=20&continue={token}"),
            None => break,
        }
    }
    let want = format!(
        r#"{{"kind":"ConfigMapList","apiVersion":"v1","metadata":{{"resourceVersion":"{rv}"}},"items":[{}]}}"#,
        paged.join(",")
    );
    assert_eq!(String::from_utf8(whole.to_vec()).unwrap(), want);

    // HTTP/2 (ALPN): the same bytes
    let r = c.get(format!("{cms}?resourceVersion={rv}&resourceVersionMatch=Exact")).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.bytes().unwrap(), whole);

    // audited as a 200 with the whole list as its responseObject; counted as a 200 LIST
    let ev = audited(&log, &audit_id);
    assert_eq!(ev["responseStatus"]["code"], 200);
    assert_eq!(ev["responseObject"]["items"].as_array().map(Vec::len), Some(N + 1));
    let metrics = c.get(fd.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("apiserver_request_total{")
            && l.contains(r#"code="200""#)
            && l.contains(r#"resource="configmaps""#)
            && l.contains(r#"verb="LIST""#)),
        "{metrics}"
    );

    // protobuf: every item, in order
    let r = c.get(&cms).header("Accept", PROTOBUF).send().unwrap();
    assert_eq!(r.headers()["content-type"], PROTOBUF);
    let (_, kind, raw) = envelope(&r.bytes().unwrap());
    assert_eq!(kind, "ConfigMapList");
    let names: Vec<String> = bytes(&raw, 2).iter().map(|i| configmap(i).0).collect();
    assert_eq!((names.len(), names[0].as_str(), names[N - 1].as_str()), (N + 1, "cm-0000", "cm-0399"));
    assert!(!string(&bytes(&raw, 1).pop().unwrap(), 2).is_empty(), "the ListMeta's resourceVersion");

    // a Table of them (streamed too), with whole objects in its rows
    let r = h1.get(format!("{cms}?includeObject=Object")).header("Accept", TABLE).send().unwrap();
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let t: Value = r.json().unwrap();
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), N + 1);
    assert_eq!(rows[1]["cells"][0], "cm-0001");
    assert_eq!(rows[1]["object"]["data"]["k"].as_str().unwrap().len(), 2 + 4 * 300);
    // an includeObject kube does not know is the client's error (kube's asTable)
    let r = h1.get(format!("{cms}?includeObject=bogus")).header("Accept", TABLE).send().unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["message"], "unrecognized includeObject value: \"bogus\"");

    // kubectl get and the Python client read it all
    let out = fd.kubectl_ok(&["get", "configmaps", "-n", "big", "--no-headers"]);
    assert_eq!(out.lines().count(), N + 1, "{out}");
    assert!(out.lines().nth(400).unwrap().starts_with("kube-root-ca.crt"), "{out}");
    let script =
        "import sys\nfrom kubernetes import client, config\nconfig.load_kube_config(config_file=sys.argv[1])\n\
                  items = client.CoreV1Api().list_namespaced_config_map('big').items\n\
                  print(len(items), items[0].metadata.name, len(items[0].data['k']))\n";
    let o = Command::new("python3").arg("-c").arg(script).arg(fd.kubeconfig()).output().expect("python3 runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("{} cm-0000 {}", N + 1, 2 + 3 * 300));
}

/// Label and field selectors are read as kube reads them (`labels.Parse`, `fields.ParseSelector`):
/// a selector that does not parse is a 400 with kube's text for lists and watches alike,
/// `>`/`<` compare a label as an integer, `in ()` is the set {""}, and a field selector is
/// neither trimmed nor split inside an escaped value.
#[test]
fn selectors_parse_and_match_as_kube() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    fd.kubectl_ok(&["create", "namespace", "sel"]);
    let cms = fd.url("/api/v1/namespaces/sel/configmaps");
    for (name, labels) in [
        ("n5", json!({"n": "5", "e": ""})),
        ("n12", json!({"n": "12", "e": "x"})),
        ("nx", json!({"n": "x"})),
        ("plain", json!({})),
    ] {
        let cm = json!({"metadata": {"name": name, "labels": labels}});
        assert_eq!(c.post(&cms).json(&cm).send().unwrap().status(), 201, "{name}");
    }
    let list = |param: &str, selector: &str| -> (u16, Value) {
        let r = c.get(&cms).query(&[(param, selector)]).send().unwrap();
        (r.status().as_u16(), r.json().unwrap())
    };
    let names = |param: &str, selector: &str| -> Vec<String> {
        let (code, body) = list(param, selector);
        assert_eq!(code, 200, "{selector}: {body}");
        let mut n: Vec<String> =
            body["items"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap().into()).collect();
        n.retain(|n| n != "kube-root-ca.crt");
        n.sort();
        n
    };
    assert_eq!(names("labelSelector", "n>6"), ["n12"]);
    assert_eq!(names("labelSelector", "n<6"), ["n5"], "nx's label is no integer");
    assert_eq!(names("labelSelector", "e in ()"), ["n5"], "the label present and empty");
    assert_eq!(names("labelSelector", "e notin ()"), ["n12", "nx", "plain"]);
    assert_eq!(names("labelSelector", "n in(5,12)"), ["n12", "n5"]);
    assert_eq!(names("fieldSelector", "metadata.name=n5,metadata.name!=x"), ["n5"]);
    // an escaped value parses (and names no object: a name has no `,`)
    assert_eq!(names("fieldSelector", r"metadata.name=a\,b\=c"), Vec::<String>::new());

    let name_part = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    for (param, selector, message) in [
        ("labelSelector", "app in x", "unable to parse requirement: found 'x' expected: '('".to_string()),
        ("labelSelector", "a b=c", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".into()),
        ("labelSelector", "app=x=y", "found '=', expected: ',' or 'end of string'".into()),
        ("labelSelector", "-a=1", format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {name_part}")),
        ("labelSelector", "x/y/z=1", "unable to parse requirement: <nil>: Invalid value: \"x/y/z\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into()),
        ("labelSelector", "n>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer".into()),
        ("fieldSelector", "metadata.name=n5,foo", "invalid selector: 'metadata.name=n5,foo'; can't understand 'foo'".into()),
        ("fieldSelector", "metadata.name=x=y", "invalid field selector: unescaped character in value: 61".into()),
        ("fieldSelector", "metadata.name = n5", "field label not supported: metadata.name ".into()),
    ] {
        let (code, body) = list(param, selector);
        assert_eq!((code, body["reason"].as_str(), body["message"].as_str()), (400, Some("BadRequest"), Some(message.as_str())), "{selector}");
        // a watch parses its selectors alike
        let r = c.get(&cms).query(&[(param, selector), ("watch", "1"), ("timeoutSeconds", "1")]).send().unwrap();
        assert_eq!(r.status(), 400, "watch {selector}");
        assert_eq!(r.json::<Value>().unwrap()["message"], message.as_str(), "watch {selector}");
    }
}

/// A continue token is kube's (k8s.io/apiserver storage.DecodeContinue under the etcd3 store's
/// GetList): its start key is relative to the prefix of the list it is used on, so a token from
/// a list in one namespace goes on from the same name in another, and across namespaces from
/// the namespace of that name; a malformed token is a 400 `invalid continue token: ...` in Go's
/// base64 and encoding/json words, checked before the resourceVersion beside it.
#[test]
fn continue_tokens_are_relative_to_the_list_and_malformed_ones_refused_as_kube() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    for ns in ["x-a", "x-b"] {
        fd.kubectl_ok(&["create", "namespace", ns]);
        for name in ["m1", "m2", "m3"] {
            let cm = json!({"metadata": {"name": name}});
            let r = c.post(fd.url(&format!("/api/v1/namespaces/{ns}/configmaps"))).json(&cm).send().unwrap();
            assert_eq!(r.status(), 201);
        }
    }
    let list = |path: &str| -> Value {
        let r = c.get(fd.url(path)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().unwrap()
    };
    let names = |l: &Value| -> Vec<String> {
        let item = |i: &Value| match i["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", i["metadata"]["name"].as_str().unwrap()),
            None => i["metadata"]["name"].as_str().unwrap().to_string(),
        };
        l["items"].as_array().unwrap().iter().map(item).collect()
    };

    // the first page in x-a ends at m1 (after its kube-root-ca.crt)
    let first = list("/api/v1/namespaces/x-a/configmaps?limit=2");
    assert_eq!(names(&first), ["x-a/kube-root-ca.crt", "x-a/m1"]);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    assert_eq!(names(&list(&format!("/api/v1/namespaces/x-a/configmaps?continue={token}"))), ["x-a/m2", "x-a/m3"]);
    // in x-b it goes on after x-b's m1; across namespaces, from namespace "m1\0" on
    assert_eq!(names(&list(&format!("/api/v1/namespaces/x-b/configmaps?continue={token}"))), ["x-b/m2", "x-b/m3"]);
    let all = ["kube-root-ca.crt", "m1", "m2", "m3"];
    let want: Vec<String> = ["x-a", "x-b"].iter().flat_map(|ns| all.iter().map(move |n| format!("{ns}/{n}"))).collect();
    assert_eq!(names(&list(&format!("/api/v1/configmaps?continue={token}"))), want);

    // a token from across namespaces ends at "x-a/m1": in x-b no name comes after "x-a/m1\0"
    let whole = names(&list("/api/v1/configmaps"));
    let upto = whole.iter().position(|n| n == "x-a/m1").unwrap() + 1;
    let page = list(&format!("/api/v1/configmaps?limit={upto}"));
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    assert_eq!(names(&list(&format!("/api/v1/configmaps?continue={token}"))), &whole[upto..]);
    assert!(names(&list(&format!("/api/v1/namespaces/x-b/configmaps?continue={token}"))).is_empty());

    // malformed tokens: kube's 400 and words
    let refused = |query: &str, message: &str| {
        let r = c.get(fd.url(&format!("/api/v1/namespaces/x-a/configmaps?{query}"))).send().unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let s: Value = r.json().unwrap();
        assert_eq!(
            (s["kind"].as_str(), s["reason"].as_str(), s["code"].as_u64()),
            (Some("Status"), Some("BadRequest"), Some(400))
        );
        assert_eq!(s["message"], message, "{query}");
    };
    refused("continue=!!", "invalid continue token: continue key is not valid: illegal base64 data at input byte 0");
    refused(
        "continue=abc",
        "invalid continue token: continue key is not valid: invalid character 'i' looking for beginning of value",
    );
    // (base64 of {"v":"meta.k8s.io/v1","rv":"7","start":"m1"})
    refused(
        "continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6IjciLCJzdGFydCI6Im0xIn0",
        "invalid continue token: continue key is not valid: json: cannot unmarshal string into Go struct field continueToken.rv of type int64",
    );
    // the token is read before the resourceVersion beside it is refused
    refused(
        "continue=!!&resourceVersion=5",
        "invalid continue token: continue key is not valid: illegal base64 data at input byte 0",
    );
    refused(
        &format!("continue={token}&resourceVersion=5"),
        "specifying resource version is not allowed when using continue",
    );
}
