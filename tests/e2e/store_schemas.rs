//! The store's kinds as typed objects, end to end: kube's schemas decide decoding
//! (`fieldValidation`, types, base64), kube's validation its texts, `/openapi/v2` and
//! `/openapi/v3` serve the schemas (`kubectl explain`, `kubectl apply --validate`), server-side
//! apply merges lists by their list type and a forced apply takes ownership; and after a
//! campaign of bad input the Python client's typed models decode every stored object.

use crate::common::{stderr, stdout, Frontdoor};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use std::process::Command;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn send(c: &Client, fd: &Frontdoor, method: &str, path: &str, ct: &str, body: &str) -> (u16, Vec<String>, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r: Response = c.request(m, fd.url(path)).header("Content-Type", ct).body(body.to_string()).send().unwrap();
    let code = r.status().as_u16();
    let warnings = r.headers().get_all("Warning").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let v = r.json().unwrap_or(Value::Null);
    (code, warnings, v)
}

fn post(c: &Client, fd: &Frontdoor, path: &str, body: &str) -> (u16, Vec<String>, Value) {
    send(c, fd, "POST", path, "application/json", body)
}

#[test]
fn field_validation_and_types_as_kube_decodes() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let unknown = r#"{"metadata":{"name":"NAME"},"datax":{"a":"b"},"data":{"k":"v"}}"#;

    // Strict: 400, kube's words
    let (code, _, v) = post(&c, &fd, &format!("{CMS}?fieldValidation=Strict"), &unknown.replace("NAME", "s"));
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "datax""#
    );
    // Warn (kube's default without the parameter): stored without the field, one Warning
    let (code, warnings, v) = post(&c, &fd, CMS, &unknown.replace("NAME", "w"));
    assert_eq!(code, 201, "{v}");
    assert_eq!(warnings, vec![r#"299 - "unknown field \"datax\"""#]);
    assert!(v.get("datax").is_none() && v["data"]["k"] == "v", "{v}");
    // a field name with a control character: kube refuses such a warning text and drops the
    // warning (it escaped it); the object is stored all the same
    let (code, warnings, v) = post(&c, &fd, CMS, r#"{"metadata":{"name":"ctl"},"data\u0001x":{},"datay":1}"#);
    assert_eq!(code, 201, "{v}");
    assert_eq!(warnings, vec![r#"299 - "unknown field \"datay\"""#]);
    // Ignore: stored without it, silently
    let (code, warnings, v) = post(&c, &fd, &format!("{CMS}?fieldValidation=Ignore"), &unknown.replace("NAME", "i"));
    assert_eq!((code, warnings.len()), (201, 0), "{v}");
    assert!(v.get("datax").is_none());
    // duplicate fields, JSON and YAML
    let (code, _, v) = post(
        &c,
        &fd,
        &format!("{CMS}?fieldValidation=Strict"),
        r#"{"metadata":{"name":"d","name":"d"},"data":{"k":"v"}}"#,
    );
    assert_eq!(code, 400);
    assert!(
        v["message"].as_str().unwrap().ends_with(r#"strict decoding error: duplicate field "metadata.name""#),
        "{v}"
    );
    let yaml = "metadata:\n  name: y\ndata:\n  k: v\n  k: w\n";
    let (code, _, v) = send(&c, &fd, "POST", &format!("{CMS}?fieldValidation=Strict"), "application/yaml", yaml);
    assert_eq!(code, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: yaml: unmarshal errors:\n  line 5: key \"k\" already set in map"),
        "{v}"
    );
    // an unknown directive is the options' 422
    let (code, _, v) = post(&c, &fd, &format!("{CMS}?fieldValidation=Loose"), &unknown.replace("NAME", "l"));
    assert_eq!((code, v["details"]["causes"][0]["field"].as_str()), (422, Some("fieldValidation")), "{v}");

    // wrong types are refused whatever the directive
    let (code, _, v) =
        post(&c, &fd, &format!("{CMS}?fieldValidation=Ignore"), r#"{"metadata":{"name":"t"},"data":{"a":1}}"#);
    assert_eq!(code, 400);
    assert_eq!(
        v["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ConfigMap.data of type string"
    );
    let (code, _, v) =
        post(&c, &fd, "/api/v1/namespaces/default/secrets", r#"{"metadata":{"name":"b"},"data":{"a":"not base64!"}}"#);
    assert_eq!(code, 400);
    assert_eq!(
        v["message"],
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3"
    );

    // patches: the patched object is decoded the same way
    let (code, _, v) = send(
        &c,
        &fd,
        "PATCH",
        &format!("{CMS}/w?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"spec":{"x":1}}"#,
    );
    assert_eq!((code, v["message"].as_str()), (400, Some(r#"strict decoding error: unknown field "spec""#)), "{v}");
    let (code, _, v) = send(
        &c,
        &fd,
        "PATCH",
        &format!("{CMS}/w?fieldValidation=Strict"),
        "application/json-patch+json",
        r#"[{"op":"add","path":"/data/j","value":"1","foo":"bar"},{"op":"add","path":"/x","path":"/data/k","value":"2"}]"#,
    );
    assert_eq!(code, 400);
    assert_eq!(
        v["message"],
        r#"strict decoding error: json patch unknown field "[0].foo", json patch duplicate field "[1].path""#
    );
    let (code, warnings, _) =
        send(&c, &fd, "PATCH", &format!("{CMS}/w"), "application/merge-patch+json", r#"{"spec":{"x":1}}"#);
    assert_eq!((code, warnings), (200, vec![r#"299 - "unknown field \"spec\"""#.to_string()]));
    let (code, _, v) =
        send(&c, &fd, "PATCH", &format!("{CMS}/w"), "application/merge-patch+json", r#"{"data":{"n":true}}"#);
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["message"], "json: cannot unmarshal bool into Go struct field ConfigMap.data of type string");
    // server-side apply refuses what the schema has not, whatever the directive
    let (code, _, v) = send(
        &c,
        &fd,
        "PATCH",
        &format!("{CMS}/w?fieldManager=m&fieldValidation=Ignore"),
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w\ndatax:\n  a: b\n",
    );
    assert_eq!(code, 400);
    assert_eq!(
        v["message"],
        "failed to create typed patch object (default/w; /v1, Kind=ConfigMap): .datax: field not declared in schema"
    );
}

#[test]
fn many_unknown_fields_warn_within_kubes_bound() {
    // one Warning per unknown field made megabytes of headers, more than clients read, while the
    // object was stored; kube's recorder keeps them to ~4k runes of text
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let mut body = json!({"metadata": {"name": "many"}, "data": {"k": "v"}});
    for i in 0..20_000 {
        body[format!("unknown{i}")] = json!("v");
    }
    let (code, warnings, v) = post(&c, &fd, CMS, &body.to_string());
    assert_eq!(code, 201, "{v}");
    let bytes: usize = warnings.iter().map(String::len).sum();
    assert!(bytes < 8 * 1024, "{} Warning headers, {bytes} bytes", warnings.len());
    assert_eq!(warnings.first().map(String::as_str), Some(r#"299 - "unknown field \"unknown0\"""#));
    let r = c.get(fd.url(&format!("{CMS}/many"))).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert!(v["data"]["k"] == "v" && v.get("unknown0").is_none(), "{v}");
}

#[test]
fn kubes_validation_with_its_texts() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let invalid = |body: &str, path: &str| {
        let (code, _, v) = post(&c, &fd, path, body);
        assert_eq!(code, 422, "{body}: {v}");
        assert_eq!(v["reason"], "Invalid");
        v
    };
    // names: a configmap's may be 64-253 characters; a namespace's may not
    let long = "a".repeat(200);
    let (code, _, v) = post(&c, &fd, CMS, &format!(r#"{{"metadata":{{"name":"{long}"}}}}"#));
    assert_eq!(code, 201, "{v}");
    let v = invalid(&format!(r#"{{"metadata":{{"name":"{}"}}}}"#, "a".repeat(64)), "/api/v1/namespaces");
    assert_eq!(
        v["details"]["causes"][0]["message"],
        format!("Invalid value: \"{}\": must be no more than 63 characters", "a".repeat(64))
    );

    let v = invalid(r#"{"metadata":{"name":"l","labels":{"bad key":"v"}}}"#, CMS);
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.labels");
    assert!(v["message"].as_str().unwrap().starts_with(
        "ConfigMap \"l\" is invalid: metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters"
    ));
    let v = invalid(r#"{"metadata":{"name":"k"},"data":{"bad key":"v"}}"#, CMS);
    assert_eq!(v["details"]["causes"][0]["field"], "data[bad key]");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
    let big = "x".repeat(256 * 1024);
    let v = invalid(&format!(r#"{{"metadata":{{"name":"a","annotations":{{"a":"{big}"}}}}}}"#), CMS);
    assert_eq!(v["details"]["causes"][0]["message"], "Too long: may not be more than 262144 bytes");
    let big = "x".repeat(1024 * 1024 + 1);
    let v = invalid(&format!(r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{big}"}}}}"#), CMS);
    assert_eq!(v["details"]["causes"][0]["message"], "Too long: may not be more than 1048576 bytes");
    let v = invalid(
        r#"{"metadata":{"name":"o","ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x"}]}}"#,
        CMS,
    );
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.ownerReferences.uid");
    // a namespace's finalizers are the server's on create; its finalize subresource checks them
    let (code, _, _) = post(&c, &fd, "/api/v1/namespaces", r#"{"metadata":{"name":"n"}}"#);
    assert_eq!(code, 201);
    let (code, _, v) = send(
        &c,
        &fd,
        "PUT",
        "/api/v1/namespaces/n/finalize",
        "application/json",
        r#"{"metadata":{"name":"n"},"spec":{"finalizers":["foo"]}}"#,
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(
        v["details"]["causes"][0]["message"],
        "Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified"
    );

    // Secrets: required keys per type, the type immutable
    let secrets = "/api/v1/namespaces/default/secrets";
    let v = invalid(r#"{"metadata":{"name":"tls"},"type":"kubernetes.io/tls","data":{"tls.crt":""}}"#, secrets);
    assert_eq!(v["details"]["causes"][0]["field"], "data[tls.key]");
    assert_eq!(v["details"]["causes"][0]["message"], "Required value");
    let (code, _, _) = post(&c, &fd, secrets, r#"{"metadata":{"name":"s"},"stringData":{"a":"b"}}"#);
    assert_eq!(code, 201);
    let (code, _, v) = send(
        &c,
        &fd,
        "PATCH",
        &format!("{secrets}/s"),
        "application/merge-patch+json",
        r#"{"type":"kubernetes.io/basic-auth","data":{"username":""}}"#,
    );
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "Secret \"s\" is invalid: type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"
    );

    // immutable ConfigMaps
    let (code, _, _) = post(&c, &fd, CMS, r#"{"metadata":{"name":"frozen"},"immutable":true,"data":{"a":"1"}}"#);
    assert_eq!(code, 201);
    let (code, _, v) =
        send(&c, &fd, "PATCH", &format!("{CMS}/frozen"), "application/merge-patch+json", r#"{"data":{"a":"2"}}"#);
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let (code, _, _) = send(
        &c,
        &fd,
        "PATCH",
        &format!("{CMS}/frozen"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"ok":"yes"}}}"#,
    );
    assert_eq!(code, 200, "metadata stays mutable");

    // metadata.uid is a precondition of an update
    let (code, _, v) = send(
        &c,
        &fd,
        "PUT",
        &format!("{CMS}/frozen"),
        "application/json",
        r#"{"metadata":{"name":"frozen","uid":"not-the-uid"},"immutable":true,"data":{"a":"1"}}"#,
    );
    assert_eq!(code, 409, "{v}");
    let uid =
        c.get(fd.url(&format!("{CMS}/frozen"))).send().unwrap().json::<Value>().unwrap()["metadata"]["uid"].clone();
    assert_eq!(
        v["message"],
        format!(
            "Operation cannot be fulfilled on configmaps \"frozen\": Precondition failed: UID in precondition: not-the-uid, UID in object meta: {}",
            uid.as_str().unwrap()
        )
    );
    // a create on an object's path has no route
    let (code, _, _) = post(&c, &fd, &format!("{CMS}/frozen"), r#"{"metadata":{"name":"frozen"}}"#);
    assert_eq!(code, 405);
}

#[test]
fn openapi_explain_and_kubectl_validation() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    // documents with ETags; a matching If-None-Match is a 304
    let r = c.get(fd.url("/openapi/v2")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let etag = r.headers()["ETag"].to_str().unwrap().to_string();
    let v2: Value = r.json().unwrap();
    assert!(v2["definitions"]["io.k8s.api.core.v1.ConfigMap"]["properties"]["data"].is_object());
    let r = c.get(fd.url("/openapi/v2")).header("If-None-Match", &etag).send().unwrap();
    assert_eq!(r.status().as_u16(), 304);
    let root: Value = c.get(fd.url("/openapi/v3")).send().unwrap().json().unwrap();
    let url = root["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap();
    let core: Value = c.get(fd.url(url)).send().unwrap().json().unwrap();
    assert!(core["components"]["schemas"]["io.k8s.api.core.v1.Secret"]["properties"]["data"].is_object());

    // kubectl explain, from the v3 documents
    let out = fd.kubectl_ok(&["explain", "configmap.data"]);
    assert!(out.contains("KIND:       ConfigMap") || out.contains("KIND:     ConfigMap"), "{out}");
    assert!(out.contains("Data contains the configuration data"), "{out}");
    let out = fd.kubectl_ok(&["explain", "clusterrolebinding.roleRef"]);
    assert!(out.contains("RoleRef contains information that points to the role being used"), "{out}");

    // kubectl apply: strict by default; --validate=false lets the server drop the field
    let p = fd.dir.path().join("cm.yaml");
    std::fs::write(
        &p,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  namespace: default\ndatax:\n  a: b\n",
    )
    .unwrap();
    let f = p.to_str().unwrap();
    let o = fd.kubectl(&["apply", "-f", f]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(r#"strict decoding error: unknown field "datax""#), "{}", stderr(&o));
    let o = fd.kubectl(&["apply", "--validate=warn", "-f", f]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(r#"unknown field "datax""#), "{}", stderr(&o));
    let o = fd.kubectl(&["create", "--validate=false", "-f", f, "--dry-run=server"]);
    assert!(o.status.success() || stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(fd.kubectl_ok(&["get", "cm", "typo", "-o", "jsonpath={.datax}"]), "");
}

#[test]
fn server_side_apply_list_types_and_forced_ownership() {
    let fd = Frontdoor::start(&[]);
    let apply = |manager: &str, yaml: &str, extra: &[&str]| {
        let p = fd.dir.path().join(format!("{manager}.yaml"));
        std::fs::write(&p, yaml).unwrap();
        let mut args = vec!["apply", "--server-side", "--field-manager", manager, "-f", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        fd.kubectl(&args)
    };
    let cm = |finalizer: &str, value: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\n  finalizers: [{finalizer}]\ndata:\n  k: \"{value}\"\n")
    };
    let o = apply("alice", &cm("example.com/alice", "1"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // a set: bob's finalizer joins alice's instead of replacing it
    let o = apply("bob", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\n  finalizers: [example.com/bob]\n", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Value = serde_json::from_str(&fd.kubectl_ok(&["get", "cm", "shared", "-o", "json"])).unwrap();
    assert_eq!(got["metadata"]["finalizers"], json!(["example.com/alice", "example.com/bob"]));

    // bob sets alice's field: a conflict, then forced, and alice no longer owns it
    let bob = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\n  finalizers: [example.com/bob]\ndata:\n  k: \"2\"\n";
    let o = apply("bob", bob, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(r#"conflict with "alice""#), "{}", stderr(&o));
    let o = apply("bob", bob, &["--force-conflicts"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Value =
        serde_json::from_str(&fd.kubectl_ok(&["get", "cm", "shared", "-o", "json", "--show-managed-fields"])).unwrap();
    assert_eq!(got["data"]["k"], "2");
    let managed = got["metadata"]["managedFields"].as_array().unwrap();
    let of = |m: &str| managed.iter().find(|e| e["manager"] == m).map(|e| e["fieldsV1"].clone()).unwrap();
    assert!(of("alice")["f:data"].get("f:k").is_none(), "{managed:?}");
    assert!(of("bob")["f:data"].get("f:k").is_some(), "{managed:?}");
    // alice re-applies without her finalizer: only hers goes
    let o = apply("alice", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\n", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Value = serde_json::from_str(&fd.kubectl_ok(&["get", "cm", "shared", "-o", "json"])).unwrap();
    assert_eq!(got["metadata"]["finalizers"], json!(["example.com/bob"]));
    assert_eq!(got["data"]["k"], "2", "bob's value stays: alice lost the field");
}

#[test]
fn typed_clients_decode_everything_stored_after_bad_input() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let ns = "/api/v1/namespaces/default";
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    // bodies a Go or Python typed client could not read back if they were stored
    let campaign: Vec<(String, &str)> = vec![
        (
            CMS.to_string(),
            r#"{"metadata":{"name":"c1","ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x"}]}}"#,
        ),
        (CMS.to_string(), r#"{"metadata":{"name":"c2","labels":{"a":1}}}"#),
        (CMS.to_string(), r#"{"metadata":{"name":"c3","managedFields":[{"manager":"m","time":"yesterday"}]}}"#),
        (CMS.to_string(), r#"{"metadata":{"name":"c4","creationTimestamp":12},"data":[]}"#),
        (CMS.to_string(), r#"{"metadata":{"name":"c5"},"binaryData":{"a":"%%%"}}"#),
        (CMS.to_string(), r#"{"metadata":{"name":"c6"},"immutable":"yes"}"#),
        (CMS.to_string(), r#"{"metadata":{"name":"c7","finalizers":"one"}}"#),
        (format!("{ns}/secrets"), r#"{"metadata":{"name":"s1"},"data":{"a":"***"}}"#),
        (format!("{ns}/secrets"), r#"{"metadata":{"name":"s2"},"type":7}"#),
        (format!("{ns}/events"), r#"{"metadata":{"name":"e1"},"reason":"x"}"#),
        (format!("{ns}/events"), r#"{"metadata":{"name":"e2"},"involvedObject":{},"count":"many"}"#),
        (format!("{ns}/serviceaccounts"), r#"{"metadata":{"name":"sa1"},"secrets":[{"name":1}]}"#),
        (format!("{ns}/serviceaccounts"), r#"{"metadata":{"name":"sa2"},"automountServiceAccountToken":"no"}"#),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases".to_string(),
            r#"{"metadata":{"name":"l1"},"spec":{"leaseDurationSeconds":"long"}}"#,
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases".to_string(),
            r#"{"metadata":{"name":"l2"},"spec":{"renewTime":"soon"}}"#,
        ),
        (format!("{rbac}/namespaces/default/roles"), r#"{"metadata":{"name":"r1"},"rules":[{"resources":["x"]}]}"#),
        (
            format!("{rbac}/namespaces/default/rolebindings"),
            r#"{"metadata":{"name":"b1"},"subjects":[{"kind":"User"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"}}"#,
        ),
        (format!("{rbac}/clusterroles"), r#"{"metadata":{"name":"cr1"},"rules":"all"}"#),
        (format!("{rbac}/clusterrolebindings"), r#"{"metadata":{"name":"crb1"},"subjects":[]}"#),
        (
            "/apis/apiregistration.k8s.io/v1/apiservices".to_string(),
            r#"{"metadata":{"name":"v1.x.example.com"},"spec":{"group":"x.example.com","version":"v1","groupPriorityMinimum":"high","versionPriority":1}}"#,
        ),
        ("/api/v1/namespaces".to_string(), r#"{"metadata":{"name":"n1"},"spec":{"finalizers":[3]}}"#),
    ];
    for (path, body) in &campaign {
        let (code, _, v) = post(&c, &fd, path, body);
        assert!(matches!(code, 400 | 422), "{path} {body}: {code} {v}");
    }
    // the same through updates and patches of good objects
    let (code, _, _) = post(&c, &fd, CMS, r#"{"metadata":{"name":"good"},"data":{"a":"b"}}"#);
    assert_eq!(code, 201);
    for (ct, body) in [
        ("application/merge-patch+json", r#"{"metadata":{"ownerReferences":[{"name":"x"}]}}"#),
        ("application/merge-patch+json", r#"{"data":{"a":{"b":"c"}}}"#),
        (
            "application/json-patch+json",
            r#"[{"op":"add","path":"/metadata/managedFields","value":[{"time":"never"}]}]"#,
        ),
        ("application/strategic-merge-patch+json", r#"{"metadata":{"labels":{"x":["y"]}}}"#),
    ] {
        let (code, _, v) = send(&c, &fd, "PATCH", &format!("{CMS}/good"), ct, body);
        assert!(matches!(code, 400 | 422), "{body}: {code} {v}");
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/clients/python_typed_lists.py");
    let o = Command::new("python3").arg(script).arg(fd.kubeconfig()).output().expect("python3 runs");
    assert!(o.status.success(), "the typed models failed:\n{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("configmaps "), "{}", stdout(&o));
}
