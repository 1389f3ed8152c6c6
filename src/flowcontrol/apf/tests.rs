//! Classification against kube's bootstrap configuration, and configuration from files.

use super::*;
use types::AUTOUPDATE;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    let mut g: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
    if name != "system:anonymous" {
        g.push("system:authenticated".into());
    }
    UserInfo::new(name, g)
}

fn classify_as(cfg: &Config, u: &UserInfo, method: &str, path: &str) -> (String, String, String) {
    let info = RequestInfo::resolve(method, path, None).unwrap();
    let d = cfg.classify(u, &info).expect("catch-all matches");
    (d.schema.name.to_string(), d.schema.level.name.clone(), d.distinguisher)
}

fn bootstrap() -> Config {
    compile(600, &Objects::default(), &Objects::default(), None).unwrap()
}

#[test]
fn bootstrap_classification_table() {
    let cfg = bootstrap();
    let sa = |ns: &str, n: &str| {
        user(
            &format!("system:serviceaccount:{ns}:{n}"),
            &["system:serviceaccounts", &format!("system:serviceaccounts:{ns}")],
        )
    };
    let anon = UserInfo::new("system:anonymous", vec!["system:unauthenticated".into()]);
    let table: Vec<(UserInfo, &str, &str, &str, &str, &str)> = vec![
        (user("root", &["system:masters"]), "GET", "/api/v1/pods", "exempt", "exempt", ""),
        (anon.clone(), "GET", "/healthz", "probes", "exempt", ""),
        (anon.clone(), "GET", "/readyz", "probes", "exempt", ""),
        (anon.clone(), "GET", "/version", "global-default", "global-default", "system:anonymous"),
        (user("alice", &[]), "GET", "/api/v1/namespaces/a/pods", "global-default", "global-default", "alice"),
        (user("alice", &[]), "POST", "/livez", "global-default", "global-default", "alice"),
        (user("system:node:n1", &["system:nodes"]), "GET", "/api/v1/pods", "system-nodes", "system", "system:node:n1"),
        (
            user("system:node:n1", &["system:nodes"]),
            "PUT",
            "/api/v1/nodes/n1/status",
            "system-node-high",
            "node-high",
            "system:node:n1",
        ),
        (
            user("system:node:n1", &["system:nodes"]),
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            "system-node-high",
            "node-high",
            "system:node:n1",
        ),
        (
            user("system:kube-controller-manager", &[]),
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kcm",
            "system-leader-election",
            "leader-election",
            "system:kube-controller-manager",
        ),
        (
            user("system:kube-controller-manager", &[]),
            "GET",
            "/api/v1/namespaces/b/endpoints/e",
            "endpoint-controller",
            "workload-high",
            "system:kube-controller-manager",
        ),
        (
            user("system:kube-controller-manager", &[]),
            "GET",
            "/api/v1/namespaces/b/pods",
            "kube-controller-manager",
            "workload-high",
            "b",
        ),
        (
            user("system:kube-scheduler", &[]),
            "POST",
            "/api/v1/namespaces/c/bindings",
            "kube-scheduler",
            "workload-high",
            "c",
        ),
        (
            sa("kube-system", "x"),
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
            "system-leader-election",
            "leader-election",
            "system:serviceaccount:kube-system:x",
        ),
        (
            sa("kube-system", "x"),
            "GET",
            "/api/v1/namespaces/d/secrets",
            "kube-system-service-accounts",
            "workload-high",
            "d",
        ),
        (sa("kube-system", "x"), "GET", "/api/v1/nodes", "kube-system-service-accounts", "workload-high", ""),
        (
            sa("kube-system", "x"),
            "PUT",
            "/api/v1/namespaces/d/configmaps/lock",
            "workload-leader-election",
            "leader-election",
            "system:serviceaccount:kube-system:x",
        ),
        (
            sa("kube-system", "endpointslicemirroring-controller"),
            "PUT",
            "/api/v1/namespaces/d/endpoints/e",
            "endpoint-controller",
            "workload-high",
            "system:serviceaccount:kube-system:endpointslicemirroring-controller",
        ),
        (
            user("system:node:n1", &["system:nodes"]),
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/other/leases/n1",
            "system-node-high",
            "node-high",
            "system:node:n1",
        ),
        (
            sa("apps", "web"),
            "GET",
            "/api/v1/namespaces/apps/configmaps",
            "service-accounts",
            "workload-low",
            "system:serviceaccount:apps:web",
        ),
        (UserInfo::new("nobody", vec![]), "GET", "/api/v1/pods", "catch-all", "catch-all", "nobody"),
    ];
    for (u, m, p, fs, pl, dist) in table {
        assert_eq!(
            classify_as(&cfg, &u, m, p),
            (fs.to_string(), pl.to_string(), dist.to_string()),
            "{} {m} {p}",
            u.username
        );
    }
}

