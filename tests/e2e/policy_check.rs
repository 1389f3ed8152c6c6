//! Policy checks without a server: `frontdoor check-policy` and `frontdoor auth can-i`, the
//! latter answering from the files exactly as `kubectl auth can-i --as` answers from a running
//! frontdoor serving the same files.

use crate::common::*;
use std::process::Command;

const RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader, namespace: team-a}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [app-config]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-read, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: olga}
"#;

fn frontdoor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_frontdoor")).args(args).output().unwrap()
}

#[test]
fn auth_can_i_from_the_files_agrees_with_kubectl_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(policies.join("rbac")).unwrap();
    std::fs::write(policies.join("rbac/teams.yaml"), RBAC).unwrap();
    let pd = policies.to_str().unwrap().to_string();
    let fd = Frontdoor::start_in(dir, &[]);

    let cases: &[&[&str]] = &[
        &["get", "configmaps", "-n", "team-a", "--as", "alice", "--as-group", "devs"],
        &["list", "configmaps", "-n", "team-a", "--as", "alice", "--as-group", "devs"],
        &["delete", "configmaps", "-n", "team-a", "--as", "alice", "--as-group", "devs"],
        &["get", "configmaps", "-n", "team-b", "--as", "alice", "--as-group", "devs"],
        &["get", "cm", "-n", "team-a", "--as", "bob"],
        &["get", "secrets/app-config", "-n", "team-a", "--as", "alice", "--as-group", "devs"],
        &["get", "secrets/other", "-n", "team-a", "--as", "alice", "--as-group", "devs"],
        &["list", "secrets", "-n", "team-a", "--as", "alice", "--as-group", "devs"],
        &["list", "configmaps", "-A", "--as", "olga"],
        &["get", "secrets", "-n", "x", "--as", "olga"],
        &["create", "clusterrolebindings", "--as", "olga"],
        &["get", "/healthz", "--as", "bob"],
        &["get", "/metrics", "--as", "bob"],
        &["*", "*", "--as", "root", "--as-group", "system:masters"],
    ];
    for args in cases {
        let mut k = vec!["auth", "can-i"];
        k.extend_from_slice(args);
        let from_server = fd.kubectl(&k);
        let mut f = vec!["auth", "can-i"];
        f.extend_from_slice(args);
        f.extend_from_slice(&["--policy-dir", &pd]);
        let from_files = frontdoor(&f);
        let answer = |o: &std::process::Output| {
            stdout(o).lines().next().unwrap_or("").split(' ').next().unwrap_or("").to_string()
        };
        assert_eq!(
            (answer(&from_files), from_files.status.code()),
            (answer(&from_server), from_server.status.code()),
            "{args:?}: files said {:?} {}, server said {:?} {}",
            stdout(&from_files),
            stderr(&from_files),
            stdout(&from_server),
            stderr(&from_server)
        );
        assert!(matches!(answer(&from_files).as_str(), "yes" | "no"), "{args:?}: {}", stderr(&from_files));
    }
}

#[test]
fn check_policy_names_bad_files_and_exits_non_zero() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let o = frontdoor(&["check-policy", "--policy-dir", shipped]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok    ") && stdout(&o).contains("teams.yaml"), "{}", stdout(&o));

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rbac")).unwrap();
    std::fs::write(dir.path().join("rbac/bad.yaml"), "kind: Role\nmetadata: {name: x, namespace: n}\nrules: nope\n")
        .unwrap();
    std::fs::write(dir.path().join("abac.jsonl"), "{not json\n").unwrap();
    let o = frontdoor(&["check-policy", "--policy-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.lines().any(|l| l.starts_with("error") && l.contains("bad.yaml")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("error") && l.contains("abac.jsonl")), "{out}");

    let o = frontdoor(&["check-policy", "--policy-dir", "/nonexistent-dir"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));
}
