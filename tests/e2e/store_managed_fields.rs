//! managedFields' sets (`fieldsV1`), which the server keeps as their JSON text, read back as
//! kube writes them in every form a client can ask for: JSON, YAML, protobuf, Table rows,
//! PartialObjectMetadata, lists, watch events, write replies (create, dry-run, update, merge
//! and JSON patch, apply, delete), through kubectl, and from a second replica reading the same
//! etcd. No form ever shows how the server holds them.

use crate::common::Frontdoor;
use frontdoor::store::etcd::process::EtcdProcess;
use reqwest::blocking::Client;
use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const PARTIAL_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The held form's key is `\0fieldsV1:` and a token in hex: no answer, in any encoding, may
/// carry it (YAML's own `fieldsV1:` key is followed by a line's end).
fn no_held_form(what: &str, body: &[u8]) {
    let held = |w: &[u8]| w.starts_with(b"fieldsV1:") && w[9].is_ascii_hexdigit();
    assert!(!body.windows(10).any(held), "{what}: {}", String::from_utf8_lossy(body));
}

fn send(c: &Client, method: &str, url: &str, accept: &str, ct: &str, body: &str) -> Vec<u8> {
    let mut req = c.request(method.parse().unwrap(), url).header("Accept", accept);
    if !body.is_empty() {
        req = req.header("Content-Type", ct).body(body.to_string());
    }
    let r = req.send().unwrap();
    let status = r.status();
    let b = r.bytes().unwrap().to_vec();
    assert!(status.is_success(), "{method} {url} ({accept}): {status} {}", String::from_utf8_lossy(&b));
    b
}

/// Each entry's manager and set, from an object in JSON.
fn sets(o: &Value) -> Vec<(String, Value)> {
    let list = o["metadata"]["managedFields"].as_array().unwrap_or_else(|| panic!("no managedFields: {o}"));
    list.iter().map(|e| (e["manager"].as_str().unwrap().to_string(), e["fieldsV1"].clone())).collect()
}

fn created_set() -> Value {
    // the maps the create brings in are fields of their own beside what they hold, as kube
    // writes them (structured-merge-diff's Compare of the new object with Go's zero value)
    json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
}

