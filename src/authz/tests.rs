use super::*;

use crate::authz::testing::{res, user};

/// The authorization stage's own flags; `$DIR` in a flag is a fresh temporary directory.
fn serve_args(extra: &[&str]) -> (tempfile::TempDir, AuthzArgs) {
    let dir = tempfile::tempdir().unwrap();
    let argv: Vec<String> = extra.iter().map(|s| s.replace("$DIR", &dir.path().display().to_string())).collect();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    (dir, crate::config::parse_args(&argv).unwrap())
}

#[test]
fn forbidden_messages_match_kube() {
    let alice = user("alice", &[]);
    let s = forbidden(&res(&alice, "get", "default", "", "configmaps", "", "x"), "");
    assert_eq!(s.code, 403);
    assert_eq!(
        s.message,
        r#"configmaps "x" is forbidden: User "alice" cannot get resource "configmaps" in API group "" in the namespace "default""#
    );
    let s = forbidden(&res(&alice, "list", "", "apps", "deployments", "", ""), "");
    assert_eq!(
        s.message,
        r#"deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" at the cluster scope"#
    );
    let s = forbidden(&res(&alice, "update", "ns", "apps", "deployments", "scale", "d"), "RBAC: x");
    assert_eq!(
        s.message,
        r#"deployments.apps "d" is forbidden: User "alice" cannot update resource "deployments/scale" in API group "apps" in the namespace "ns": RBAC: x"#
    );
    assert_eq!(s.details.as_ref().unwrap().kind, "deployments");
    let p =
        Attributes { user: Cow::Owned(alice), verb: "get".into(), path: "/metrics<x>".into(), ..Default::default() };
    assert_eq!(forbidden(&p, "").message, r#"forbidden: User "alice" cannot get path "/metrics&lt;x&gt;""#);
    // names quoted as Go's %q quotes them
    let odd = user("a\u{1}\"", &[]);
    let s = forbidden(&res(&odd, "get", "n\0", "", "configmaps", "", "x\"y"), "");
    assert_eq!(
        s.message,
        r#"configmaps "x\"y" is forbidden: User "a\x01\"" cannot get resource "configmaps" in API group "" in the namespace "n\x00""#
    );
}

#[tokio::test]
async fn default_chain_is_rbac_with_bootstrap_policy() {
    let (_d, args) = serve_args(&[]);
    let z = Authorization::new(&args).unwrap();
    let alice = user("alice", &["system:authenticated"]);
    assert_eq!(
        z.decide(&res(&alice, "get", "default", "", "configmaps", "", "x")).await,
        (Decision::NoOpinion, "".into())
    );
    let p = Attributes { user: Cow::Borrowed(&alice), verb: "get".into(), path: "/api".into(), ..Default::default() };
    assert_eq!(z.decide(&p).await.0, Decision::Allow);
    assert_eq!(
        z.decide(&res(&user("root", &["system:masters"]), "delete", "x", "", "secrets", "", "s")).await.0,
        Decision::Allow
    );
    let rules = z.rules_for(&alice, "default");
    assert!(!rules.incomplete);
    assert!(rules.non_resource_rules.iter().any(|r| r.non_resource_urls.contains(&"/apis/*".to_string())));
}

#[tokio::test]
async fn modes_run_in_order_and_the_first_decision_wins() {
    let (dir, args) = serve_args(&[
        "--authorization-mode",
        "ABAC,AlwaysDeny,AlwaysAllow",
        "--authorization-policy-file",
        "$DIR/abac.jsonl",
    ]);
    std::fs::write(
        dir.path().join("abac.jsonl"),
        r#"{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"user": "alice", "namespace": "*", "resource": "*", "apiGroup": "*"}}"#,
    )
    .unwrap();
    let z = Authorization::new(&args).unwrap();
    assert_eq!(z.decide(&res(&user("alice", &[]), "get", "n", "", "pods", "", "")).await.0, Decision::Allow);
    assert_eq!(
        z.decide(&res(&user("bob", &[]), "get", "n", "", "pods", "", "")).await,
        (Decision::Deny, "Everything is forbidden.".into())
    );
    assert!(z.rules_for(&user("bob", &[]), "n").incomplete, "ABAC cannot list rules");
}

#[tokio::test]
async fn all_no_opinion_joins_reasons() {
    let (dir, args) =
        serve_args(&["--authorization-mode", "ABAC,RBAC", "--authorization-policy-file", "$DIR/abac.jsonl"]);
    std::fs::write(dir.path().join("abac.jsonl"), "").unwrap();
    let z = Authorization::new(&args).unwrap();
    assert_eq!(
        z.decide(&res(&user("bob", &[]), "get", "n", "", "pods", "", "")).await,
        (Decision::NoOpinion, "No policy matched.".into())
    );
}

/// An authorizer that cannot be asked, as a webhook that is down.
struct Failing(Decision);

#[async_trait::async_trait]
impl Authorizer for Failing {
    async fn authorize(&self, a: &Attributes<'_>) -> (Decision, Arc<str>) {
        let (d, r, _) = self.authorize_or_error(a).await;
        (d, r)
    }
    async fn authorize_or_error(&self, _: &Attributes<'_>) -> (Decision, Arc<str>, Option<String>) {
        (self.0, Arc::default(), Some("webhook down".into()))
    }
}

fn chain(members: Vec<Arc<dyn Authorizer>>) -> Authorization {
    let chain = members.into_iter().map(|authorizer| Member { kind: "Test", name: "t".into(), authorizer }).collect();
    Authorization::from_chain(chain, None)
}

#[tokio::test]
async fn errors_are_collected_and_a_later_allow_still_wins() {
    let bob = res(&user("bob", &[]), "get", "n", "", "pods", "", "");
    let (d, _, errors) = chain(vec![Arc::new(Failing(Decision::NoOpinion))]).decide_or_error(&bob).await;
    assert_eq!((d, errors), (Decision::NoOpinion, vec!["webhook down".to_string()]));
    let (d, _, errors) =
        chain(vec![Arc::new(Failing(Decision::NoOpinion)), Arc::new(AlwaysAllow)]).decide_or_error(&bob).await;
    assert_eq!(d, Decision::Allow, "NoOpinion on failure falls through to the next authorizer");
    assert_eq!(errors.len(), 1);
    let (d, _, errors) =
        chain(vec![Arc::new(Failing(Decision::Deny)), Arc::new(AlwaysAllow)]).decide_or_error(&bob).await;
    assert_eq!((d, errors.len()), (Decision::Deny, 1), "Deny on failure stops the chain");
    assert_eq!(aggregate_errors(&["a".into(), "b".into()]), "[a, b]");
}

#[test]
fn bad_flags_are_startup_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--authorization-mode", "RBAC,RBAC"], "more than once"),
        (&["--authorization-mode", "Magic"], "not a valid mode"),
        (&["--authorization-mode", "Node,RBAC"], "Node"),
        (&["--authorization-mode", "Webhook"], "config file not passed"),
        (&["--authorization-mode", "ABAC"], "policy file not passed"),
        (&["--authorization-policy-file", "x"], "without mode ABAC"),
        (&["--authorization-mode", "RBAC", "--authorization-config", "$DIR/c.yaml"], "can not be specified"),
        (&["--rbac-policy", "$DIR/missing"], "no such file"),
    ];
    for (flags, want) in cases {
        let (_d, args) = serve_args(flags);
        let err = format!("{:#}", Authorization::new(&args).err().expect("an error"));
        assert!(err.contains(want), "{flags:?}: {err}");
    }
}

