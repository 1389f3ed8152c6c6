//! Table-driven tests, one table per rule of `NewRequestInfo` (cases include upstream's own).

use super::*;

fn resolve(method: &str, url: &str) -> Result<RequestInfo, RequestInfoError> {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    RequestInfo::resolve(method, path, query)
}

fn info(method: &str, url: &str) -> RequestInfo {
    resolve(method, url).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// One expected resolution: verb, prefix, group, version, namespace, resource, subresource,
/// name, parts (slash-joined).
type Row<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

fn check(rows: &[Row]) {
    for &(method, url, verb, prefix, group, version, ns, resource, sub, name, parts) in rows {
        let i = info(method, url);
        let want_parts: Vec<String> = parts.split('/').map(str::to_string).collect();
        assert!(i.is_resource_request, "{method} {url}: resource request");
        assert_eq!(
            (i.verb(), i.api_prefix(), i.api_group(), i.api_version()),
            (verb, prefix, group, version),
            "{method} {url}: verb/prefix/group/version"
        );
        assert_eq!(
            (i.namespace(), i.resource(), i.subresource(), i.name()),
            (ns, resource, sub, name),
            "{method} {url}: namespace/resource/subresource/name"
        );
        assert_eq!(i.parts().collect::<Vec<_>>(), want_parts, "{method} {url}: parts");
    }
}

#[test]
fn resource_paths_core_and_groups() {
    check(&[
        ("GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "", "namespaces"),
        (
            "GET",
            "/api/v1/namespaces/other",
            "get",
            "api",
            "",
            "v1",
            "other",
            "namespaces",
            "",
            "other",
            "namespaces/other",
        ),
        ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", "pods"),
        ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", "pods/foo"),
        ("GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", "pods"),
        ("GET", "/api/v1/nodes/n1", "get", "api", "", "v1", "", "nodes", "", "n1", "nodes/n1"),
        (
            "GET",
            "/apis/apps/v1/namespaces/ns/deployments/d",
            "get",
            "apis",
            "apps",
            "v1",
            "ns",
            "deployments",
            "",
            "d",
            "deployments/d",
        ),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "list",
            "apis",
            "rbac.authorization.k8s.io",
            "v1",
            "",
            "clusterroles",
            "",
            "",
            "clusterroles",
        ),
        (
            "POST",
            "/apis/extensions/v1beta3/namespaces/other/pods",
            "create",
            "apis",
            "extensions",
            "v1beta3",
            "other",
            "pods",
            "",
            "",
            "pods",
        ),
        // slashes around the path do not count
        ("GET", "//api/v1/pods/", "list", "api", "", "v1", "", "pods", "", "", "pods"),
        // the path is percent-decoded before it is split, as Go's URL.Path
        ("GET", "/api/v1/namespaces/a%2Fb/pods", "get", "api", "", "v1", "a", "b", "", "pods", "b/pods"),
        (
            "GET",
            "/api/v1/namespaces/ns/configmaps/c%3A1",
            "get",
            "api",
            "",
            "v1",
            "ns",
            "configmaps",
            "",
            "c:1",
            "configmaps/c:1",
        ),
        // `namespaces` with no name after it is the namespaces resource
        ("GET", "/apis/g/v1/namespaces", "list", "apis", "g", "v1", "", "namespaces", "", "", "namespaces"),
    ]);
}

#[test]
fn verbs_from_methods() {
    check(&[
        ("GET", "/api/v1/namespaces/ns/pods/foo", "get", "api", "", "v1", "ns", "pods", "", "foo", "pods/foo"),
        ("HEAD", "/api/v1/namespaces/ns/pods/foo", "get", "api", "", "v1", "ns", "pods", "", "foo", "pods/foo"),
        ("HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", "pods"),
        ("POST", "/api/v1/namespaces/ns/pods", "create", "api", "", "v1", "ns", "pods", "", "", "pods"),
        ("PUT", "/api/v1/namespaces/ns/pods/foo", "update", "api", "", "v1", "ns", "pods", "", "foo", "pods/foo"),
        ("PATCH", "/api/v1/namespaces/ns/pods/foo", "patch", "api", "", "v1", "ns", "pods", "", "foo", "pods/foo"),
        ("DELETE", "/api/v1/namespaces/ns/pods/foo", "delete", "api", "", "v1", "ns", "pods", "", "foo", "pods/foo"),
        // any other method has no verb
        ("OPTIONS", "/api/v1/namespaces/ns/pods/foo", "", "api", "", "v1", "ns", "pods", "", "foo", "pods/foo"),
        ("CONNECT", "/api/v1/pods", "", "api", "", "v1", "", "pods", "", "", "pods"),
        // methods are case-sensitive, as in Go
        ("get", "/api/v1/pods", "", "api", "", "v1", "", "pods", "", "", "pods"),
    ]);
}

#[test]
fn deletecollection() {
    check(&[
        ("DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "", "nodes"),
        ("DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", "", "namespaces"),
        (
            "DELETE",
            "/api/v1/namespaces/other/pods",
            "deletecollection",
            "api",
            "",
            "v1",
            "other",
            "pods",
            "",
            "",
            "pods",
        ),
        (
            "DELETE",
            "/apis/extensions/v1/namespaces/other/pods",
            "deletecollection",
            "apis",
            "extensions",
            "v1",
            "other",
            "pods",
            "",
            "",
            "pods",
        ),
        // a name from the field selector does not apply to delete
        (
            "DELETE",
            "/api/v1/pods?fieldSelector=metadata.name%3Dx",
            "deletecollection",
            "api",
            "",
            "v1",
            "",
            "pods",
            "",
            "",
            "pods",
        ),
    ]);
}

#[test]
fn watch_from_query() {
    check(&[
        ("GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "", "pods"),
        ("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", "", "pods"),
        ("GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "", "pods"),
        ("GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", "", "pods"),
        ("GET", "/api/v1/pods?watch=False", "list", "api", "", "v1", "", "pods", "", "", "pods"),
        // anything else is true, garbage and the empty value included
        ("GET", "/api/v1/pods?watch=garbage", "watch", "api", "", "v1", "", "pods", "", "", "pods"),
        ("GET", "/api/v1/pods?watch=", "watch", "api", "", "v1", "", "pods", "", "", "pods"),
        ("GET", "/api/v1/pods?watch", "watch", "api", "", "v1", "", "pods", "", "", "pods"),
        // the first value counts
        ("GET", "/api/v1/pods?watch=false&watch=true", "list", "api", "", "v1", "", "pods", "", "", "pods"),
        // watch on a named get is still a get
        (
            "GET",
            "/api/v1/namespaces/ns/pods/foo?watch=true",
            "get",
            "api",
            "",
            "v1",
            "ns",
            "pods",
            "",
            "foo",
            "pods/foo",
        ),
        // watch only turns a list into a watch
        ("DELETE", "/api/v1/pods?watch=true", "deletecollection", "api", "", "v1", "", "pods", "", "", "pods"),
    ]);
}

#[test]
fn watch_and_proxy_path_prefixes() {
    check(&[
        ("GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "", "pods"),
        ("GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", "", "pods"),
        (
            "GET",
            "/api/v1/watch/namespaces/other/pods/foo",
            "watch",
            "api",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            "pods/foo",
        ),
        (
            "GET",
            "/apis/group/version/watch/resource/name",
            "watch",
            "apis",
            "group",
            "version",
            "",
            "resource",
            "",
            "name",
            "resource/name",
        ),
        // the path prefix wins over the method and the query
        ("POST", "/api/v1/watch/pods?watch=false", "watch", "api", "", "v1", "", "pods", "", "", "pods"),
        // watch keeps subresources, proxy has none
        (
            "GET",
            "/api/v1/watch/namespaces/ns/pods/foo/status",
            "watch",
            "api",
            "",
            "v1",
            "ns",
            "pods",
            "status",
            "foo",
            "pods/foo/status",
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/other/pods/foo",
            "proxy",
            "api",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            "pods/foo",
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource",
            "proxy",
            "api",
            "",
            "v1",
            "other",
            "pods",
            "",
            "foo",
            "pods/foo/subpath/not/a/subresource",
        ),
        ("DELETE", "/api/v1/proxy/nodes/n1/x", "proxy", "api", "", "v1", "", "nodes", "", "n1", "nodes/n1/x"),
    ]);
}

#[test]
fn special_verb_with_nothing_after_is_an_error() {
    for (method, url) in [("GET", "/api/v1/watch"), ("GET", "/api/v1/proxy/"), ("GET", "/apis/g/v1/watch")] {
        let e = resolve(method, url).unwrap_err();
        assert_eq!(e.0, format!("unable to determine kind and namespace from url, {url}"));
    }
    let e = resolve("GET", "/api/v1/watch?x=1").unwrap_err();
    assert_eq!(e.0, "unable to determine kind and namespace from url, /api/v1/watch?x=1");
}

#[test]
fn namespaces_and_their_subresources() {
    check(&[
        (
            "PUT",
            "/api/v1/namespaces/other/finalize",
            "update",
            "api",
            "",
            "v1",
            "other",
            "namespaces",
            "finalize",
            "other",
            "namespaces/other/finalize",
        ),
        (
            "PUT",
            "/api/v1/namespaces/other/status",
            "update",
            "api",
            "",
            "v1",
            "other",
            "namespaces",
            "status",
            "other",
            "namespaces/other/status",
        ),
        (
            "GET",
            "/api/v1/namespaces/other/status",
            "get",
            "api",
            "",
            "v1",
            "other",
            "namespaces",
            "status",
            "other",
            "namespaces/other/status",
        ),
        // anything else after the namespace is a namespaced resource
        ("GET", "/api/v1/namespaces/other/secrets", "list", "api", "", "v1", "other", "secrets", "", "", "secrets"),
        ("GET", "/api/v1/namespaces/status/pods", "list", "api", "", "v1", "status", "pods", "", "", "pods"),
    ]);
}

#[test]
fn subresources_and_parts() {
    check(&[
        (
            "GET",
            "/api/v1/namespaces/other/pods/foo/status",
            "get",
            "api",
            "",
            "v1",
            "other",
            "pods",
            "status",
            "foo",
            "pods/foo/status",
        ),
        (
            "GET",
            "/api/v1/namespaces/other/pods/foo/proxy/subpath",
            "get",
            "api",
            "",
            "v1",
            "other",
            "pods",
            "proxy",
            "foo",
            "pods/foo/proxy/subpath",
        ),
        (
            "POST",
            "/api/v1/namespaces/ns/pods/foo/exec",
            "create",
            "api",
            "",
            "v1",
            "ns",
            "pods",
            "exec",
            "foo",
            "pods/foo/exec",
        ),
        (
            "PUT",
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            "update",
            "apis",
            "apps",
            "v1",
            "ns",
            "deployments",
            "scale",
            "d",
            "deployments/d/scale",
        ),
        (
            "GET",
            "/apis/batch/v1/job/foo/scale",
            "get",
            "apis",
            "batch",
            "v1",
            "",
            "job",
            "scale",
            "foo",
            "job/foo/scale",
        ),
        ("PUT", "/api/v1/nodes/n1/status", "update", "api", "", "v1", "", "nodes", "status", "n1", "nodes/n1/status"),
    ]);
}

#[test]
fn non_resource_requests() {
    for url in [
        "",
        "/",
        "/api",
        "/apis",
        "/api/v1",
        "/api/v1/",
        "/api/version/",
        "/apis/apps",
        "/apis/apps/v1",
        "/apis/extensions/v1beta1/",
        "/apis/version/resource",
        "/badprefix/version/resource",
        "/not-api/version/resource",
        "/healthz",
        "/readyz/ping",
        "/version",
        "/metrics",
        "/openapi/v2",
    ] {
        let i = info("GET", url);
        assert!(!i.is_resource_request, "{url:?} is a non-resource request");
        assert_eq!(i.verb(), "get", "{url:?}: the lower-cased method");
        assert_eq!(i.path(), url);
        assert_eq!((i.api_group(), i.resource(), i.name()), ("", "", ""), "{url:?}");
    }
    // as upstream, the prefix is recorded before a group path turns out too short
    assert_eq!(info("GET", "/apis/apps/v1").api_prefix(), "apis");
    assert_eq!(info("POST", "/healthz").verb(), "post");
    assert_eq!(info("PATCH", "/apis/g/v1").verb(), "patch");
    assert_eq!(info("GET", "/a%20b").path(), "/a b", "the decoded path");
}

#[test]
fn resource_detection_as_upstream() {
    for (url, resource) in [
        ("/api/version/resource", true),
        ("/apis/group/version/resource/name/subresource", true),
        ("/api/version/resource/name/subresource", true),
        ("/apis/batch/v1/job", true),
        ("/apis/batch/v1/job/foo", true),
        ("/apis/batch/v1/job/foo/scale", true),
        ("/not-api/version/resource", false),
        ("/apis/extensions/v1beta1", false),
        ("/apis/extensions/v1beta1/", false),
        ("/api/version", false),
        ("/api", false),
        ("/", false),
    ] {
        assert_eq!(info("GET", url).is_resource_request, resource, "{url}");
    }
}

#[test]
fn field_selector_names_the_object() {
    // (url, verb, name)
    for (url, verb, name) in [
        ("/apis/group/version/resource", "list", ""),
        ("/apis/group/version/resource?fieldSelector=metadata.name=name1", "list", "name1"),
        ("/apis/group/version/resource?fieldSelector=metadata.name%3Dname1", "list", "name1"),
        ("/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "watch", "name1"),
        ("/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3D%3Dp", "list", "p"),
        ("/api/v1/pods?fieldSelector=spec.nodeName%3Dn,metadata.name%3Dp", "list", "p"),
        ("/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "list", ""),
        ("/api/v1/pods?fieldSelector=metadata.name!%3Dp", "list", ""),
        // repeated parameters: the first one counts
        ("/api/v1/pods?fieldSelector=metadata.name%3Dfoo&fieldSelector=metadata.name%3Dbar", "list", "foo"),
        // an invalid selector names nothing
        ("/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "list", ""),
        ("/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "watch", ""),
        ("/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "list", ""),
        // so does any other parameter that fails to decode (watch still counts)
        ("/api/v1/pods?fieldSelector=metadata.name%3Dp&limit=ten", "list", ""),
        ("/api/v1/pods?fieldSelector=metadata.name%3Dp&timeoutSeconds=&watch=1", "watch", ""),
        ("/api/v1/pods?fieldSelector=metadata.name%3Dp&labelSelector=a%20b", "list", ""),
        ("/api/v1/pods?fieldSelector=metadata.name%3Dp&labelSelector=app%3Dweb&limit=5", "list", "p"),
        // names that are not valid path segments are ignored
        ("/api/v1/pods?fieldSelector=metadata.name%3D..", "list", ""),
        ("/api/v1/pods?fieldSelector=metadata.name%3D.", "list", ""),
        ("/api/v1/pods?fieldSelector=metadata.name%3Da/b", "list", ""),
        ("/api/v1/pods?fieldSelector=metadata.name%3Da%25b", "list", ""),
        // a named get keeps its path name
        ("/api/v1/namespaces/ns/pods/foo?fieldSelector=metadata.name%3Dbar", "get", "foo"),
    ] {
        let i = info("GET", url);
        assert_eq!((i.verb(), i.name()), (verb, name), "{url}");
    }
}

#[test]
fn selectors_kept_for_authorization() {
    // (method, url, verb, fieldSelector, labelSelector)
    for (method, url, verb, fs, ls) in [
        ("GET", "/apis/g/v/r", "list", "", ""),
        ("GET", "/apis/g/v/r?fieldSelector=foo=bar&labelSelector=baz=qux", "list", "foo=bar", "baz=qux"),
        ("GET", "/apis/g/v/r?fieldSelector=metadata.name=name1,foo", "list", "metadata.name=name1,foo", ""),
        ("DELETE", "/apis/g/v/r?fieldSelector=foo=bar&labelSelector=baz=qux", "deletecollection", "foo=bar", "baz=qux"),
        (
            "GET",
            "/apis/g/v/r?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector=foo=bar&labelSelector=foo=baz",
            "list",
            "metadata.name=foo",
            "foo=bar",
        ),
        ("GET", "/apis/g/v/r?watch=1&labelSelector=a+in+(b)", "watch", "", "a in (b)"),
        // other verbs and the legacy watch prefix keep none
        ("GET", "/apis/g/v/r/name?fieldSelector=foo=bar&labelSelector=foo=bar", "get", "", ""),
        ("POST", "/apis/g/v/r?fieldSelector=foo=bar", "create", "", ""),
        ("GET", "/apis/g/v/watch/r?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "watch", "", ""),
        ("GET", "/apis/g/v/watch/r/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "watch", "", ""),
    ] {
        let i = info(method, url);
        assert_eq!(
            (i.verb(), i.field_selector(), i.label_selector()),
            (verb, fs, ls),
            "{method} {url}"
        );
    }
}

#[test]
fn long_running_read_only_and_scope() {
    assert!(info("GET", "/api/v1/pods?watch=1").is_long_running());
    assert!(info("GET", "/api/v1/watch/pods").is_long_running());
    assert!(info("GET", "/api/v1/proxy/nodes/n/x").is_long_running());
    for sub in ["exec", "attach", "log", "portforward", "proxy"] {
        assert!(info("POST", &format!("/api/v1/namespaces/ns/pods/p/{sub}")).is_long_running(), "{sub}");
    }
    assert!(!info("GET", "/api/v1/pods").is_long_running());
    assert!(!info("GET", "/api/v1/namespaces/ns/pods/p/status").is_long_running());
    assert!(!info("GET", "/healthz").is_long_running());
    assert!(info("GET", "/debug/pprof/profile").is_long_running());

    assert!(info("GET", "/api/v1/pods").is_read_only());
    assert!(info("GET", "/api/v1/pods?watch=1").is_read_only());
    assert!(!info("POST", "/api/v1/namespaces/ns/pods").is_read_only());

    assert_eq!(info("GET", "/api/v1/namespaces/ns/pods/p").scope(), "resource");
    assert_eq!(info("POST", "/api/v1/namespaces/ns/pods").scope(), "resource", "create is resource-scoped");
    assert_eq!(info("GET", "/api/v1/namespaces/ns/pods").scope(), "namespace");
    assert_eq!(info("GET", "/api/v1/pods").scope(), "cluster");
    assert_eq!(info("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dp").scope(), "resource");
    assert_eq!(info("GET", "/healthz").scope(), "");
}

#[test]
fn the_routes_shape_namespaced_path_and_verb_prefix() {
    for (method, url, namespaced_path, verb_from_prefix) in [
        ("GET", "/api/v1/namespaces/x", false, false),
        ("PUT", "/api/v1/namespaces/x/status", false, false),
        ("PUT", "/api/v1/namespaces/x/finalize", false, false),
        ("GET", "/api/v1/namespaces/x/namespaces/x", true, false),
        ("GET", "/api/v1/namespaces/x/configmaps/c", true, false),
        ("GET", "/api/v1/configmaps", false, false),
        ("GET", "/api/v1/watch/namespaces/x/configmaps", true, true),
        ("PUT", "/api/v1/watch/namespaces/x", false, true),
        ("GET", "/api/v1/proxy/namespaces/x/pods/p", true, true),
    ] {
        let i = info(method, url);
        assert_eq!((i.namespaced_path, i.verb_from_prefix), (namespaced_path, verb_from_prefix), "{method} {url}");
    }
    // both read the namespace x as RequestInfo: the same attributes are authorized
    let (a, b) = (info("GET", "/api/v1/namespaces/x"), info("GET", "/api/v1/namespaces/x/namespaces/x"));
    let attrs = |i: &RequestInfo| {
        (
            i.namespace().to_string(),
            i.resource().to_string(),
            i.name().to_string(),
            i.parts().collect::<Vec<_>>().join("/"),
        )
    };
    assert_eq!(attrs(&a), attrs(&b));
}

/// Every request's context and every idle watch holds its RequestInfo: one text, the path's
/// attributes spans of it and the rest appended (as twelve `String`s: 296 bytes and up to
/// nine allocations).
#[test]
fn a_request_info_is_one_text() {
    let size = std::mem::size_of::<RequestInfo>();
    assert!(size <= 120, "{size} bytes");
    let i = info(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&fieldSelector=metadata.name%3Dx&labelSelector=a%3Db",
    );
    assert_eq!(&*i.text, "/api/v1/namespaces/default/configmapswatchxmetadata.name=xa=b");
    assert_eq!((i.verb(), i.name(), i.field_selector(), i.label_selector()), ("watch", "x", "metadata.name=x", "a=b"));
    // a verb from the path is a span of it, as a percent-decoded path's pieces are of the decoded path
    let i = info("GET", "/api/v1/watch/namespaces/d%65fault/pods/p");
    assert_eq!(&*i.text, "/api/v1/watch/namespaces/default/pods/p");
    assert_eq!((i.verb(), i.namespace(), i.parts().collect::<Vec<_>>()), ("watch", "default", vec!["pods", "p"]));
    let i = info("PROPFIND", "/healthz");
    assert_eq!((&*i.text, i.verb(), i.parts().count()), ("/healthzpropfind", "propfind", 0));
}
