//! Watch and list fidelity as kube's: a BOOKMARK carries the store's current resourceVersion
//! (not only the last event this watch saw); `sendInitialEvents` needs
//! `resourceVersionMatch=NotOlderThan` (kube's 422 texts), sends the current state whatever
//! the resourceVersion, and ends it with a bookmark annotated `k8s.io/initial-events-end`;
//! an expired continue token is a 410 with a fresh token that goes on from the latest state.

use crate::common::{watch_events as events, Frontdoor};
use serde_json::{json, Value};

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
    let watch = {
        let (c, url) =
            (c.clone(), format!("{cms}?watch=1&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion=0"));
        std::thread::spawn(move || events(c.get(url).send().unwrap()))
    };
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
