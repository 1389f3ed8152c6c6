//! RBAC decision latency as the policy grows: 1,000 and 10,000 RoleBindings over 1,000
//! namespaces and 500 ClusterRoles (plus kube's bootstrap policy), allowed and denied.
//! Target: under 1 µs median, flat from 1,000 to 10,000 bindings.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use frontdoor::authn::UserInfo;
use frontdoor::authz::rbac::{bootstrap, load, RbacAuthorizer};
use frontdoor::authz::Attributes;
use serde_json::json;

const ROLES: usize = 500;
const NAMESPACES: usize = 1000;
const RESOURCES: [&str; 8] = ["pods", "configmaps", "secrets", "services", "deployments", "jobs", "widgets", "leases"];

fn policy(bindings: usize) -> RbacAuthorizer {
    let mut objs = bootstrap();
    for r in 0..ROLES {
        let rules: Vec<_> = (0..4)
            .map(|k| {
                json!({"apiGroups": ["", "apps", "batch"], "resources": [RESOURCES[(r + k) % 8], format!("{}/status", RESOURCES[(r + k) % 8])],
                       "verbs": ["get", "list", "watch"]})
            })
            .collect();
        objs.extend(
            load::parse_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("role-{r}")}, "rules": rules}))
            .unwrap(),
        );
    }
    for b in 0..bindings {
        let ns = b % NAMESPACES;
        objs.extend(load::parse_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("binding-{b}"), "namespace": format!("ns-{ns}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("role-{}", b % ROLES)},
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": format!("user-{b}")},
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": format!("team-{}", b % 300)},
                {"kind": "ServiceAccount", "name": format!("sa-{}", b % 50)},
            ]})).unwrap());
    }
    RbacAuthorizer::from_objects(objs)
}

fn attrs<'a>(user: &str, ns: &'a str, verb: &'a str, resource: &'a str) -> Attributes<'a> {
    Attributes {
        user: std::borrow::Cow::Owned(UserInfo::new(user, vec!["team-7".into(), "system:authenticated".into()])),
        verb: verb.into(),
        namespace: ns.into(),
        api_group: "apps".into(),
        api_version: "v1".into(),
        resource: resource.into(),
        name: "x".into(),
        resource_request: true,
        ..Default::default()
    }
}

fn decisions(c: &mut Criterion) {
    let mut g = c.benchmark_group("rbac_decision");
    for bindings in [1_000usize, 10_000] {
        let z = policy(bindings);
        // binding 42 (ns-42, role-42, user-42) grants role-42: resources[(42+k)%8] for k in 0..4
        let allowed = attrs("user-42", "ns-42", "get", RESOURCES[(42 + 3) % 8]);
        assert_eq!(z.decide(&allowed).0, frontdoor::authz::Decision::Allow);
        let denied = attrs("user-42", "ns-42", "delete", RESOURCES[42 % 8]);
        assert_eq!(z.decide(&denied).0, frontdoor::authz::Decision::NoOpinion);
        let stranger = attrs("nobody", "ns-42", "get", "pods");
        g.bench_with_input(BenchmarkId::new("allowed", bindings), &allowed, |b, a| b.iter(|| z.decide(black_box(a))));
        g.bench_with_input(BenchmarkId::new("denied", bindings), &denied, |b, a| b.iter(|| z.decide(black_box(a))));
        g.bench_with_input(BenchmarkId::new("denied_unbound_user", bindings), &stranger, |b, a| {
            b.iter(|| z.decide(black_box(a)))
        });
    }
    g.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
