//! Watch and list fidelity as kube's: a BOOKMARK carries the store's current resourceVersion
//! (not only the last event this watch saw); `sendInitialEvents` needs
//! `resourceVersionMatch=NotOlderThan` (kube's 422 texts), sends the current state whatever
//! the resourceVersion, and ends it with a bookmark annotated `k8s.io/initial-events-end`;
//! an expired continue token is a 410 with a fresh token that goes on from the latest state.

use crate::common::{watch_events as events, Frontdoor};
use serde_json::{json, Value};

/// GETs `url` on another thread, while the test writes meanwhile; `read` takes the response there.
fn get_meanwhile<T: Send + 'static>(
    c: &reqwest::blocking::Client,
    url: String,
    read: impl FnOnce(reqwest::blocking::Response) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let c = c.clone();
    std::thread::spawn(move || read(c.get(url).send().unwrap()))
}

/// An event's object's resourceVersion.
fn rv(e: &Value) -> u64 {
    e["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

fn create(c: &reqwest::blocking::Client, url: &str, name: &str) -> u64 {
    let r = c.post(url).json(&json!({"metadata": {"name": name}})).send().unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().unwrap()["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

#[test]
fn bookmarks_initial_events_and_expired_continue() {
    let fd = Frontdoor::start(&["--storage-event-window", "10"]);
    let c = fd.admin_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    let secrets = fd.url("/api/v1/namespaces/default/secrets");

    // a bookmark's resourceVersion is the store's, though nothing of this resource changed
    let url = format!("{cms}?watch=1&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion=0");
    let watch = get_meanwhile(&c, url, events);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let secret_rv = create(&c, &secrets, "elsewhere");
    let evs = watch.join().unwrap();
    let bookmark = evs.last().unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK", "{evs:?}");
    let rv: u64 = bookmark["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(rv >= secret_rv, "bookmark at {rv}, the store at {secret_rv}");

    // sendInitialEvents: kube's validation of watch and list options
    let invalid = |url: String, message: &str| {
        let r = c.get(url).send().unwrap();
        assert_eq!(r.status(), 422);
        let s: Value = r.json().unwrap();
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["message"], message);
    };
    invalid(
        format!("{cms}?watch=1&sendInitialEvents=true"),
        r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"#,
    );
    invalid(
        format!("{cms}?watch=1&resourceVersionMatch=NotOlderThan"),
        r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"#,
    );
    invalid(
        format!("{cms}?sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=1"),
        r#"ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"#,
    );
    invalid(
        format!("{cms}?resourceVersionMatch=NotOlderThan"),
        r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"#,
    );

    // the initial events are the current state even from a resourceVersion (kube's watch-list)
    create(&c, &cms, "a");
    let b_rv = create(&c, &cms, "b");
    let url = format!(
        "{cms}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion={b_rv}&allowWatchBookmarks=true&timeoutSeconds=1"
    );
    let evs = events(c.get(url).send().unwrap());
    let added: Vec<&str> = evs
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(added.contains(&"a") && added.contains(&"b"), "{evs:?}");
    let end = evs.iter().position(|e| e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true");
    let end = end.expect("the initial events end with a bookmark");
    assert_eq!(evs[end]["type"], "BOOKMARK");
    assert!(evs[..end].iter().all(|e| e["type"] == "ADDED"));
    // sendInitialEvents=false: nothing of the past, the future only
    let url = format!("{cms}?watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&timeoutSeconds=1");
    assert!(events(c.get(url).send().unwrap()).iter().all(|e| e["type"] == "BOOKMARK"));
    // a resourceVersion the store has not reached
    let r = c
        .get(format!("{cms}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=999999"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 504);

    // an expired continue token: 410 with a token that goes on from the latest state
    for n in ["c", "d", "e"] {
        create(&c, &cms, n);
    }
    let page: Value = c.get(format!("{cms}?limit=2")).send().unwrap().json().unwrap();
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let first: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    for i in 0..30 {
        create(&c, &secrets, &format!("churn{i}"));
    }
    let r = c.get(format!("{cms}?limit=2&continue={token}")).send().unwrap();
    assert_eq!(r.status(), 410);
    let s: Value = r.json().unwrap();
    assert_eq!(s["reason"], "Expired");
    assert!(s["message"]
        .as_str()
        .unwrap()
        .starts_with("The provided continue parameter is too old to display a consistent list result."));
    let fresh = s["metadata"]["continue"].as_str().expect("a fresh continue token").to_string();
    let rest: Value = c.get(format!("{cms}?limit=100&continue={fresh}")).send().unwrap().json().unwrap();
    let names: Vec<&str> =
        rest["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    let last_first = *first.last().unwrap();
    assert!(!names.is_empty() && names.iter().all(|n| *n > last_first), "{first:?} then {names:?}");
    assert!(rest["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap() > b_rv);
}

/// A watch from a resourceVersion the store has not reached is silent until then and sends
/// only what is newer (kube's cacheWatcher), bookmarks included.
#[test]
fn a_watch_from_a_future_version_sends_only_newer_events() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    let now = create(&c, &cms, "before");
    let from = now + 3;
    let url = format!("{cms}?watch=1&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion={from}");
    let watch = get_meanwhile(&c, url, events);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let made: Vec<u64> = (0..5).map(|i| create(&c, &cms, &format!("later-{i}"))).collect();
    let evs = watch.join().unwrap();
    let added: Vec<u64> = evs.iter().filter(|e| e["type"] == "ADDED").map(rv).collect();
    let wanted: Vec<u64> = made.into_iter().filter(|&r| r > from).collect();
    assert_eq!(added, wanted, "{evs:?}");
    assert!(evs.iter().all(|e| rv(e) > from), "nothing up to {from}: {evs:?}");
}

/// A read at a version the store has not reached waits for it (kube's watch cache, up to
/// 3 s: another replica's write may be on its way) and is then kube's 504.
#[test]
fn a_read_at_a_future_version_waits_for_it_then_times_out() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    let now = create(&c, &cms, "first");
    // the version arrives while the read waits: answered then
    let read = get_meanwhile(&c, format!("{cms}/first?resourceVersion={}", now + 1), |r| r.status().as_u16());
    std::thread::sleep(std::time::Duration::from_millis(300));
    create(&c, &cms, "second");
    assert_eq!(read.join().unwrap(), 200);
    // so does a watch that asks for the current state first
    let now = create(&c, &cms, "third");
    let url = format!("{cms}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion={}", now + 1);
    let watch = get_meanwhile(&c, url, |r| (r.status().as_u16(), events(r)));
    std::thread::sleep(std::time::Duration::from_millis(300));
    create(&c, &cms, "fourth");
    let (code, evs) = watch.join().unwrap();
    assert_eq!(code, 200, "{evs:?}");
    let added: Vec<&str> =
        evs.iter().filter(|e| e["type"] == "ADDED").filter_map(|e| e["object"]["metadata"]["name"].as_str()).collect();
    assert_eq!(added, ["first", "fourth", "kube-root-ca.crt", "second", "third"], "{evs:?}");
    // it never arrives: kube's 504, after its wait
    let t = std::time::Instant::now();
    for url in [format!("{cms}/first?resourceVersion={}", now + 100), format!("{cms}?resourceVersion={}", now + 100)] {
        let r = c.get(url).send().unwrap();
        assert_eq!(r.status(), 504);
        let s: Value = r.json().unwrap();
        assert_eq!(s["reason"], "Timeout");
        assert_eq!(s["message"], format!("Too large resource version: {}, current: {}", now + 100, now + 1));
        assert_eq!(s["details"]["retryAfterSeconds"], 1);
    }
    assert!(t.elapsed() >= std::time::Duration::from_secs(6), "each waited 3 s: {:?}", t.elapsed());
    // with a continue token it is the 400 at once, not after the wait
    let t = std::time::Instant::now();
    let r = c.get(format!("{cms}?limit=1&continue=abc&resourceVersion={}", now + 100)).send().unwrap();
    assert_eq!(r.status(), 400);
    assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A watcher cut off as stalled ends without a BOOKMARK past what it was not sent: a bookmark
/// at the store's revision would have the client (client-go's reflector) watch again from
/// there and never see the changes it lost.
#[test]
fn a_cut_off_watch_claims_no_revision_it_did_not_send() {
    use std::io::Write;
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    let from = create(&c, &cms, "start");
    let pem = |f: &str| std::fs::read_to_string(fd.certs().join(f)).unwrap();
    let (cert, key) = (pem("admin.crt"), pem("admin.key"));
    let config = crate::raw::tls_config(&fd.certs().join("ca.crt"), Some((&cert, &key)), &[b"http/1.1"]);
    let mut tls = crate::raw::connect(fd.port, config).unwrap();
    let target = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={from}&timeoutSeconds=3"
    );
    tls.write_all(format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    tls.flush().unwrap();
    // the client reads nothing while 40 MiB of changes go by: more than its queue holds
    // (16 MiB) and the socket's buffers together, so it is cut off
    let big = "x".repeat(1 << 20);
    let mut last = 0;
    for i in 0..40 {
        let body = json!({"metadata": {"name": format!("big-{i}")}, "data": {"k": big}});
        let r = c.post(&cms).json(&body).send().unwrap();
        assert_eq!(r.status(), 201);
        last = r.json::<Value>().unwrap()["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_secs(4)); // past timeoutSeconds
    let body = crate::raw::read_response(&mut tls, std::time::Duration::from_secs(20)).body;
    let lines: Vec<Value> = body.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let sent = lines.iter().filter(|e| e["type"] == "ADDED").map(rv).max().unwrap_or(from);
    assert!(sent < last, "the watcher was not cut off: it got every change up to {last}");
    for b in lines.iter().filter(|e| e["type"] == "BOOKMARK") {
        assert!(rv(b) <= sent, "a BOOKMARK at {} after the last change sent ({sent}) of {last}", rv(b));
    }
}

/// An object leaving a watch's selection is DELETED for that watcher as it was when selected,
/// at the change's resourceVersion (kube's cacheWatcher sends the previous object): its new
/// state, which the watcher did not select, is not sent.
#[test]
fn an_object_leaving_the_selection_is_deleted_as_it_was() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    let body = json!({"metadata": {"name": "y", "labels": {"foo": "bar"}}, "data": {"k": "before"}});
    assert_eq!(c.post(&cms).json(&body).send().unwrap().status(), 201);
    let url = format!("{cms}?watch=1&labelSelector=foo%3Dbar&timeoutSeconds=2");
    let watch = get_meanwhile(&c, url, events);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let moved = json!({"metadata": {"labels": {"foo": "baz"}}, "data": {"k": "after"}});
    let r = c
        .patch(format!("{cms}/y"))
        .header("Content-Type", "application/merge-patch+json")
        .body(moved.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let at: u64 = r.json::<Value>().unwrap()["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let evs = watch.join().unwrap();
    let deleted: Vec<&Value> = evs.iter().filter(|e| e["type"] == "DELETED").collect();
    assert_eq!(deleted.len(), 1, "{evs:?}");
    let o = &deleted[0]["object"];
    assert_eq!((&o["metadata"]["labels"]["foo"], &o["data"]["k"]), (&json!("bar"), &json!("before")), "{o}");
    assert_eq!(rv(deleted[0]), at);
}

/// The embedded store's history is compacted as kube compacts etcd's (every
/// --etcd-compaction-interval, to the revision of the interval before): a rotated Secret's old
/// data is not readable at its old resourceVersion for good.
#[test]
fn the_embedded_stores_history_is_compacted() {
    let fd = Frontdoor::start(&["--etcd-compaction-interval", "300ms"]);
    let c = fd.admin_client();
    let secrets = fd.url("/api/v1/namespaces/default/secrets");
    let r =
        c.post(&secrets).json(&json!({"metadata": {"name": "s"}, "stringData": {"password": "OLD"}})).send().unwrap();
    assert_eq!(r.status(), 201);
    let old = r.json::<Value>().unwrap()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let rotate = json!({"stringData": {"password": "NEW"}}).to_string();
    let r = c.patch(format!("{secrets}/s")).header("Content-Type", "application/merge-patch+json").body(rotate);
    assert_eq!(r.send().unwrap().status(), 200);
    let at_old = format!("{secrets}?resourceVersion={old}&resourceVersionMatch=Exact");
    let status = || c.get(&at_old).send().unwrap().status().as_u16();
    crate::common::wait_until("the old revision compacted", std::time::Duration::from_secs(10), || status() == 410);
    let watch = c.get(format!("{secrets}?watch=1&resourceVersion={old}")).send().unwrap();
    let evs = events(watch);
    assert!(evs.iter().all(|e| e["type"] == "ERROR"), "nothing replayed from before the compaction: {evs:?}");
}

/// A paged list at a resourceVersion without resourceVersionMatch is served at exactly that
/// version, as kube's legacy reading of it (a plain list at one is "not older than").
#[test]
fn a_paged_list_at_a_version_is_that_version() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    let first = create(&c, &cms, "first");
    create(&c, &cms, "second");
    let page: Value = c.get(format!("{cms}?resourceVersion={first}&limit=10")).send().unwrap().json().unwrap();
    let names: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"first") && !names.contains(&"second"), "{page}");
    assert_eq!(page["metadata"]["resourceVersion"], first.to_string());
    let plain: Value = c.get(format!("{cms}?resourceVersion={first}")).send().unwrap().json().unwrap();
    assert!(plain.to_string().contains("\"second\""), "not older than: the latest");
}

/// A watch of one named object may select by field only that same name (kube's ListResource).
#[test]
fn a_named_watchs_field_selector_pins_its_name() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    create(&c, &fd.url("/api/v1/namespaces/default/configmaps"), "x");
    let watch = |selector: &str| {
        let url = format!("/api/v1/watch/namespaces/default/configmaps/x?timeoutSeconds=1&fieldSelector={selector}");
        c.get(fd.url(&url)).send().unwrap()
    };
    for bad in ["metadata.name%3Dy", "metadata.namespace%3Ddefault"] {
        let r = watch(bad);
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().unwrap()["message"], "fieldSelector metadata.name doesn't match requested name");
    }
    assert_eq!(watch("metadata.name%3Dx").status(), 200);
}

/// The largest timeoutSeconds is a watch that lasts (adding it to the clock panicked, and the
/// watch ended with nothing sent).
#[test]
fn the_largest_timeout_is_a_long_watch() {
    let fd = Frontdoor::start(&[]);
    let c = fd.admin_client();
    let cms = fd.url("/api/v1/namespaces/default/configmaps");
    let url = format!("{cms}?watch=1&timeoutSeconds={}", i64::MAX);
    let mut watch = c.get(url).send().unwrap();
    assert_eq!(watch.status(), 200);
    create(&c, &cms, "after");
    // the current objects first (no resourceVersion), then the one created
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(&mut watch));
    let added =
        lines.by_ref().take(10).map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()).find(|ev| {
            (ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()) == (Some("ADDED"), Some("after"))
        });
    assert!(added.is_some(), "the watch ended without the event");
    assert!(!fd.logs().contains("panic"), "{}", fd.logs());
}
