//! CustomResourceDefinitions end to end with the real kubectl: `kubectl apply -f crd.yaml`
//! makes the resource served at once (REST, discovery, OpenAPI for explain, RBAC by its
//! group), its objects pruned, defaulted and validated by the schema with kube's texts, the
//! status and scale subresources, printer columns, a second version with `None` conversion,
//! names conflicts, and deleting the CRD removing its objects.

use crate::common::{stderr, stdout, wait_until, Frontdoor};
use serde_json::Value;
use std::time::Duration;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields:
    - jsonPath: .spec.image
    - jsonPath: .spec.replicas
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "!has(self.image) || self.image != 'forbidden'"
              message: the image forbidden is not allowed
            properties:
              cronSpec:
                type: string
                description: the schedule, in cron format
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              replicas: {type: integer}
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const CT: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: nightly
spec:
  cronSpec: "* * * * */5"
  image: my-cron
  unknownField: 1
  extra: {anything: {goes: here}}
"#;

fn write(fd: &Frontdoor, name: &str, text: &str) -> String {
    let p = fd.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn fails(fd: &Frontdoor, args: &[&str]) -> String {
    let o = fd.kubectl(args);
    assert!(!o.status.success(), "kubectl {args:?} should fail: {}", stdout(&o));
    stderr(&o)
}

fn json_of(fd: &Frontdoor, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&fd.kubectl_ok(&a)).unwrap()
}