#[test]
fn sets_read_back_as_kube_writes_them_in_every_form() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let url = |p: &str| fd.url(p);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf", "labels": {"a": "b"}},
        "data": {"k": "v"}})
    .to_string();
    let made: Value = serde_json::from_slice(&send(
        &c,
        "POST",
        &format!("{}?fieldManager=maker", url(CMS)),
        "application/json",
        "application/json",
        &cm,
    ))
    .unwrap();
    let want = vec![("maker".to_string(), created_set())];
    assert_eq!(sets(&made), want, "{made}");
    let one = url(&format!("{CMS}/mf"));

    // one object, as JSON, YAML, protobuf, a Table row and metadata only
    let get = |accept: &str| send(&c, "GET", &one, accept, "", "");
    let b = get("application/json");
    no_held_form("get", &b);
    assert_eq!(sets(&serde_json::from_slice(&b).unwrap()), want);
    let b = get("application/yaml");
    no_held_form("get yaml", &b);
    assert_eq!(sets(&serde_yaml::from_slice(&b).unwrap()), want);
    let b = get(PROTOBUF);
    no_held_form("get protobuf", &b);
    let text = serde_json::to_string(&created_set()).unwrap();
    assert!(b.windows(text.len()).any(|w| w == text.as_bytes()), "protobuf carries the set's JSON");
    for include in ["Object", "Metadata"] {
        let b = send(&c, "GET", &format!("{one}?includeObject={include}"), TABLE, "", "");
        no_held_form(include, &b);
        let t: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(sets(&t["rows"][0]["object"]), want, "{include}");
    }
    let b = get(PARTIAL);
    no_held_form("partial", &b);
    assert_eq!(sets(&serde_json::from_slice(&b).unwrap()), want);

    // the list, in the same forms, and a watch
    let list = url(CMS);
    let get_list = |accept: &str, q: &str| send(&c, "GET", &format!("{list}{q}"), accept, "", "");
    for (accept, q) in [
        ("application/json", ""),
        ("application/yaml", ""),
        (PROTOBUF, ""),
        (PARTIAL_LIST, ""),
        (TABLE, "?includeObject=Object"),
        ("application/json", "?watch=1&resourceVersion=0&timeoutSeconds=1"),
        (PROTOBUF, "?watch=1&resourceVersion=0&timeoutSeconds=1"),
        (TABLE, "?watch=1&resourceVersion=0&timeoutSeconds=1&includeObject=Object"),
        (PARTIAL, "?watch=1&resourceVersion=0&timeoutSeconds=1"),
    ] {
        let b = get_list(accept, q);
        no_held_form(&format!("list {accept}{q}"), &b);
        if accept.starts_with("application/json") {
            let text = String::from_utf8_lossy(&b);
            assert!(text.contains(r#""fieldsV1":{"f:data""#), "list {accept}{q}: {text}");
        }
    }

    // write replies: a dry-run create, an update, a merge patch, a JSON patch reading into a
    // set, an apply by a second manager, a delete
    let dry = cm.replace("\"mf\"", "\"dry\"");
    let b = send(
        &c,
        "POST",
        &format!("{list}?dryRun=All&fieldManager=maker"),
        "application/json",
        "application/json",
        &dry,
    );
    no_held_form("dry-run", &b);
    assert_eq!(sets(&serde_json::from_slice(&b).unwrap()), want);
    let b = send(
        &c,
        "POST",
        &format!("{list}?dryRun=All&fieldManager=maker"),
        "application/yaml",
        "application/json",
        &dry,
    );
    no_held_form("dry-run yaml", &b);

    let mut current: Value = serde_json::from_slice(&get("application/json")).unwrap();
    current["data"]["k2"] = json!("v2");
    let b = send(
        &c,
        "PUT",
        &format!("{one}?fieldManager=maker"),
        "application/json",
        "application/json",
        &current.to_string(),
    );
    no_held_form("update", &b);
    let mut grown = created_set();
    grown["f:data"]["f:k2"] = json!({});
    assert_eq!(sets(&serde_json::from_slice(&b).unwrap()), vec![("maker".to_string(), grown.clone())]);

    let merge = r#"{"metadata":{"labels":{"c":"d"}}}"#;
    let b = send(
        &c,
        "PATCH",
        &format!("{one}?fieldManager=patcher"),
        "application/json",
        "application/merge-patch+json",
        merge,
    );
    no_held_form("merge patch", &b);
    let patched: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(sets(&patched)[0], ("maker".to_string(), grown.clone()));
    assert_eq!(sets(&patched)[1], ("patcher".to_string(), json!({"f:metadata": {"f:labels": {"f:c": {}}}})));

    // a JSON patch sees the sets as JSON: a test inside one holds, a test of a field it lacks fails
    let ops = json!([
        {"op": "test", "path": "/metadata/managedFields/0/fieldsV1/f:data/f:k2", "value": {}},
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/labels/e", "value": "f"},
    ]);
    let b = send(&c, "PATCH", &one, "application/json", "application/json-patch+json", &ops.to_string());
    no_held_form("json patch", &b);
    let refused = c
        .patch(&one)
        .header("Content-Type", "application/json-patch+json")
        .body(
            json!([{"op": "test", "path": "/metadata/managedFields/0/fieldsV1/f:data/f:nope", "value": {}}])
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(refused.status(), 422, "a test of a field the set does not name fails");

    let apply = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mf\ndata:\n  k3: v3\n";
    let b = send(
        &c,
        "PATCH",
        &format!("{one}?fieldManager=applier"),
        "application/yaml",
        "application/apply-patch+yaml",
        apply,
    );
    no_held_form("apply", &b);
    let applied: Value = serde_yaml::from_slice(&b).unwrap();
    let by: std::collections::BTreeMap<String, Value> = sets(&applied).into_iter().collect();
    assert_eq!(by["applier"], json!({"f:data": {"f:k3": {}}}));
    assert_eq!(by["maker"], grown);

    // kubectl reads them as any Go client does
    let shown: Value =
        serde_json::from_str(&fd.kubectl_ok(&["get", "cm", "mf", "--show-managed-fields", "-o", "json"])).unwrap();
    assert_eq!(sets(&shown), sets(&applied));

    let b = send(&c, "DELETE", &one, "application/json", "", "");
    no_held_form("delete", &b);
}

#[test]
fn a_replica_reading_etcd_reads_the_sets() {
    let etcd_dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(etcd_dir.path()).unwrap();
    let args = ["--etcd-servers", etcd.url.as_str()];
    let (a, b) = (Frontdoor::start(&args), Frontdoor::start(&args));
    a.kubectl_ok(&["create", "cm", "shared", "--from-literal=k=v"]);
    a.kubectl_ok(&["label", "cm", "shared", "a=b"]);
    for fd in [&a, &b] {
        let body = fd.admin_client().get(fd.url(&format!("{CMS}/shared"))).send().unwrap().bytes().unwrap();
        no_held_form("replica", &body);
        let o: Value = serde_json::from_slice(&body).unwrap();
        let s = sets(&o);
        assert_eq!(s[0].1, json!({"f:data": {".": {}, "f:k": {}}}), "{o}");
        assert_eq!(s[1].1, json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}}), "{o}");
    }
}

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.sets.example.com
spec:
  group: sets.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Set, type: string, jsonPath: ".metadata.managedFields[0].fieldsV1"}
    - {name: Spec, type: string, jsonPath: ".metadata.managedFields[0].fieldsV1.f:spec"}
    - {name: Meta, type: string, jsonPath: ".metadata"}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-validations:
        - rule: "!has(self.metadata.managedFields) || self.metadata.managedFields.all(e, !has(e.fieldsV1) || e.fieldsV1.all(k, k.startsWith('f:')))"
          message: every set is read as its fields
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              deep: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