#[test]
fn order_is_precedence_then_name_and_mandatory_objects_stay() {
    let yaml = r#"
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: slow, uid: 11111111-2222-3333-4444-555555555555}
spec:
  type: Limited
  limited: {nominalConcurrencyShares: 1, limitResponse: {type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: b-noisy}
spec:
  matchingPrecedence: 500
  priorityLevelConfiguration: {name: slow}
  rules:
  - subjects: [{kind: User, user: {name: noisy}}]
    resourceRules: [{verbs: [list], apiGroups: [""], resources: [pods], namespaces: ["*"]}]
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: a-noisy}
spec:
  matchingPrecedence: 500
  priorityLevelConfiguration: {name: workload-low}
  rules:
  - subjects: [{kind: User, user: {name: noisy}}]
    resourceRules: [{verbs: [list], apiGroups: [""], resources: [pods], namespaces: ["*"]}]
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: dangling}
spec:
  matchingPrecedence: 2
  priorityLevelConfiguration: {name: missing}
  rules:
  - subjects: [{kind: Group, group: {name: "*"}}]
    nonResourceRules: [{verbs: ["*"], nonResourceURLs: ["*"]}]
"#;
    let cfg = compile(600, &Objects::default(), &Objects::parse(yaml, "test").unwrap(), None).unwrap();
    let noisy = user("noisy", &[]);
    assert_eq!(
        classify_as(&cfg, &noisy, "GET", "/api/v1/namespaces/x/pods").0,
        "a-noisy",
        "same precedence: name order"
    );
    assert_eq!(classify_as(&cfg, &noisy, "GET", "/api/v1/pods").0, "global-default", "not clusterScope");
    assert_eq!(classify_as(&cfg, &noisy, "GET", "/api/v1/namespaces/x/pods/p").0, "global-default", "get is not list");
    assert_eq!(classify_as(&cfg, &noisy, "GET", "/healthz").0, "probes", "dangling skipped");
    let slow = cfg.levels.iter().find(|l| l.name == "slow").unwrap();
    assert_eq!(slow.uid, "11111111-2222-3333-4444-555555555555");
    let exempt = cfg.schemas.iter().find(|s| &*s.name == "exempt").unwrap();
    assert_eq!(exempt.uid, derived_uid("FlowSchema", "exempt"), "a stable derived uid");
    // not one anyone can compute from the name (as the name's SHA-256 was)
    use sha2::Digest;
    let guessable: String =
        sha2::Sha256::digest(b"FlowSchema/exempt")[9..16].iter().map(|b| format!("{b:02x}")).collect();
    assert!(!exempt.uid.replace('-', "").ends_with(&guessable), "{}", exempt.uid);
}

#[test]
fn bad_objects_are_refused_with_their_place() {
    for (yaml, want) in [
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "not flowcontrol"),
        (
            "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: x}\nspec: {matchingPrecedence: -1, priorityLevelConfiguration: {name: y}}\n",
            "spec.matchingPrecedence: Invalid value: -1: must be a positive value",
        ),
        (
            "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: exempt}\nspec: {matchingPrecedence: 1, priorityLevelConfiguration: {name: slow}}\n",
            "FlowSchema.flowcontrol.apiserver.k8s.io \"exempt\" is invalid: spec: Invalid value: ",
        ),
        (
            "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: x}\nspec: {type: Limited, limited: {limitResponse: {type: Queue, queuing: {queues: 2, handSize: 3}}}}\n",
            "handSize",
        ),
        ("---\nkind: FlowSchema\n: [", "document"),
    ] {
        let err = format!("{:#}", Objects::parse(yaml, "f.yaml").unwrap_err());
        assert!(err.contains(want) && err.contains("f.yaml"), "{err}");
    }
}