#[tokio::test]
async fn authorization_configuration_file() {
    let (dir, args) = serve_args(&["--authorization-config", "$DIR/authz.yaml"]);
    let write = |s: &str| std::fs::write(dir.path().join("authz.yaml"), s).unwrap();
    write("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthorizationConfiguration\nauthorizers:\n- type: RBAC\n  name: rbac\n- type: AlwaysDeny\n  name: deny\n");
    let z = Authorization::new(&args).unwrap();
    assert!(z.rbac().is_some());
    assert_eq!(z.decide(&res(&user("bob", &[]), "get", "n", "", "pods", "", "")).await.0, Decision::Deny);
    for (text, want) in [
        ("apiVersion: v1\nkind: Config\n", "AuthorizationConfiguration"),
        ("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthorizationConfiguration\nauthorizers: []\n", "at least one"),
        ("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthorizationConfiguration\nauthorizers:\n- {type: RBAC}\n- {type: RBAC, name: again}\n", "Duplicate"),
        ("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthorizationConfiguration\nauthorizers:\n- {type: Webhook, name: w}\n", "webhook: Required"),
        ("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthorizationConfiguration\nauthorizers:\n- type: Webhook\n  name: w\n  webhook: {timeout: 45s, subjectAccessReviewVersion: v1, failurePolicy: Deny, connectionInfo: {type: KubeConfigFile, kubeConfigFile: /x}}\n", "30s"),
        ("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthorizationConfiguration\nauthorizers:\n- type: Webhook\n  name: w\n  webhook: {timeout: 3s, subjectAccessReviewVersion: v1, connectionInfo: {type: KubeConfigFile, kubeConfigFile: /x}}\n", "failurePolicy"),
        ("apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthorizationConfiguration\nbogus: 1\n", "bogus"),
    ] {
        write(text);
        let err = format!("{:#}", Authorization::new(&args).err().expect("an error"));
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[tokio::test]
async fn mode_upstream_needs_an_upstream_apiserver() {
    let (_d, args) = serve_args(&["--authorization-mode", "RBAC,Upstream"]);
    let e = Authorization::new(&args).err().unwrap().to_string();
    assert!(e.contains("authorization-mode Upstream needs --upstream-apiserver"), "{e}");
    let (_d, mut args) = serve_args(&["--authorization-mode", "RBAC,Upstream"]);
    args.upstream = Some(crate::kubeconfig::ApiserverClient {
        base: crate::kubeconfig::Kubeconfig { server: "https://127.0.0.1:1".into(), ..Default::default() },
        headers: vec![],
    });
    let z = Authorization::new(&args).unwrap();
    // RBAC first; the upstream (unreachable here) is asked only when RBAC has no opinion, and
    // its failure is NoOpinion under the default failure policy
    let alice = user("alice", &["system:authenticated"]);
    let p = Attributes { user: Cow::Borrowed(&alice), verb: "get".into(), path: "/api".into(), ..Default::default() };
    assert_eq!(z.decide(&p).await.0, Decision::Allow);
    let (d, _, errors) = z.decide_or_error(&res(&alice, "get", "default", "", "configmaps", "", "x")).await;
    assert_eq!(d, Decision::NoOpinion);
    assert!(
        errors.iter().any(|e| e.contains("127.0.0.1:1/apis/authorization.k8s.io/v1/subjectaccessreviews")),
        "{errors:?}"
    );
}
