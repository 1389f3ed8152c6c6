//! The native store end to end with the real kubectl: namespaces, configmaps and secrets
//! through create / get / apply / patch / label / annotate / delete, `get -w`, selectors,
//! discovery; and a kill -9 that loses no acknowledged write.

use crate::common::{stderr, stdout, Frontdoor, KUBECTL};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn ok(fd: &Frontdoor, args: &[&str]) -> String {
    let o = fd.kubectl(args);
    assert!(o.status.success(), "kubectl {args:?} failed: {}\n{}", stderr(&o), fd.logs());
    stdout(&o)
}

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

/// Polls `f` until it is true or the deadline passes.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn kubectl_end_to_end() {
    let fd = Frontdoor::start(&[]);

    // the system namespaces exist from the first start
    let ns = ok(&fd, &["get", "ns"]);
    for n in ["default", "kube-system", "kube-public"] {
        assert!(ns.contains(n), "{ns}");
    }
    ok(&fd, &["create", "namespace", "team"]);
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
    ok(&fd, &["-n", "team", "create", "configmap", "settings", "--from-literal=mode=a"]);
    let yaml = ok(&fd, &["-n", "team", "get", "cm", "settings", "-o", "yaml"]);
    assert!(yaml.contains("mode: a") && yaml.contains("uid:") && yaml.contains("resourceVersion:"), "{yaml}");

    // apply twice, the second a change
    let manifest = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: team\n  labels:\n    app: x\ndata:\n  key: {v}\n")
    };
    let f = write(&fd, "cm.yaml", &manifest("first"));
    assert!(ok(&fd, &["apply", "-f", &f]).contains("configmap/applied created"));
    let f = write(&fd, "cm.yaml", &manifest("second"));
    assert!(ok(&fd, &["apply", "-f", &f]).contains("configmap/applied configured"));
    assert!(ok(&fd, &["apply", "-f", &f]).contains("configmap/applied unchanged"));
    assert_eq!(ok(&fd, &["-n", "team", "get", "cm", "applied", "-o", "jsonpath={.data.key}"]), "second");

    // patch (strategic, merge, json), label, annotate
    ok(&fd, &["-n", "team", "patch", "cm", "settings", "-p", r#"{"data":{"mode":"b"}}"#]);
    ok(&fd, &["-n", "team", "patch", "cm", "settings", "--type", "merge", "-p", r#"{"data":{"extra":"1"}}"#]);
    ok(
        &fd,
        &["-n", "team", "patch", "cm", "settings", "--type", "json", "-p", r#"[{"op":"remove","path":"/data/extra"}]"#],
    );
    ok(&fd, &["-n", "team", "label", "cm", "settings", "app=x"]);
    ok(&fd, &["-n", "team", "annotate", "cm", "settings", "owner=me"]);
    let got: Value = serde_json::from_str(&ok(&fd, &["-n", "team", "get", "cm", "settings", "-o", "json"])).unwrap();
    assert_eq!(got["data"], json!({"mode": "b"}));
    assert_eq!(got["metadata"]["labels"]["app"], "x");
    assert_eq!(got["metadata"]["annotations"]["owner"], "me");

    // label selectors and the Table columns
    let listed = ok(&fd, &["-n", "team", "get", "cm", "-l", "app=x"]);
    assert!(listed.starts_with("NAME") && listed.contains("DATA") && listed.contains("AGE"), "{listed}");
    assert!(listed.contains("settings") && listed.contains("applied"), "{listed}");
    ok(&fd, &["-n", "team", "label", "cm", "applied", "app=y", "--overwrite"]);
    let listed = ok(&fd, &["-n", "team", "get", "cm", "-l", "app=x", "-o", "name"]);
    assert_eq!(listed.trim(), "configmap/settings");

    // a secret
    ok(&fd, &["-n", "team", "create", "secret", "generic", "creds", "--from-literal=password=hunter2"]);
    let secrets = ok(&fd, &["-n", "team", "get", "secrets"]);
    assert!(secrets.contains("creds") && secrets.contains("Opaque"), "{secrets}");
    assert_eq!(ok(&fd, &["-n", "team", "get", "secret", "creds", "-o", "jsonpath={.data.password}"]), "aHVudGVyMg==");
    ok(&fd, &["-n", "team", "label", "secret", "creds", "tier=db"]);
    ok(&fd, &["-n", "team", "annotate", "secret", "creds", "rotated=no"]);
    ok(&fd, &["-n", "team", "patch", "secret", "creds", "-p", r#"{"stringData":{"user":"bob"}}"#]);
    assert_eq!(ok(&fd, &["-n", "team", "get", "secret", "creds", "-o", "jsonpath={.data.user}"]), "Ym9i");
    assert!(ok(&fd, &["-n", "team", "delete", "secret", "creds"]).contains("secret \"creds\" deleted"));

    // delete
    assert!(ok(&fd, &["-n", "team", "delete", "cm", "settings"]).contains("configmap \"settings\" deleted"));
    assert!(fails(&fd, &["-n", "team", "get", "cm", "settings"]).contains("configmaps \"settings\" not found"));

    eventually("get -w to show the changes", || {
        let s = seen.lock().unwrap();
        s.contains("ADDED") && s.contains("settings") && s.contains("MODIFIED") && s.contains("DELETED")
    });
    let _ = watch.kill();
    let _ = watch.wait();

    // api-resources lists the native resources
    let res = ok(&fd, &["api-resources"]);
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
    ok(&fd, &["delete", "namespace", "team"]);
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
    assert!(ok(&fd, &["apply", "--server-side", "-f", &f]).contains("serverside-applied"));
    // a field dropped from the applied configuration is removed
    let f = write(&fd, "ssa.yaml", &manifest("two", ""));
    ok(&fd, &["apply", "--server-side", "-f", &f]);
    let got: Value = serde_json::from_str(&ok(&fd, &["get", "cm", "ssa", "-o", "json"])).unwrap();
    assert_eq!(got["data"], json!({"key": "two"}));
    // another manager changes the field: a conflict unless forced
    ok(&fd, &["patch", "cm", "ssa", "-p", r#"{"data":{"key":"patched"}}"#]);
    let f = write(&fd, "ssa.yaml", &manifest("three", ""));
    let err = fails(&fd, &["apply", "--server-side", "-f", &f]);
    assert!(err.contains("Apply failed with 1 conflict: conflict with \"kubectl-patch\" using v1: .data.key"), "{err}");
    ok(&fd, &["apply", "--server-side", "--force-conflicts", "-f", &f]);
    assert_eq!(ok(&fd, &["get", "cm", "ssa", "-o", "jsonpath={.data.key}"]), "three");
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
    eventually("some acknowledged writes", || acked.lock().unwrap().len() >= 30);
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
    ok(&fd, &["-n", "default", "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps"]);
    ok(&fd, &["-n", "default", "create", "rolebinding", "alice-reads", "--role=cm-reader", "--user=alice"]);
    // the stored binding takes effect at once, without a restart
    let t = Instant::now();
    eventually("alice's new access", || alice_can_list() == "yes");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    ok(&fd, &["create", "clusterrole", "system:test", "--verb=get", "--resource=secrets"]);
    let rb = ok(&fd, &["-n", "default", "get", "rolebindings", "-o", "wide"]);
    assert!(rb.contains("alice-reads") && rb.contains("Role/cm-reader") && rb.contains("alice"), "{rb}");
    let role: Value =
        serde_json::from_str(&ok(&fd, &["-n", "default", "get", "role", "cm-reader", "-o", "json"])).unwrap();
    assert_eq!(role["rules"][0]["resources"], json!(["configmaps"]));
    ok(&fd, &["-n", "default", "delete", "rolebinding", "alice-reads"]);
    eventually("alice's access revoked", || alice_can_list() == "no");

    let svc = write(
        &fd,
        "apiservice.yaml",
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata:\n  name: v1.example.com\nspec:\n  group: example.com\n  version: v1\n  groupPriorityMinimum: 100\n  versionPriority: 10\n  insecureSkipTLSVerify: true\n  service:\n    namespace: default\n    name: backend\n    port: 443\n",
    );
    assert!(ok(&fd, &["apply", "-f", &svc]).contains("apiservice.apiregistration.k8s.io/v1.example.com created"));
    let listed = ok(&fd, &["get", "apiservices"]);
    assert!(listed.contains("SERVICE") && listed.contains("default/backend"), "{listed}");
    assert!(ok(&fd, &["delete", "-f", &svc]).contains("deleted"));
}
