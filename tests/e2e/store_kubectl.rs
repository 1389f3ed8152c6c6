//! The native store end to end with the real kubectl: namespaces, configmaps and secrets
//! through create / get / apply / patch / label / annotate / delete, `get -w`, selectors,
//! discovery; and a kill -9 that loses no acknowledged write.

use crate::common::{stderr, stdout, wait_until, Frontdoor, KUBECTL};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fails(fd: &Frontdoor, args: &[&str]) -> String {
    let o = fd.kubectl(args);
    assert!(!o.status.success(), "kubectl {args:?} should fail: {}", stdout(&o));
    stderr(&o)
}

fn write(fd: &Frontdoor, name: &str, text: &str) -> String {
    let p = fd.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn kubectl_end_to_end() {
    let fd = Frontdoor::start(&[]);

    // the system namespaces exist from the first start
    let ns = fd.kubectl_ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public"] {
        assert!(ns.contains(n), "{ns}");
    }
    fd.kubectl_ok(&["create", "namespace", "team"]);
    assert!(fails(&fd, &["create", "namespace", "team"]).contains("namespaces \"team\" already exists"));
    assert!(fails(&fd, &["-n", "nowhere", "create", "cm", "x"]).contains("namespaces \"nowhere\" not found"));
    assert!(fails(&fd, &["-n", "team", "create", "cm", "Bad_Name"]).contains("a lowercase RFC 1123 subdomain"));

    // get -w sees what happens next
    let mut watch = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(fd.kubeconfig())
        .args(["-n", "team", "get", "cm", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    {
        let out = watch.stdout.take().unwrap();
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = seen.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }

    // create / get -o yaml
    fd.kubectl_ok(&["-n", "team", "create", "configmap", "settings", "--from-literal=mode=a"]);
    let yaml = fd.kubectl_ok(&["-n", "team", "get", "cm", "settings", "-o", "yaml"]);
    assert!(yaml.contains("mode: a") && yaml.contains("uid:") && yaml.contains("resourceVersion:"), "{yaml}");

    // apply twice, the second a change
    let manifest = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: team\n  labels:\n    app: x\ndata:\n  key: {v}\n")
    };
    let f = write(&fd, "cm.yaml", &manifest("first"));
    assert!(fd.kubectl_ok(&["apply", "-f", &f]).contains("configmap/applied created"));
    let f = write(&fd, "cm.yaml", &manifest("second"));
    assert!(fd.kubectl_ok(&["apply", "-f", &f]).contains("configmap/applied configured"));
    assert!(fd.kubectl_ok(&["apply", "-f", &f]).contains("configmap/applied unchanged"));
    assert_eq!(fd.kubectl_ok(&["-n", "team", "get", "cm", "applied", "-o", "jsonpath={.data.key}"]), "second");

    // patch (strategic, merge, json), label, annotate
    fd.kubectl_ok(&["-n", "team", "patch", "cm", "settings", "-p", r#"{"data":{"mode":"b"}}"#]);
    fd.kubectl_ok(&["-n", "team", "patch", "cm", "settings", "--type", "merge", "-p", r#"{"data":{"extra":"1"}}"#]);
    fd.kubectl_ok(&[
        "-n",
        "team",
        "patch",
        "cm",
        "settings",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/data/extra"}]"#,
    ]);
    fd.kubectl_ok(&["-n", "team", "label", "cm", "settings", "app=x"]);
    fd.kubectl_ok(&["-n", "team", "annotate", "cm", "settings", "owner=me"]);
    let got: Value =
        serde_json::from_str(&fd.kubectl_ok(&["-n", "team", "get", "cm", "settings", "-o", "json"])).unwrap();
    assert_eq!(got["data"], json!({"mode": "b"}));
    assert_eq!(got["metadata"]["labels"]["app"], "x");
    assert_eq!(got["metadata"]["annotations"]["owner"], "me");

    // label selectors and the Table columns
    let listed = fd.kubectl_ok(&["-n", "team", "get", "cm", "-l", "app=x"]);
    assert!(listed.starts_with("NAME") && listed.contains("DATA") && listed.contains("AGE"), "{listed}");
    assert!(listed.contains("settings") && listed.contains("applied"), "{listed}");
    fd.kubectl_ok(&["-n", "team", "label", "cm", "applied", "app=y", "--overwrite"]);
    let listed = fd.kubectl_ok(&["-n", "team", "get", "cm", "-l", "app=x", "-o", "name"]);
    assert_eq!(listed.trim(), "configmap/settings");

    // a secret
    fd.kubectl_ok(&["-n", "team", "create", "secret", "generic", "creds", "--from-literal=password=hunter2"]);
    let secrets = fd.kubectl_ok(&["-n", "team", "get", "secrets"]);
    assert!(secrets.contains("creds") && secrets.contains("Opaque"), "{secrets}");
    assert_eq!(
        fd.kubectl_ok(&["-n", "team", "get", "secret", "creds", "-o", "jsonpath={.data.password}"]),
        "aHVudGVyMg=="
    );
    fd.kubectl_ok(&["-n", "team", "label", "secret", "creds", "tier=db"]);
    fd.kubectl_ok(&["-n", "team", "annotate", "secret", "creds", "rotated=no"]);
    fd.kubectl_ok(&["-n", "team", "patch", "secret", "creds", "-p", r#"{"stringData":{"user":"bob"}}"#]);
    assert_eq!(fd.kubectl_ok(&["-n", "team", "get", "secret", "creds", "-o", "jsonpath={.data.user}"]), "Ym9i");
    assert!(fd.kubectl_ok(&["-n", "team", "delete", "secret", "creds"]).contains("secret \"creds\" deleted"));

    // delete
    assert!(fd.kubectl_ok(&["-n", "team", "delete", "cm", "settings"]).contains("configmap \"settings\" deleted"));
    assert!(fails(&fd, &["-n", "team", "get", "cm", "settings"]).contains("configmaps \"settings\" not found"));

    wait_until("get -w to show the changes", Duration::from_secs(10), || {
        let s = seen.lock().unwrap();
        s.contains("ADDED") && s.contains("settings") && s.contains("MODIFIED") && s.contains("DELETED")
    });
    let _ = watch.kill();
    let _ = watch.wait();

    // api-resources lists the native resources
    let res = fd.kubectl_ok(&["api-resources"]);
    for r in [
        "configmaps",
        "secrets",
        "namespaces",
        "serviceaccounts",
        "events",
        "roles",
        "clusterrolebindings",
        "apiservices",
        "leases",
    ] {
        assert!(res.contains(r), "{r} missing from\n{res}");
    }

    // deleting a namespace deletes what is in it; the system ones may not be deleted
    fd.kubectl_ok(&["delete", "namespace", "team"]);
    assert!(fails(&fd, &["get", "ns", "team"]).contains("not found"));
    assert!(fails(&fd, &["delete", "ns", "default"]).contains("this namespace may not be deleted"));
}

#[test]
fn server_side_apply_owns_fields_and_reports_conflicts() {
    let fd = Frontdoor::start(&[]);
    let manifest = |v: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\ndata:\n  key: {v}\n{extra}"
        )
    };
    let f = write(&fd, "ssa.yaml", &manifest("one", "  other: x\n"));
    assert!(fd.kubectl_ok(&["apply", "--server-side", "-f", &f]).contains("serverside-applied"));
    // a field dropped from the applied configuration is removed
    let f = write(&fd, "ssa.yaml", &manifest("two", ""));
    fd.kubectl_ok(&["apply", "--server-side", "-f", &f]);
    let got: Value = serde_json::from_str(&fd.kubectl_ok(&["get", "cm", "ssa", "-o", "json"])).unwrap();
    assert_eq!(got["data"], json!({"key": "two"}));
    // another manager changes the field: a conflict unless forced
    fd.kubectl_ok(&["patch", "cm", "ssa", "-p", r#"{"data":{"key":"patched"}}"#]);
    let f = write(&fd, "ssa.yaml", &manifest("three", ""));
    let err = fails(&fd, &["apply", "--server-side", "-f", &f]);
    assert!(err.contains("Apply failed with 1 conflict: conflict with \"kubectl-patch\" using v1: .data.key"), "{err}");
    fd.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &f]);
    assert_eq!(fd.kubectl_ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.key}"]), "three");

    // an update takes what it changes from the appliers and drops what it removes (kube's
    // forced update): a label removed by `kubectl label x-` is no one's, and a later applier
    // setting it meets no conflict
    let own = |labels: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: own\n  namespace: default\n  labels: {labels}\n")
    };
    fd.kubectl_ok(&["apply", "--server-side", "--field-manager=a", "-f", &write(&fd, "own.yaml", &own("{x: \"1\"}"))]);
    fd.kubectl_ok(&["label", "cm", "own", "x-"]);
    fd.kubectl_ok(&["apply", "--server-side", "--field-manager=c", "-f", &write(&fd, "own.yaml", &own("{x: \"5\"}"))]);
    // and a value another manager changed is that manager's alone
    fd.kubectl_ok(&["label", "cm", "own", "--overwrite", "x=6"]);
    let err =
        fails(&fd, &["apply", "--server-side", "--field-manager=c", "-f", &write(&fd, "own.yaml", &own("{x: \"7\"}"))]);
    assert!(err.contains("conflict with \"kubectl-label\""), "{err}");
    let got: Value =
        serde_json::from_str(&fd.kubectl_ok(&["get", "cm", "own", "-o", "json", "--show-managed-fields"])).unwrap();
    let owners: Vec<&str> = got["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fieldsV1"]["f:metadata"]["f:labels"].get("f:x").is_some())
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["kubectl-label"], "{got}");

    // an apply owns what it sent, not what defaulting added: the same Secret applied again
    // keeps its defaulted type (it was dropped as no longer applied, and refused as immutable)
    let f = write(
        &fd,
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s1\n  namespace: default\nstringData: {a: b}\n",
    );
    fd.kubectl_ok(&["apply", "--server-side", "-f", &f]);
    fd.kubectl_ok(&["apply", "--server-side", "-f", &f]);
    let got: Value =
        serde_json::from_str(&fd.kubectl_ok(&["get", "secret", "s1", "-o", "json", "--show-managed-fields"])).unwrap();
    assert_eq!((got["type"].as_str(), got["data"]["a"].as_str()), (Some("Opaque"), Some("Yg==")), "{got}");
    assert_eq!(got["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:stringData": {"f:a": {}}}), "{got}");

    // moving from client-side to server-side apply: kubectl's manager keeps the client-side
    // annotation in step (kube's lastAppliedUpdater), so a later client-side apply diffs right
    let moved = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: moved\n  namespace: default\ndata:\n{data}")
    };
    fd.kubectl_ok(&["apply", "-f", &write(&fd, "moved.yaml", &moved("  key: csa\n  tag: <b>a&b</b>\n"))]);
    let f = write(&fd, "moved.yaml", &moved("  key: ssa\n  extra: e\n"));
    fd.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &f]);
    let last_applied = || {
        let got: Value = serde_json::from_str(&fd.kubectl_ok(&["get", "cm", "moved", "-o", "json"])).unwrap();
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap().to_string()
    };
    let last = last_applied();
    assert_eq!(
        last,
        "{\"apiVersion\":\"v1\",\"data\":{\"extra\":\"e\",\"key\":\"ssa\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"moved\",\"namespace\":\"default\"}}\n"
    );
    // another manager's apply leaves it alone
    let other =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: moved\n  namespace: default\n  labels: {by: other}\n";
    fd.kubectl_ok(&["apply", "--server-side", "--field-manager=other", "-f", &write(&fd, "other.yaml", other)]);
    assert_eq!(last_applied(), last);
    // a client-side apply now diffs against what was applied last: `extra` goes (kubectl moved
    // the client-side fields to its server-side manager, so `tag` went with the apply)
    fd.kubectl_ok(&["apply", "-f", &write(&fd, "moved.yaml", &moved("  key: back\n"))]);
    let got: Value = serde_json::from_str(&fd.kubectl_ok(&["get", "cm", "moved", "-o", "json"])).unwrap();
    assert_eq!(got["data"], json!({"key": "back"}));
    // Go's encoder escapes HTML in it
    let f = write(&fd, "moved.yaml", &moved("  key: <b>\n"));
    fd.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &f]);
    assert!(last_applied().contains(r#""key":"\u003cb\u003e""#), "{}", last_applied());
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let mut fd = Frontdoor::start(&[]);
    let client = fd.admin_client();
    let url = fd.url("/api/v1/namespaces/default/configmaps");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for i in 0.. {
                let name = format!("cm-{i}");
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string()}});
                match client.post(&url).json(&body).send() {
                    Ok(r) if r.status().as_u16() == 201 => acked.lock().unwrap().push(name),
                    _ => return,
                }
            }
        })
    };
    wait_until("some acknowledged writes", Duration::from_secs(10), || acked.lock().unwrap().len() >= 30);
    fd.child.kill().unwrap(); // SIGKILL
    fd.child.wait().unwrap();
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();

    let dir = std::mem::replace(&mut fd.dir, tempfile::tempdir().unwrap());
    drop(fd);
    let fd = Frontdoor::start_in(dir, &[]);
    let list: Value =
        fd.admin_client().get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap().json().unwrap();
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().filter_map(|o| o["metadata"]["name"].as_str()).collect();
    for a in &acked {
        assert!(
            names.contains(&a.as_str()),
            "acknowledged {a} lost after kill -9 ({} acked, {} present)",
            acked.len(),
            names.len()
        );
    }
}