#[test]
fn crd_served_live_with_kubectl() {
    let fd = Frontdoor::start(&[]);
    let crd = write(&fd, "crd.yaml", CRD);
    let ct = write(&fd, "ct.yaml", CT);

    // served at once: the next kubectl finds it (discovery, OpenAPI for validation)
    fd.kubectl_ok(&["apply", "-f", &crd]);
    // kubectl's default (strict) validation: an unknown field is kube's strict decoding error
    let e = fails(&fd, &["apply", "-f", &ct]);
    assert!(e.contains(r#"CronTab in version "v1" cannot be handled as a CronTab: strict decoding error: unknown field "spec.unknownField""#), "{e}");
    fd.kubectl_ok(&["apply", "-f", &ct, "--validate=false"]);
    fd.kubectl_ok(&["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=10s"]);
    let c = json_of(&fd, &["get", "crd", "crontabs.stable.example.com"]);
    let conds: Vec<(String, String, String)> = c["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
                c["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(conds.contains(&("NamesAccepted".into(), "True".into(), "NoConflicts".into())), "{conds:?}");
    assert!(conds.contains(&("Established".into(), "True".into(), "InitialNamesAccepted".into())), "{conds:?}");
    assert_eq!(c["status"]["acceptedNames"]["listKind"], "CronTabList");
    assert_eq!(c["status"]["storedVersions"], serde_json::json!(["v1"]));

    // pruned (unknown fields gone, preserved ones kept) and defaulted
    let o = json_of(&fd, &["get", "ct", "nightly"]);
    assert!(o["spec"].get("unknownField").is_none(), "{o}");
    assert_eq!(o["spec"]["extra"]["anything"]["goes"], "here");
    assert_eq!(o["spec"]["replicas"], 1, "defaulted");
    assert_eq!(o["metadata"]["generation"], 1);

    // the metadata is decoded as ObjectMeta (kube's objectmeta.Coerce): an unknown field is
    // refused under Strict and pruned otherwise, a wrong type is refused, so no typed client
    // meets a stored object it cannot decode
    let with_meta = |name: &str, meta: &str| {
        write(&fd, &format!("{name}.yaml"), &format!("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {{name: {name}, {meta}}}\nspec: {{cronSpec: \"* * * * */5\"}}\n"))
    };
    let e = fails(&fd, &["apply", "-f", &with_meta("junk", "junk: {x: 1}")]);
    assert!(e.contains(r#"strict decoding error: unknown field "metadata.junk""#), "{e}");
    fd.kubectl_ok(&["apply", "-f", &with_meta("junk", "junk: {x: 1}"), "--validate=false"]);
    let o = json_of(&fd, &["get", "ct", "junk"]);
    assert!(o["metadata"].get("junk").is_none(), "{o}");
    fd.kubectl_ok(&["delete", "ct", "junk"]);

    // a custom object is replaced only at the version it was read at (kube's
    // AllowUnconditionalUpdate is false for custom objects)
    let url = fd.url("/apis/stable.example.com/v1/namespaces/default/crontabs/nightly");
    let mut o: Value = fd.admin_client().get(&url).send().unwrap().json().unwrap();
    o["spec"]["image"] = "other".into();
    let rv = o["metadata"]["resourceVersion"].take();
    let r = fd.admin_client().put(&url).json(&o).send().unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["message"],
        r#"CronTab.stable.example.com "nightly" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"#
    );
    o["metadata"]["resourceVersion"] = rv;
    o["spec"]["image"] = "my-cron".into();
    assert_eq!(fd.admin_client().put(&url).json(&o).send().unwrap().status().as_u16(), 200);
    for meta in ["labels: notamap", "finalizers: notalist", "annotations: {a: {b: 1}}"] {
        let e = fails(&fd, &["apply", "-f", &with_meta("typed", meta), "--validate=false"]);
        assert!(e.contains("cannot unmarshal"), "{meta}: {e}");
    }

    // invalid objects: kube's texts
    let bad = write(&fd, "bad.yaml", "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {cronSpec: nope, replicas: \"string\"}\n");
    let e = fails(&fd, &["apply", "-f", &bad]);
    assert!(e.contains(r#"The CronTab "bad" is invalid"#), "{e}");
    assert!(
        e.contains(
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ),
        "{e}"
    );
    assert!(e.contains(r#"spec.cronSpec: Invalid value: "nope": spec.cronSpec in body should match"#), "{e}");
    // x-kubernetes-validations (CEL)
    let e = fails(&fd, &["patch", "ct", "nightly", "--type=merge", "-p", r#"{"spec":{"image":"forbidden"}}"#]);
    assert!(e.contains(r#"spec: Invalid value: "object": the image forbidden is not allowed"#), "{e}");
    let e = fails(&fd, &["patch", "ct", "nightly", "--type=merge", "-p", r#"{"spec":{"replicas":11}}"#]);
    assert!(
        e.contains("spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
        "{e}"
    );

    // selectableFields
    assert!(fd.kubectl_ok(&["get", "ct", "--field-selector", "spec.image=my-cron", "-o", "name"]).contains("nightly"));
    assert!(fd.kubectl_ok(&["get", "ct", "--field-selector", "spec.replicas=1", "-o", "name"]).contains("nightly"));
    assert!(!fd
        .kubectl_ok(&["get", "ct", "--field-selector", "spec.image!=my-cron", "-o", "name"])
        .contains("nightly"));
    let e = fails(&fd, &["get", "ct", "--field-selector", "spec.cronSpec=x"]);
    assert!(e.contains("field label not supported: spec.cronSpec"), "{e}");

    // printer columns
    let table = fd.kubectl_ok(&["get", "ct"]);
    let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(head, vec!["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(table.lines().nth(1).unwrap().contains("* * * * */5"), "{table}");

    // scale and status subresources: /status ignores spec, the main resource ignores status
    fd.kubectl_ok(&["scale", "ct", "nightly", "--replicas=4"]);
    fd.kubectl_ok(&[
        "patch",
        "ct",
        "nightly",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3},"spec":{"replicas":9}}"#,
    ]);
    fd.kubectl_ok(&["patch", "ct", "nightly", "--type=merge", "-p", r#"{"status":{"replicas":7}}"#]);
    let o = json_of(&fd, &["get", "ct", "nightly"]);
    assert_eq!((o["spec"]["replicas"].as_i64(), o["status"]["replicas"].as_i64()), (Some(4), Some(3)), "{o}");
    assert_eq!(o["metadata"]["generation"], 2, "only the spec change bumped it");
    let scale =
        fd.kubectl_ok(&["get", "--raw", "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale"]);
    let scale: Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64(), scale["status"]["replicas"].as_i64()),
        (Some("Scale"), Some(4), Some(3))
    );
    // the scale subresource writes what the schema allows (maximum: 10), and a resourceVersion
    // it names is a precondition, patched or put
    let err = fails(&fd, &["scale", "ct", "nightly", "--replicas=11"]);
    assert!(err.contains("should be less than or equal to 10"), "{err}");
    let stale = r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":5}}"#;
    let err = fails(&fd, &["patch", "ct", "nightly", "--subresource=scale", "--type=merge", "-p", stale]);
    assert!(err.contains("the object has been modified"), "{err}");
    assert_eq!(json_of(&fd, &["get", "ct", "nightly"])["spec"]["replicas"], 4);
    // a Scale naming another object, or another uid, is refused
    let scale_url = "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale";
    let put = |body: Value| fd.admin_client().put(fd.url(scale_url)).json(&body).send().unwrap().status().as_u16();
    let scale = |meta: Value| serde_json::json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": meta, "spec": {"replicas": 5}});
    assert_eq!(put(scale(serde_json::json!({"name": "other"}))), 400);
    assert_eq!(put(scale(serde_json::json!({"name": "nightly", "namespace": "b"}))), 400);
    assert_eq!(put(scale(serde_json::json!({"name": "nightly", "uid": "not-its-uid"}))), 409);
    assert_eq!(json_of(&fd, &["get", "ct", "nightly"])["spec"]["replicas"], 4);
    // a custom object takes no strategic merge patch (kube's 415)
    let err = fails(&fd, &["patch", "ct", "nightly", "--type=strategic", "-p", r#"{"spec":{"image":"x"}}"#]);
    assert!(err.contains("accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"), "{err}");

    // a finalizer without a path is warned of as kube's CRD handler does, once, when added
    let fin = r#"{"metadata":{"finalizers":["cleanup","example.com.cleanup","example.com/cleanup"]}}"#;
    let o = fd.kubectl(&["patch", "ct", "nightly", "--type=merge", "-p", fin]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warned = |s: &str| s.lines().filter(|l| l.starts_with("Warning: metadata.finalizers")).count();
    assert!(stderr(&o).contains(r#"Warning: metadata.finalizers: "cleanup": prefer a domain-qualified finalizer name to avoid accidental conflicts with other finalizer writers"#), "{}", stderr(&o));
    assert!(stderr(&o).contains(r#"Warning: metadata.finalizers: "example.com.cleanup": prefer a domain-qualified finalizer name including a path (/) to avoid"#), "{}", stderr(&o));
    assert_eq!(warned(&stderr(&o)), 2, "{}", stderr(&o));
    let o = fd.kubectl(&["label", "ct", "nightly", "tier=batch"]);
    assert_eq!(warned(&stderr(&o)), 0, "only what a write adds is warned of: {}", stderr(&o));
    fd.kubectl_ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);

    // the other version: the same object, its apiVersion rewritten (None conversion)
    let o = fd.kubectl(&["get", "crontabs.v1beta1.stable.example.com", "nightly", "-o", "json"]);
    assert!(stderr(&o).contains("Warning: stable.example.com/v1beta1 CronTab is deprecated"), "{}", stderr(&o));
    let o: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(o["apiVersion"], "stable.example.com/v1beta1");
    assert_eq!(o["spec"]["replicas"], 4);

    // discovery and OpenAPI: api-resources, explain
    let res = fd.kubectl_ok(&["api-resources", "--api-group=stable.example.com"]);
    assert!(res.contains("crontabs") && res.contains("ct") && res.contains("CronTab"), "{res}");
    let aggregated = fd
        .admin_client()
        .get(fd.url("/apis"))
        .header("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let aggregated: Value = serde_json::from_str(&aggregated).unwrap();
    let group = aggregated["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "stable.example.com");
    let v1 = &group.expect("the group in aggregated discovery")["versions"][0];
    assert_eq!(v1["version"], "v1");
    let r = &v1["resources"][0];
    assert_eq!((r["resource"].as_str(), r["scope"].as_str()), (Some("crontabs"), Some("Namespaced")), "{v1}");
    let subs: Vec<&str> =
        r["subresources"].as_array().unwrap().iter().map(|s| s["subresource"].as_str().unwrap()).collect();
    assert_eq!(subs, vec!["status", "scale"], "{r}");
    let v2 = fd.kubectl_ok(&["get", "--raw", "/openapi/v2"]);
    let v2: Value = serde_json::from_str(&v2).unwrap();
    let d = &v2["definitions"]["com.example.stable.v1.CronTab"];
    assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], "CronTab", "the CRD's schema in /openapi/v2");
    assert!(v2["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"].is_object());
    let explain = fd.kubectl_ok(&["explain", "ct.spec.cronSpec"]);
    assert!(explain.contains("the schedule, in cron format"), "{explain}");

    // kube's CRD printer; a default added to the schema later shows on read
    let crds = fd.kubectl_ok(&["get", "crd"]);
    assert!(crds.lines().next().unwrap().starts_with("NAME") && crds.contains("CREATED AT"), "{crds}");
    let o = json_of(&fd, &["get", "ct", "nightly"]);
    assert!(o["spec"].get("extra").is_some());
    fd.kubectl_ok(&[
        "patch",
        "crd",
        "crontabs.stable.example.com",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/image/default","value":"busybox"},
            {"op":"add","path":"/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/suspend","value":{"type":"boolean","default":false}}]"#,
    ]);
    let o = json_of(&fd, &["get", "ct", "nightly"]);
    assert_eq!(o["spec"]["suspend"], false, "{o}");
    assert_eq!(o["spec"]["image"], "my-cron", "a set field keeps its value");

    let metrics = fd.kubectl_ok(&["get", "--raw", "/metrics"]);
    assert!(metrics.contains(r#"apiserver_storage_objects{resource="crontabs.stable.example.com"} 1"#), "counted");

    // RBAC by its group and resource
    let e = fails(&fd, &["get", "ct", "--as", "alice"]);
    assert!(
        e.contains(r#"crontabs.stable.example.com is forbidden: User "alice" cannot list resource "crontabs" in API group "stable.example.com" in the namespace "default""#),
        "{e}"
    );
    fd.kubectl_ok(&["create", "role", "ct-reader", "--verb=get,list", "--resource=crontabs.stable.example.com"]);
    fd.kubectl_ok(&["create", "rolebinding", "ct-reader", "--role=ct-reader", "--user=alice"]);
    wait_until("alice may list crontabs", Duration::from_secs(10), || {
        fd.kubectl(&["get", "ct", "--as", "alice"]).status.success()
    });

    // the CRD itself is validated with kube's texts
    let wrong = CRD
        .replace("name: crontabs.stable.example.com", "name: wrong.stable.example.com")
        .replace("scope: Namespaced", "scope: Global");
    let wrong = write(&fd, "wrong.yaml", &wrong);
    let e = fails(&fd, &["apply", "-f", &wrong]);
    assert!(
        e.contains(
            r#"metadata.name: Invalid value: "wrong.stable.example.com": must be spec.names.plural+"."+spec.group"#
        ),
        "{e}"
    );
    assert!(e.contains(r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#), "{e}");

    // a second CRD whose kind is taken in the group: NamesAccepted False, not served
    let clash = CRD
        .replace("crontabs", "crontimes")
        .replace("singular: crontab", "singular: crontime")
        .replace("shortNames: [ct]", "shortNames: [ctm]");
    fd.kubectl_ok(&["apply", "-f", &write(&fd, "clash.yaml", &clash)]);
    wait_until("the names conflict is reported", Duration::from_secs(10), || {
        let c = json_of(&fd, &["get", "crd", "crontimes.stable.example.com"]);
        c["status"]["conditions"].as_array().is_some_and(|a| {
            a.iter().any(|c| c["type"] == "NamesAccepted" && c["status"] == "False" && c["reason"] == "KindConflict")
        })
    });
    let o = fd.kubectl(&["get", "--raw", "/apis/stable.example.com/v1/namespaces/default/crontimes"]);
    assert!(!o.status.success(), "a CRD without accepted names is not served");

    // deleting the CRD removes its objects and stops serving it
    fd.kubectl_ok(&["delete", "crd", "crontabs.stable.example.com", "--timeout=20s"]);
    let o = fd.kubectl(&["get", "--raw", "/apis/stable.example.com/v1/namespaces/default/crontabs"]);
    assert!(!o.status.success(), "no longer served: {}", stdout(&o));
    // (the clashing CRD took the freed names meanwhile, as kube's naming controller gives them)
    fd.kubectl_ok(&["delete", "crd", "crontimes.stable.example.com", "--timeout=20s"]);
    fd.kubectl_ok(&["apply", "-f", &crd]);
    let again = fd.kubectl_ok(&["get", "--raw", "/apis/stable.example.com/v1/namespaces/default/crontabs"]);
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["items"].as_array().map(Vec::len), Some(0), "the objects went with their CRD: {again}");
}

const LISTS_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gateways.net.example.com
spec:
  group: net.example.com
  scope: Cluster
  names: {plural: gateways, kind: Gateway}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
              tags:
                type: array
                x-kubernetes-list-type: set
                items: {type: string}
              selector:
                type: object
                x-kubernetes-map-type: atomic
                additionalProperties: {type: string}
"#;

#[test]
fn crd_list_and_map_types_in_server_side_apply() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["apply", "-f", &write(&fd, "crd.yaml", LISTS_CRD)]);
    let gw = |ports: &str, tags: &str, selector: &str| {
        format!("apiVersion: net.example.com/v1\nkind: Gateway\nmetadata: {{name: edge}}\nspec:\n  ports: {ports}\n  tags: {tags}\n  selector: {selector}\n")
    };
    let a = write(&fd, "a.yaml", &gw("[{name: http, port: 80}]", "[a]", "{app: x}"));
    let b = write(&fd, "b.yaml", &gw("[{name: https, port: 443}]", "[b]", "{tier: web}"));
    fd.kubectl_ok(&["apply", "--server-side", "--field-manager=a", "-f", &a]);
    // a map list merges by key and a set by value; an atomic map is one field, owned by a
    let e = fails(&fd, &["apply", "--server-side", "--field-manager=b", "-f", &b]);
    assert!(e.contains("conflict") && e.contains(".spec.selector"), "{e}");
    assert!(!e.contains(".spec.ports") && !e.contains(".spec.tags"), "{e}");
    fd.kubectl_ok(&["apply", "--server-side", "--field-manager=b", "--force-conflicts", "-f", &b]);
    let o = json_of(&fd, &["get", "gateways", "edge"]);
    let ports: Vec<&str> = o["spec"]["ports"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(ports, vec!["http", "https"], "{o}");
    assert_eq!(o["spec"]["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(o["spec"]["selector"], serde_json::json!({"tier": "web"}), "replaced whole");
    // an item its manager no longer applies goes whole
    let b2 = write(&fd, "b2.yaml", &gw("[]", "[b]", "{tier: web}"));
    fd.kubectl_ok(&["apply", "--server-side", "--field-manager=b", "-f", &b2]);
    let o = json_of(&fd, &["get", "gateways", "edge"]);
    assert_eq!(o["spec"]["ports"], serde_json::json!([{"name": "http", "port": 80}]), "{o}");
    // a duplicate key in a map list is kube's Duplicate value
    let dup = write(
        &fd,
        "dup.yaml",
        &gw("[{name: http, port: 80}, {name: http, port: 81}]", "[a]", "{app: x}").replace("edge", "dup"),
    );
    let e = fails(&fd, &["create", "-f", &dup]);
    assert!(e.contains("spec.ports[1]: Duplicate value"), "{e}");
}

#[test]
fn crd_with_the_python_client() {
    let fd = Frontdoor::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/clients/python_crd.py");
    let o = std::process::Command::new("python3").arg(script).arg(fd.kubeconfig()).output().expect("python3 runs");
    assert!(o.status.success(), "the Python client failed:\n{}\n{}\n{}", stdout(&o), stderr(&o), fd.logs());
    assert!(stdout(&o).contains("watched ADDED:w1 MODIFIED:w1 DELETED:w1"), "{}", stdout(&o));
}

#[test]
fn custom_objects_in_namespace_deletion_and_garbage_collection() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["apply", "-f", &write(&fd, "crd.yaml", CRD)]);
    fd.kubectl_ok(&["create", "namespace", "team"]);
    let ct = CT.replace("  unknownField: 1\n", "");
    fd.kubectl_ok(&["-n", "team", "apply", "-f", &write(&fd, "ct.yaml", &ct)]);
    // a ConfigMap owned by a custom object goes with it (background propagation)
    let owner = json_of(&fd, &["-n", "team", "get", "ct", "nightly"]);
    let uid = owner["metadata"]["uid"].as_str().unwrap();
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  ownerReferences:\n  - {{apiVersion: stable.example.com/v1, kind: CronTab, name: nightly, uid: {uid}}}\n"
    );
    fd.kubectl_ok(&["-n", "team", "apply", "-f", &write(&fd, "cm.yaml", &cm)]);
    fd.kubectl_ok(&["-n", "team", "delete", "ct", "nightly"]);
    wait_until("the owned ConfigMap is collected", Duration::from_secs(15), || {
        !fd.kubectl(&["-n", "team", "get", "cm", "owned"]).status.success()
    });
    // a namespace's deletion removes its custom objects
    fd.kubectl_ok(&["-n", "team", "apply", "-f", &write(&fd, "ct.yaml", &ct)]);
    fd.kubectl_ok(&["delete", "namespace", "team", "--timeout=30s"]);
    let all = fd.kubectl_ok(&["get", "--raw", "/apis/stable.example.com/v1/crontabs"]);
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(0), "{all}");
}

#[test]
fn crd_applied_through_one_replica_is_served_by_another_on_etcd() {
    let etcd_dir = tempfile::tempdir().unwrap();
    let etcd = frontdoor::store::etcd::process::EtcdProcess::start(etcd_dir.path()).unwrap();
    let args = ["--etcd-servers", etcd.url.as_str()];
    let a = Frontdoor::start(&args);
    let b = Frontdoor::start(&args);
    a.kubectl_ok(&["apply", "-f", &write(&a, "crd.yaml", CRD)]);
    // b follows a's CRD write (its change hooks run from the etcd watch)
    let ct = CT.replace("  unknownField: 1\n", "");
    let path = write(&b, "ct.yaml", &ct);
    wait_until("b to serve the custom resource", Duration::from_secs(10), || {
        b.kubectl(&["apply", "-f", &path]).status.success()
    });
    let o = json_of(&a, &["get", "ct", "nightly"]);
    assert_eq!(o["spec"]["replicas"], 1, "defaulted by b, read on a: {o}");
    // both replicas' controllers agree on one status (compare-and-swap writes)
    a.kubectl_ok(&["wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=10s"]);
    b.kubectl_ok(&["delete", "crd", "crontabs.stable.example.com", "--timeout=20s"]);
    wait_until("a to stop serving it", Duration::from_secs(10), || {
        !a.kubectl(&["get", "--raw", "/apis/stable.example.com/v1/crontabs"]).status.success()
    });
}

/// A CRD naming a built-in resource is never served, and deleting it deletes nothing: its
/// objects' prefix was the built-in's, whose objects (RBAC roles, every CRD) its cleanup took.
#[test]
fn deleting_a_crd_named_like_a_built_in_leaves_the_built_ins_objects() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["create", "role", "victim", "--verb=get", "--resource=configmaps", "-n", "default"]);
    fd.kubectl_ok(&["apply", "-f", &write(&fd, "crd.yaml", CRD)]);
    let shadow = |group: &str, plural: &str| {
        format!(
            r#"{{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {{"name": "{plural}.{group}", "annotations": {{"api-approved.kubernetes.io": "unapproved"}}}},
            "spec": {{"group": "{group}", "scope": "Namespaced", "names": {{"plural": "{plural}", "kind": "Shadow"}},
            "versions": [{{"name": "v9", "served": true, "storage": true,
            "schema": {{"openAPIV3Schema": {{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}]}}}}"#
        )
    };
    for (group, plural) in
        [("rbac.authorization.k8s.io", "roles"), ("apiextensions.k8s.io", "customresourcedefinitions")]
    {
        fd.kubectl_ok(&["create", "-f", &write(&fd, "shadow.json", &shadow(group, plural))]);
        fd.kubectl_ok(&["delete", "crd", &format!("{plural}.{group}"), "--timeout=20s"]);
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(fd.kubectl_ok(&["get", "role", "victim", "-n", "default", "-o", "name"]).contains("victim"));
    assert!(fd.kubectl_ok(&["get", "crd", "-o", "name"]).contains("crontabs.stable.example.com"));
}

/// Server-side apply through /status owns the status it applies, as that subresource's: a
/// status field another manager set is a conflict (kube's text names the subresource), forced
/// it moves to the applier, and the rest of the object is not touched.
#[test]
fn a_status_apply_owns_and_conflicts_on_status_fields() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["apply", "-f", &write(&fd, "crd.yaml", CRD)]);
    fd.kubectl_ok(&["apply", "-f", &write(&fd, "ct.yaml", CT), "--validate=false"]);
    fd.kubectl_ok(&[
        "patch",
        "ct",
        "nightly",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3}}"#,
    ]);
    let url = fd.url("/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/status");
    let apply = |query: &str, replicas: i64| {
        let body = format!("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {{name: nightly}}\nspec: {{image: other}}\nstatus: {{replicas: {replicas}}}\n");
        let r = fd.admin_client().patch(format!("{url}?fieldManager=ctrl2{query}"));
        let r = r.header("Content-Type", "application/apply-patch+yaml").body(body).send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (code, v) = apply("", 5);
    assert_eq!(code, 409, "{v}");
    assert_eq!(
        v["message"],
        r#"Apply failed with 1 conflict: conflict with "kubectl-patch" with subresource "status" using stable.example.com/v1: .status.replicas"#
    );
    let (code, v) = apply("&force=true", 5);
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["status"]["replicas"].as_i64(), v["spec"]["image"].as_str()), (Some(5), Some("my-cron")), "{v}");
    let entry = v["metadata"]["managedFields"].as_array().unwrap().iter().find(|e| e["manager"] == "ctrl2").cloned();
    let entry = entry.unwrap_or_else(|| panic!("no entry for the applier: {v}"));
    assert_eq!((entry["operation"].as_str(), entry["subresource"].as_str()), (Some("Apply"), Some("status")));
    assert_eq!(entry["fieldsV1"], serde_json::json!({"f:status": {"f:replicas": {}}}));
    let (code, v) = apply("", 6);
    assert_eq!(code, 200, "its own field now: {v}");
}