/// A custom resource's printer columns and CEL rules read the sets as the maps they are.
#[test]
fn printer_columns_and_rules_read_the_sets() {
    let fd = Frontdoor::start(&[]);
    let crd = fd.certs().join("widgets.yaml");
    std::fs::write(&crd, WIDGETS).unwrap();
    fd.kubectl_ok(&["apply", "-f", crd.to_str().unwrap()]);
    fd.kubectl_ok(&["wait", "--for=condition=Established", "crd/widgets.sets.example.com", "--timeout=10s"]);
    let c = fd.admin_client();
    let list = fd.url("/apis/sets.example.com/v1/namespaces/default/widgets");
    let w =
        json!({"apiVersion": "sets.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}});
    send(&c, "POST", &format!("{list}?fieldManager=maker"), "application/json", "application/json", &w.to_string());
    // an update: the rule now sees the stored object's set
    let merge = r#"{"spec":{"size":2}}"#;
    let one = format!("{list}/w");
    let b = send(
        &c,
        "PATCH",
        &format!("{one}?fieldManager=maker"),
        "application/json",
        "application/merge-patch+json",
        merge,
    );
    no_held_form("patched widget", &b);
    for url in [one.as_str(), list.as_str()] {
        let b = send(&c, "GET", url, TABLE, "", "");
        no_held_form("widget table", &b);
        let t: Value = serde_json::from_slice(&b).unwrap();
        let cells = &t["rows"][0]["cells"];
        assert_eq!(
            serde_json::from_str::<Value>(cells[1].as_str().unwrap()).unwrap(),
            json!({"f:spec": {".": {}, "f:size": {}}})
        );
        assert_eq!(serde_json::from_str::<Value>(cells[2].as_str().unwrap()).unwrap(), json!({".": {}, "f:size": {}}));
        let meta: Value = serde_json::from_str(cells[3].as_str().unwrap()).unwrap();
        assert_eq!(meta["managedFields"][0]["fieldsV1"], json!({"f:spec": {".": {}, "f:size": {}}}));
    }

    // an object near the depth bound takes a JSON patch: its depth is its own, not its set's
    let mut deep = json!({});
    for _ in 0..94 {
        deep = json!({"a": deep});
    }
    let w = json!({"apiVersion": "sets.example.com/v1", "kind": "Widget", "metadata": {"name": "deep"}, "spec": {"deep": deep}});
    send(&c, "POST", &list, "application/json", "application/json", &w.to_string());
    let ops = json!([{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]).to_string();
    let b = send(&c, "PATCH", &format!("{list}/deep"), "application/json", "application/json-patch+json", &ops);
    no_held_form("deep json patch", &b);
}

/// A resourceVersion in an applied configuration is a precondition, as for any update: a
/// stale one is kube's 409, the current one applies.
#[test]
fn an_applied_resource_version_is_a_precondition() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let url = fd.url(&format!("{CMS}/y?fieldManager=m1&force=true"));
    let apply = |rv: &str, v: &str| {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y", "resourceVersion": rv}, "data": {"k": v}});
        let body = if rv.is_empty() {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y"}, "data": {"k": v}})
        } else {
            body
        };
        c.patch(&url).header("Content-Type", "application/apply-patch+yaml").body(body.to_string()).send().unwrap()
    };
    let created: Value = apply("", "first").json().unwrap();
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let stale = apply("1", "stale");
    assert_eq!(stale.status(), 409);
    let now: Value = c.get(fd.url(&format!("{CMS}/y"))).send().unwrap().json().unwrap();
    assert_eq!(now["data"]["k"], "first", "nothing written");
    let fresh = apply(&rv, "second");
    assert_eq!(fresh.status(), 200);
}

/// An Update owns list items as kube's structured-merge-diff does with the lists' markers
/// (ObjectMeta's finalizers `+listType=set`: `v:` items; ownerReferences `+listType=map`
/// keyed by uid: `k:` items, field by field), so a later apply by another manager shares a
/// finalizer and an owner reference it sets alike, keeps a finalizer only the other still owns,
/// and conflicts on an owner reference's field it sets otherwise. The sets are what kube
/// writes for the same sequence (derived from structured-merge-diff's Compare and ToFieldSet).
#[test]
fn an_update_owns_list_items_and_an_apply_shares_or_conflicts_on_them() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let url = fd.url(&format!("{CMS}/own"));
    // a live owner (one that is not would have the garbage collector delete the object)
    let p: Value = c.post(fd.url(CMS)).json(&json!({"metadata": {"name": "p"}})).send().unwrap().json().unwrap();
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let owner = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid});
    let key = format!("k:{{\"uid\":\"{uid}\"}}");
    let cm = json!({"metadata": {"name": "own", "finalizers": ["example.com/a"], "ownerReferences": [owner("p")]}});
    let r = c.post(fd.url(&format!("{CMS}?fieldManager=creator"))).json(&cm).send().unwrap();
    assert_eq!(r.status(), 201);
    let item = json!({".": {}, "f:apiVersion": {}, "f:kind": {}, "f:name": {}, "f:uid": {}});
    let created = json!({"f:metadata": {
        "f:finalizers": {".": {}, "v:\"example.com/a\"": {}},
        "f:ownerReferences": {".": {}, key.as_str(): item}}});
    assert_eq!(sets(&r.json().unwrap()), [("creator".to_string(), created.clone())]);

    // another manager's merge patch adding a finalizer owns that item alone
    let patch = json!({"metadata": {"finalizers": ["example.com/a", "example.com/c"]}});
    let r = c
        .patch(format!("{url}?fieldManager=patcher"))
        .header("Content-Type", "application/merge-patch+json")
        .body(patch.to_string())
        .send()
        .unwrap();
    let status = r.status();
    let body: Value = r.json().unwrap();
    assert_eq!(status, 200, "{body}");
    let patched = json!({"f:metadata": {"f:finalizers": {"v:\"example.com/c\"": {}}}});
    assert_eq!(sets(&body), [("creator".to_string(), created.clone()), ("patcher".into(), patched.clone())]);

    let apply = |body: Value| {
        let r = c
            .patch(format!("{url}?fieldManager=applier"))
            .header("Content-Type", "application/apply-patch+yaml")
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let config = |meta: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta});
    // an apply sharing example.com/a and the owner reference as they are: no conflict
    let (code, o) = apply(config(
        json!({"name": "own", "finalizers": ["example.com/a", "example.com/b"], "ownerReferences": [owner("p")]}),
    ));
    assert_eq!(code, 200, "{o}");
    assert_eq!(o["metadata"]["finalizers"], json!(["example.com/a", "example.com/c", "example.com/b"]));
    let applied = json!({"f:metadata": {
        "f:finalizers": {"v:\"example.com/a\"": {}, "v:\"example.com/b\"": {}},
        "f:ownerReferences": {key.as_str(): item}}});
    assert_eq!(sets(&o), [("creator".to_string(), created), ("patcher".into(), patched), ("applier".into(), applied)]);
    // dropping example.com/a from the apply leaves it: the creator still owns it
    let (code, o) =
        apply(config(json!({"name": "own", "finalizers": ["example.com/b"], "ownerReferences": [owner("p")]})));
    assert_eq!(code, 200, "{o}");
    assert_eq!(o["metadata"]["finalizers"], json!(["example.com/a", "example.com/c", "example.com/b"]));
    // an owner reference's name set otherwise conflicts with the creator, on that field
    let (code, s) =
        apply(config(json!({"name": "own", "finalizers": ["example.com/b"], "ownerReferences": [owner("other")]})));
    assert_eq!(code, 409, "{s}");
    let field = format!(r#".metadata.ownerReferences[uid="{uid}"].name"#);
    assert_eq!(s["message"], format!(r#"Apply failed with 1 conflict: conflict with "creator" using v1: {field}"#));
    assert_eq!(s["details"]["causes"][0]["field"], field);
}

/// What an Update brings in is owned as kube owns it: a new map (labels, annotations, data) is
/// a field of its own beside its keys (`.`), a struct Go's zero value of the kind already has
/// (a Lease's spec) is not, and `generateName` is the creating manager's.
#[test]
fn an_update_owns_new_maps_and_generate_name_as_kube() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let cm = json!({"metadata": {"generateName": "gen-"}, "data": {"k": "v"}}).to_string();
    let made: Value = serde_json::from_slice(&send(
        &c,
        "POST",
        &fd.url(&format!("{CMS}?fieldManager=maker")),
        "",
        "application/json",
        &cm,
    ))
    .unwrap();
    let want = json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:generateName": {}}});
    assert_eq!(sets(&made), vec![("maker".to_string(), want)], "{made}");
    let name = made["metadata"]["name"].as_str().unwrap().to_string();
    // kubectl annotate brings in the annotations map: `.` with its key; an existing map's new
    // key is only the key
    fd.kubectl_ok(&["annotate", "cm", &name, "a=1"]);
    fd.kubectl_ok(&["annotate", "cm", &name, "b=2", "--field-manager=second"]);
    let o: Value = serde_json::from_slice(&send(&c, "GET", &fd.url(&format!("{CMS}/{name}")), "", "", "")).unwrap();
    let s = sets(&o);
    assert_eq!(s[1], ("kubectl-annotate".to_string(), json!({"f:metadata": {"f:annotations": {".": {}, "f:a": {}}}})));
    assert_eq!(s[2], ("second".to_string(), json!({"f:metadata": {"f:annotations": {"f:b": {}}}})));
    // a Lease's spec is in Go's zero Lease: its fields are new, the spec is not
    let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}}).to_string();
    let leases = fd.url("/apis/coordination.k8s.io/v1/namespaces/default/leases?fieldManager=maker");
    let made: Value = serde_json::from_slice(&send(&c, "POST", &leases, "", "application/json", &lease)).unwrap();
    assert_eq!(sets(&made), vec![("maker".to_string(), json!({"f:spec": {"f:holderIdentity": {}}}))], "{made}");
    // a binding's roleRef is atomic (kube's `+structType=atomic`): one field, as kube's own
    // cluster-admin binding shows it; applied, the same
    fd.kubectl_ok(&["create", "clusterrolebinding", "b", "--clusterrole=view", "--user=u"]);
    let crbs = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    let b: Value = serde_json::from_slice(&send(&c, "GET", &fd.url(&format!("{crbs}/b")), "", "", "")).unwrap();
    assert_eq!(sets(&b), vec![("kubectl-create".to_string(), json!({"f:roleRef": {}, "f:subjects": {}}))], "{b}");
    // (kubectl sent it as protobuf, whose empty generateName Go's JSON omits)
    assert!(b["metadata"].get("generateName").is_none(), "{b}");
    let applied = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "b3"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}});
    let url = fd.url(&format!("{crbs}/b3?fieldManager=applier"));
    let b: Value =
        serde_json::from_slice(&send(&c, "PATCH", &url, "", "application/apply-patch+yaml", &applied.to_string()))
            .unwrap();
    assert_eq!(sets(&b), vec![("applier".to_string(), json!({"f:roleRef": {}}))], "{b}");
}