/// The API keeps one object per name: files that define one twice are refused.
#[test]
fn an_object_defined_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let level = "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: tiny}\nspec: {type: Limited, limited: {nominalConcurrencyShares: 1, limitResponse: {type: Reject}}}\n";
    std::fs::write(dir.path().join("a.yaml"), level).unwrap();
    assert!(Objects::load(&[dir.path().to_path_buf()]).is_ok());
    std::fs::write(dir.path().join("b.yaml"), format!("{level}---\n{level}")).unwrap();
    let err = format!("{:#}", Objects::load(&[dir.path().to_path_buf()]).unwrap_err());
    assert!(err.starts_with("PriorityLevelConfiguration tiny is defined in both ") && err.ends_with("b.yaml"), "{err}");
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let err = format!("{:#}", Objects::load(&[dir.path().to_path_buf()]).unwrap_err());
    assert!(
        err.starts_with("PriorityLevelConfiguration tiny is defined twice in ") && err.ends_with("b.yaml"),
        "{err}"
    );
}

#[test]
fn reload_keeps_levels_and_their_seats() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("fc.yaml");
    std::fs::write(&f, "").unwrap();
    let apf = Apf::new(600, vec![f.clone()]).unwrap();
    let before = apf.snapshot().levels.iter().find(|l| l.name == "global-default").cloned().unwrap();
    std::fs::write(
        &f,
        "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: extra}\nspec: {type: Limited, limited: {nominalConcurrencyShares: 245, limitResponse: {type: Reject}}}\n",
    )
    .unwrap();
    apf.reload().unwrap();
    let cfg = apf.snapshot();
    let after = cfg.levels.iter().find(|l| l.name == "global-default").unwrap();
    assert!(Arc::ptr_eq(&before, after), "same level, same queues");
    assert_eq!(after.limits().0.nominal, 25, "shares now out of 490");
    std::fs::write(&f, "kind: [").unwrap();
    assert!(apf.reload().is_err());
    assert!(apf.snapshot().levels.iter().any(|l| l.name == "extra"), "the old configuration stays");
}