#[test]
fn rbac_and_apiservice_objects_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/tokens.csv"), "alice-token,alice,alice-uid,\"dev\"\n").unwrap();
    let fd = Frontdoor::start_in(dir, &[]);
    let ca = fd.certs().join("ca.crt");
    let server = fd.url("");
    // alice, a token user, as kubectl sees her (no kubeconfig: only her bearer token)
    let alice_can_list = || {
        let o = Command::new(KUBECTL)
            .env("KUBECONFIG", "/dev/null")
            .args(["--server", &server, "--certificate-authority", ca.to_str().unwrap(), "--token", "alice-token"])
            .args(["auth", "can-i", "list", "configmaps", "-n", "default"])
            .output()
            .unwrap();
        stdout(&o).trim().to_string()
    };
    assert_eq!(alice_can_list(), "no");
    fd.kubectl_ok(&["-n", "default", "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps"]);
    fd.kubectl_ok(&["-n", "default", "create", "rolebinding", "alice-reads", "--role=cm-reader", "--user=alice"]);
    // the stored binding takes effect at once, without a restart
    let t = Instant::now();
    wait_until("alice's new access", Duration::from_secs(10), || alice_can_list() == "yes");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    fd.kubectl_ok(&["create", "clusterrole", "system:test", "--verb=get", "--resource=secrets"]);
    let rb = fd.kubectl_ok(&["-n", "default", "get", "rolebindings", "-o", "wide"]);
    assert!(rb.contains("alice-reads") && rb.contains("Role/cm-reader") && rb.contains("alice"), "{rb}");
    let role: Value =
        serde_json::from_str(&fd.kubectl_ok(&["-n", "default", "get", "role", "cm-reader", "-o", "json"])).unwrap();
    assert_eq!(role["rules"][0]["resources"], json!(["configmaps"]));
    fd.kubectl_ok(&["-n", "default", "delete", "rolebinding", "alice-reads"]);
    wait_until("alice's access revoked", Duration::from_secs(10), || alice_can_list() == "no");

    let svc = write(
        &fd,
        "apiservice.yaml",
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata:\n  name: v1.example.com\nspec:\n  group: example.com\n  version: v1\n  groupPriorityMinimum: 100\n  versionPriority: 10\n  insecureSkipTLSVerify: true\n  service:\n    namespace: default\n    name: backend\n    port: 443\n",
    );
    assert!(fd.kubectl_ok(&["apply", "-f", &svc]).contains("apiservice.apiregistration.k8s.io/v1.example.com created"));
    let listed = fd.kubectl_ok(&["get", "apiservices"]);
    assert!(listed.contains("SERVICE") && listed.contains("default/backend"), "{listed}");
    assert!(fd.kubectl_ok(&["delete", "-f", &svc]).contains("deleted"));
}
