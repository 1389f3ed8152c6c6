//! ns per RequestInfo resolution of typical kubectl / client-go requests.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use frontdoor::request_info::RequestInfo;

const CASES: &[(&str, &str, &str, Option<&str>)] = &[
    ("get_pod", "GET", "/api/v1/namespaces/default/pods/web-0", None),
    ("list_pods", "GET", "/api/v1/namespaces/default/pods", Some("limit=500")),
    (
        "watch_deployments",
        "GET",
        "/apis/apps/v1/namespaces/default/deployments",
        Some("allowWatchBookmarks=true&resourceVersion=12345&timeoutSeconds=480&watch=true"),
    ),
    (
        "list_by_name",
        "GET",
        "/api/v1/namespaces/kube-system/configmaps",
        Some("fieldSelector=metadata.name%3Dkube-root-ca.crt&labelSelector=app%3Dweb&limit=500"),
    ),
    ("patch_status", "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/status", Some("fieldManager=kubectl")),
    ("create_cluster", "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", None),
    ("non_resource", "GET", "/readyz", Some("verbose")),
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_info");
    for &(name, method, path, query) in CASES {
        g.bench_function(name, |b| {
            b.iter(|| RequestInfo::resolve(black_box(method), black_box(path), black_box(query)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