/// Every bootstrap object's key values, as kube's bootstrap/default.go defines them.
#[test]
fn bootstrap_objects_are_kubes() {
    let boot = Objects::parse(BOOTSTRAP, "bootstrap").unwrap();
    // name, type, shares, lendable, queues, handSize, queueLengthLimit (0: Reject)
    let mut levels: Vec<(String, String, u32, u32, u32, u32, u32)> = boot
        .priority_levels
        .iter()
        .map(|p| {
            let (shares, lendable, q) = match &p.spec.limited {
                Some(l) => {
                    assert_eq!(l.borrowing_limit_percent, None, "{}: kube sets no borrowing limit", p.metadata.name);
                    (l.shares(), l.lendable_percent.unwrap(), l.queuing())
                }
                None => (0, 0, None),
            };
            let q = q.map(|q| (q.queues, q.hand_size, q.queue_length_limit)).unwrap_or_default();
            (p.metadata.name.clone(), p.spec.kind.clone(), shares, lendable, q.0, q.1, q.2)
        })
        .collect();
    levels.sort();
    let l = |n: &str, t: &str, s, lp, q, h, ql| (n.to_string(), t.to_string(), s, lp, q, h, ql);
    assert_eq!(
        levels,
        vec![
            l("catch-all", "Limited", 5, 0, 0, 0, 0),
            l("exempt", "Exempt", 0, 0, 0, 0, 0),
            l("global-default", "Limited", 20, 50, 128, 6, 50),
            l("leader-election", "Limited", 10, 0, 16, 4, 50),
            l("node-high", "Limited", 40, 25, 64, 6, 50),
            l("system", "Limited", 30, 33, 64, 6, 50),
            l("workload-high", "Limited", 40, 50, 128, 6, 50),
            l("workload-low", "Limited", 100, 90, 128, 6, 50),
        ]
    );

    // name, precedence, level, distinguisher, subjects, resource rules, non-resource rules
    let subject = |s: &types::Subject| match s.kind.as_str() {
        "User" => format!("u:{}", s.user.as_ref().unwrap().name),
        "Group" => format!("g:{}", s.group.as_ref().unwrap().name),
        _ => {
            let sa = s.service_account.as_ref().unwrap();
            format!("sa:{}/{}", sa.namespace, sa.name)
        }
    };
    let mut schemas: Vec<String> = boot
        .flow_schemas
        .iter()
        .map(|f| {
            assert_eq!(f.spec.rules.len(), 1, "{}: one rule", f.metadata.name);
            let r = &f.spec.rules[0];
            let rr: Vec<String> = r
                .resource_rules
                .iter()
                .map(|x| {
                    format!(
                        "{}|{}|{}|{}|{}",
                        x.verbs.join(","),
                        x.api_groups.join(","),
                        x.resources.join(","),
                        x.namespaces.join(","),
                        x.cluster_scope
                    )
                })
                .collect();
            let nr: Vec<String> = r
                .non_resource_rules
                .iter()
                .map(|x| format!("{}|{}", x.verbs.join(","), x.non_resource_urls.join(",")))
                .collect();
            format!(
                "{} {} {} {} [{}] [{}] [{}]",
                f.metadata.name,
                f.spec.matching_precedence,
                f.level(),
                f.spec.distinguisher_method.as_ref().map(|d| d.kind.as_str()).unwrap_or("-"),
                r.subjects.iter().map(subject).collect::<Vec<_>>().join(" "),
                rr.join(" "),
                nr.join(" ")
            )
        })
        .collect();
    schemas.sort();
    let all = "*|*|*|*|true";
    let all_nr = "*|*";
    let want = vec![
        format!("catch-all 10000 catch-all ByUser [g:system:unauthenticated g:system:authenticated] [{all}] [{all_nr}]"),
        "endpoint-controller 150 workload-high ByUser [u:system:kube-controller-manager sa:kube-system/endpoint-controller sa:kube-system/endpointslicemirroring-controller] [get,create,update||endpoints|*|false] []".to_string(),
        format!("exempt 1 exempt - [g:system:masters] [{all}] [{all_nr}]"),
        format!("global-default 9900 global-default ByUser [g:system:unauthenticated g:system:authenticated] [{all}] [{all_nr}]"),
        format!("kube-controller-manager 800 workload-high ByNamespace [u:system:kube-controller-manager] [{all}] [{all_nr}]"),
        format!("kube-scheduler 800 workload-high ByNamespace [u:system:kube-scheduler] [{all}] [{all_nr}]"),
        format!("kube-system-service-accounts 900 workload-high ByNamespace [sa:kube-system/*] [{all}] [{all_nr}]"),
        "probes 2 exempt - [g:system:unauthenticated g:system:authenticated] [] [get|/healthz,/readyz,/livez]".to_string(),
        format!("service-accounts 9000 workload-low ByUser [g:system:serviceaccounts] [{all}] [{all_nr}]"),
        "system-leader-election 100 leader-election ByUser [u:system:kube-controller-manager u:system:kube-scheduler sa:kube-system/*] [get,create,update|coordination.k8s.io|leases|*|false] []".to_string(),
        "system-node-high 400 node-high ByUser [g:system:nodes] [*||nodes,nodes/status|*|true *|coordination.k8s.io|leases|*|false] []".to_string(),
        format!("system-nodes 500 system ByUser [g:system:nodes] [{all}] [{all_nr}]"),
        "workload-leader-election 200 leader-election ByUser [sa:kube-system/*] [get,create,update||endpoints,configmaps|*|false get,create,update|coordination.k8s.io|leases|*|false] []".to_string(),
    ];
    assert_eq!(schemas, want);
    for o in boot.flow_schemas.iter().map(|f| &f.metadata).chain(boot.priority_levels.iter().map(|p| &p.metadata)) {
        assert_eq!(o.annotations.get(AUTOUPDATE).map(String::as_str), Some("true"), "{}", o.name);
    }
}
