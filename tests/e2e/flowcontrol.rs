//! API Priority and Fairness through the real binary: a small priority level for anonymous
//! users queues, times out and refuses with kube's 429 while system:masters (exempt) goes
//! through; the X-Kubernetes-PF-* headers, the apiserver_flowcontrol_* metrics, the debug
//! dumps, a watch giving its seat back, and the configuration reloaded from its file.
//! Seats are held by slow readers of a large /metrics, as in `inflight.rs`.
use crate::common::*;
use crate::inflight::{metric, metrics_text, slow_reader, start, wait_metric, LARGE};
use std::time::{Duration, Instant};

const TINY_UID: &str = "0e5a1c1e-0000-4000-8000-000000000001";
const ANON_UID: &str = "0e5a1c1e-0000-4000-8000-000000000002";

/// A level of one seat with a single one-request queue, and anonymous users sent to it.
fn tiny_level(queue_length_limit: u32) -> String {
    format!(
        r#"apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: tiny, uid: {TINY_UID}}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {{type: Queue, queuing: {{queues: 1, handSize: 1, queueLengthLimit: {queue_length_limit}}}}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: anonymous, uid: {ANON_UID}}}
spec:
  matchingPrecedence: 500
  priorityLevelConfiguration: {{name: tiny}}
  distinguisherMethod: {{type: ByUser}}
  rules:
  - subjects: [{{kind: Group, group: {{name: "system:unauthenticated"}}}}]
    resourceRules: [{{verbs: ["*"], apiGroups: ["*"], resources: ["*"], clusterScope: true, namespaces: ["*"]}}]
    nonResourceRules: [{{verbs: ["*"], nonResourceURLs: ["*"]}}]
"#
    )
}

fn pf_headers(r: &reqwest::blocking::Response) -> (String, String) {
    let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (h("x-kubernetes-pf-flowschema-uid"), h("x-kubernetes-pf-prioritylevel-uid"))
}

#[test]
fn a_small_level_queues_times_out_and_refuses_while_masters_go_through() {
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("tiny.yaml");
    std::fs::write(&file, tiny_level(1)).unwrap();
    let f = file.to_str().unwrap();
    // 2 seats in all; tiny gets ceil(2 * 1/246) = 1, no borrowing; queue waits are 5s (20s / 4),
    // room for the dumps below on a loaded machine
    let (fd, mport) = start(&[
        "--enable-priority-and-fairness=true",
        "--flowcontrol-config",
        f,
        "--max-requests-inflight",
        "1",
        "--max-mutating-requests-inflight",
        "1",
        "--request-timeout",
        "20s",
    ]);
    assert_eq!(metric(mport, "apiserver_flowcontrol_nominal_limit_seats{priority_level=\"tiny\"}"), 1.0);
    assert_eq!(metric(mport, "apiserver_flowcontrol_upper_limit_seats{priority_level=\"tiny\"}"), 1.0);
    let anon = fd.anonymous_client();
    let r = anon.get(fd.url("/version")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(pf_headers(&r), (ANON_UID.to_string(), TINY_UID.to_string()));

    // the seat is taken; the next anonymous request queues, one more finds the queue full
    let held = slow_reader(&fd, LARGE);
    assert_eq!(held.status, "HTTP/1.1 200");
    wait_metric(
        mport,
        "apiserver_flowcontrol_current_executing_requests{flow_schema=\"anonymous\",priority_level=\"tiny\"}",
        1.0,
    );
    let url = fd.url("/version");
    let queued = {
        let anon = anon.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = anon.get(url).send().unwrap();
            (r.status().as_u16(), t.elapsed(), pf_headers(&r))
        })
    };
    wait_metric(
        mport,
        "apiserver_flowcontrol_current_inqueue_requests{flow_schema=\"anonymous\",priority_level=\"tiny\"}",
        1.0,
    );
    // kube's dump_requests: the waiting request in its queue, the executing one at index -1
    let path = "/debug/api_priority_and_fairness/dump_requests?includeRequestDetails=1";
    let text = fd.admin_client().get(fd.url(path)).send().unwrap().text().unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').map(str::trim).collect();
    assert_eq!(
        header,
        [
            "PriorityLevelName",
            "FlowSchemaName",
            "QueueIndex",
            "RequestIndexInQueue",
            "FlowDistingsher",
            "ArriveTime",
            "InitialSeats",
            "FinalSeats",
            "AdditionalLatency",
            "StartTime",
            "UserName",
            "Verb",
            "APIPath",
            "Namespace",
            "Name",
            "APIVersion",
            "Resource",
            "SubResource"
        ]
    );
    let rows: Vec<Vec<&str>> =
        text.lines().map(|l| l.split(',').map(str::trim).collect::<Vec<_>>()).filter(|r| r[0] == "tiny").collect();
    let waiting = rows.iter().find(|r| r[3] == "0").unwrap_or_else(|| panic!("{text}"));
    assert_eq!(waiting[..5], ["tiny", "anonymous", "0", "0", "system:anonymous"]);
    assert_eq!(
        waiting[6..],
        ["1", "0", "0s", "0001-01-01T00:00:00Z", "system:anonymous", "get", "/version", "", "", "", "", ""]
    );
    let executing = rows.iter().find(|r| r[3] == "-1").unwrap_or_else(|| panic!("{text}"));
    assert_eq!((executing[2], executing[12]), ("0", LARGE));
    assert!(executing[9].starts_with("20") && executing[9].ends_with('Z'), "a start time: {executing:?}");
    let plain =
        fd.admin_client().get(fd.url("/debug/api_priority_and_fairness/dump_requests")).send().unwrap().text().unwrap();
    assert!(plain.lines().next().unwrap().ends_with("StartTime"), "no details unless asked: {plain}");
    assert_eq!(
        metric(mport, "apiserver_flowcontrol_current_inqueue_seats{flow_schema=\"anonymous\",priority_level=\"tiny\"}"),
        1.0
    );
    let t = Instant::now();
    let r = anon.get(fd.url("/version")).send().unwrap();
    assert_eq!(r.status(), 429, "queue full");
    assert!(t.elapsed() < Duration::from_millis(900), "refused at once");
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(pf_headers(&r), (ANON_UID.to_string(), TINY_UID.to_string()), "a refused request is classified");
    let s: serde_json::Value = r.json().unwrap();
    assert_eq!((s["kind"].as_str(), s["reason"].as_str()), (Some("Status"), Some("TooManyRequests")));
    assert_eq!(s["message"], "Too many requests, please try again later.");

    // system:masters is exempt, and says so in its headers
    let r = fd.admin_client().get(fd.url("/version")).send().unwrap();
    assert_eq!(r.status(), 200);
    let (fs_uid, pl_uid) = pf_headers(&r);
    assert!(!fs_uid.is_empty() && !pl_uid.is_empty() && pl_uid != TINY_UID);
    let o = fd.kubectl(&["get", "--raw", "/version"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // the queued one gives up after a quarter of its deadline
    let (code, waited, headers) = queued.join().unwrap();
    assert_eq!(code, 429);
    assert!(waited >= Duration::from_millis(4900) && waited < Duration::from_secs(20), "{waited:?}");
    assert_eq!(headers.1, TINY_UID);

    // the dumps, behind authorization like kube's /debug paths (AlwaysAllow here: admin reads)
    let dump = fd.admin_client().get(fd.url("/debug/api_priority_and_fairness/dump_priority_levels")).send().unwrap();
    assert_eq!(dump.status(), 200);
    let text = dump.text().unwrap();
    assert!(text.starts_with("PriorityLevelName, "), "{text}");
    let tiny = text.lines().find(|l| l.starts_with("tiny,")).unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = tiny.split(',').map(str::trim).collect();
    assert_eq!(cells[5], "1", "one executing: {tiny}");
    assert_eq!(cells[7], "2", "two rejected: {tiny}");
    assert_eq!(cells[8], "1", "one timed out: {tiny}");
    assert!(text.lines().any(|l| l.starts_with("exempt,") && l.contains("<none>")), "{text}");
    let queues = fd.admin_client().get(fd.url("/debug/api_priority_and_fairness/dump_queues")).send().unwrap();
    let text = queues.text().unwrap();
    assert!(text.starts_with("PriorityLevelName, Index,"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("tiny,") && l.split(',').nth(4).map(str::trim) == Some("1")), "{text}");

    // the metrics, with kube's names and labels
    let m = metrics_text(mport);
    for reason in ["queue-full", "time-out"] {
        let series = format!(
            "apiserver_flowcontrol_rejected_requests_total{{flow_schema=\"anonymous\",priority_level=\"tiny\",reason=\"{reason}\"}} 1"
        );
        assert!(m.contains(&series), "{series}");
    }
    assert!(
        metric(
            mport,
            "apiserver_flowcontrol_dispatched_requests_total{flow_schema=\"exempt\",priority_level=\"exempt\"}"
        ) >= 1.0
    );
    assert!(m.contains("apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute=\"false\",flow_schema=\"anonymous\",priority_level=\"tiny\""));
    assert!(metric(mport, "apiserver_request_terminations_total{") >= 2.0);
    assert!(
        metric(
            mport,
            "apiserver_flowcontrol_work_estimated_seats_bucket{flow_schema=\"anonymous\",priority_level=\"tiny\",le=\"1\"}"
        ) >= 3.0
    );
    assert_eq!(metric(mport, "apiserver_flowcontrol_current_limit_seats{priority_level=\"tiny\"}"), 1.0);
    // kube's deprecated twins, and the level's fair-queuing clock (it ran while a queue was busy)
    assert_eq!(metric(mport, "apiserver_flowcontrol_request_concurrency_limit{priority_level=\"tiny\"}"), 1.0);
    assert_eq!(
        metric(
            mport,
            "apiserver_flowcontrol_request_concurrency_in_use{flow_schema=\"anonymous\",priority_level=\"tiny\"}"
        ),
        1.0
    );
    assert!(metric(mport, "apiserver_flowcontrol_current_r{priority_level=\"tiny\"}") > 0.0);

    // the seat comes back; a watch holds it only until its initial events are written
    drop(held);
    wait_metric(
        mport,
        "apiserver_flowcontrol_current_executing_requests{flow_schema=\"anonymous\",priority_level=\"tiny\"}",
        0.0,
    );
    let watch = anon.get(fd.url("/api/v1/namespaces?watch=true")).send().unwrap();
    assert_eq!(watch.status(), 200);
    assert_eq!(pf_headers(&watch).1, TINY_UID);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = anon.get(fd.url("/version")).send().unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the watch kept its seat");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(watch);
    // execution times (a watch's initial stage apart) and queue lengths seen on enqueue
    let series = |name: &str, extra: &str| {
        format!("apiserver_flowcontrol_{name}{{flow_schema=\"anonymous\",priority_level=\"tiny\"{extra}}}")
    };
    assert_eq!(metric(mport, &series("request_execution_seconds_count", ",type=\"watch\"")), 1.0);
    assert!(metric(mport, &series("request_execution_seconds_count", ",type=\"regular\"")) >= 3.0);
    assert!(metric(mport, &series("request_execution_seconds_sum", ",type=\"regular\"")) > 0.0);
    let m = metrics_text(mport);
    assert!(metric(mport, &series("request_queue_length_after_enqueue_count", "")) >= 3.0);
    assert!(m.contains(&series("request_queue_length_after_enqueue_bucket", ",le=\"1000\"")));
    // kube's timing ratio histograms: nanoseconds at each utilization, the level's seat held a while
    let tiny = "{phase=\"executing\",priority_level=\"tiny\"}";
    let util = metric(mport, &format!("apiserver_flowcontrol_priority_level_seat_utilization_sum{tiny}"));
    assert!(util >= 1e9, "one seat of one held for seconds: {util}");
    assert!(metric(mport, &format!("apiserver_flowcontrol_priority_level_request_utilization_count{tiny}")) >= 1e9);
    assert!(metric(mport, "apiserver_flowcontrol_demand_seats_sum{priority_level=\"tiny\"}") >= 1e9);
    // read-only requests waiting and executing, in nanoseconds (APF's denominator is 1); the
    // queued request was dispatched from its queue, which set the dispatch gauges
    let rw = |phase: &str| {
        let name = "apiserver_flowcontrol_read_vs_write_current_requests_sum";
        metric(mport, &format!("{name}{{phase=\"{phase}\",request_kind=\"readOnly\"}}"))
    };
    assert!(rw("executing") >= 1e9, "a read held for seconds");
    assert!(rw("waiting") >= 1e7, "a read queued while it was held");
    let dispatch_r = metric(mport, "apiserver_flowcontrol_dispatch_r{priority_level=\"tiny\"}");
    assert!(dispatch_r > 0.0, "{dispatch_r}");
    let latest_s = metric(mport, "apiserver_flowcontrol_latest_s{priority_level=\"tiny\"}");
    let next_max = metric(mport, "apiserver_flowcontrol_next_s_bounds{bound=\"max\",priority_level=\"tiny\"}");
    assert!(latest_s > 0.0 && latest_s <= next_max, "{latest_s} within the bounds up to {next_max}");
}

#[test]
fn the_configuration_reloads_from_its_file_and_a_bad_file_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies").join("flowcontrol");
    std::fs::create_dir_all(&policies).unwrap();
    let file = policies.join("levels.yaml");
    std::fs::write(&file, "# nothing yet\n").unwrap();
    // no flag: flowcontrol/ in --policy-dir; default authorization (RBAC, no grants here)
    let fd = Frontdoor::start_in(dir, &[]);
    let anon = fd.anonymous_client();
    let r = anon.get(fd.url("/version")).send().unwrap();
    let (fs_before, pl_before) = pf_headers(&r);
    assert!(!fs_before.is_empty() && fs_before != ANON_UID && pl_before != TINY_UID);

    std::fs::write(&file, tiny_level(10)).unwrap();
    wait_until("anonymous requests are classified by the new schema", Duration::from_secs(15), || {
        pf_headers(&anon.get(fd.url("/version")).send().unwrap()) == (ANON_UID.to_string(), TINY_UID.to_string())
    });

    let reloads = |result: &str| -> f64 {
        let text = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
        let series = format!("frontdoor_policy_reload_total{{policy=\"flowcontrol\",result=\"{result}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(series.as_str())?.parse().ok()).unwrap_or(0.0)
    };
    assert!(reloads("success") >= 1.0);
    std::fs::write(&file, "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: x}\nspec: {matchingPrecedence: 0}\n").unwrap();
    wait_until("the bad file is counted", Duration::from_secs(15), || reloads("failure") >= 1.0);
    assert_eq!(pf_headers(&anon.get(fd.url("/version")).send().unwrap()).1, TINY_UID, "the old configuration stays");

    // the dumps are authorized like any non-resource path: anonymous is forbidden here
    for dump in ["dump_requests", "dump_priority_levels"] {
        let r = anon.get(fd.url(&format!("/debug/api_priority_and_fairness/{dump}"))).send().unwrap();
        assert_eq!(r.status(), 403, "{dump}");
    }
    let path = "/debug/api_priority_and_fairness/dump_queues";
    assert_eq!(anon.get(fd.url(path)).send().unwrap().status(), 403);
    let text = fd.admin_client().get(fd.url(path)).send().unwrap().text().unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("catch-all,") && l.contains("<none>")),
        "a Reject level has no queues: {text}"
    );
}

#[test]
fn plain_max_in_flight_sends_no_pf_headers() {
    let fd = Frontdoor::start(&["--enable-priority-and-fairness=false"]);
    let r = fd.admin_client().get(fd.url("/version")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(pf_headers(&r), (String::new(), String::new()));
    let r = fd.admin_client().get(fd.url("/debug/api_priority_and_fairness/dump_priority_levels")).send().unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn the_store_serves_kubes_bootstrap_objects_and_applied_ones_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("tiny.yaml");
    let yaml = tiny_level(10).replace(&format!(", uid: {TINY_UID}"), "").replace(&format!(", uid: {ANON_UID}"), "");
    std::fs::write(&objects, yaml).unwrap();
    let dangling = dir.path().join("dangling.yaml");
    std::fs::write(
        &dangling,
        "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: dangling}\nspec:\n  matchingPrecedence: 100\n  priorityLevelConfiguration: {name: missing}\n  rules:\n  - subjects: [{kind: Group, group: {name: \"system:unauthenticated\"}}]\n    nonResourceRules: [{verbs: [\"*\"], nonResourceURLs: [\"*\"]}]\n",
    )
    .unwrap();
    let o = objects.to_str().unwrap().to_string();
    let d = dangling.to_str().unwrap().to_string();
    let fd = Frontdoor::start_in(dir, &[]);

    // kube's bootstrap objects are there, annotated for the ensurer, the schemas with their status
    let names = fd.kubectl_ok(&["get", "flowschemas", "-o", "jsonpath={.items[*].metadata.name}"]);
    for n in ["exempt", "probes", "system-leader-election", "endpoint-controller", "global-default", "catch-all"] {
        assert!(names.split_whitespace().any(|x| x == n), "{n} in {names}");
    }
    let levels = fd.kubectl_ok(&["get", "prioritylevelconfigurations", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(levels.split_whitespace().count(), 8, "{levels}");
    let shares = fd.kubectl_ok(&[
        "get",
        "prioritylevelconfiguration",
        "workload-low",
        "-o",
        "jsonpath={.spec.limited.nominalConcurrencyShares}/{.spec.limited.lendablePercent}/{.metadata.annotations.apf\\.kubernetes\\.io/autoupdate-spec}",
    ]);
    assert_eq!(shares.trim(), "100/90/true");
    let found = fd.kubectl_ok(&[
        "get",
        "flowschema",
        "global-default",
        "-o",
        "jsonpath={.status.conditions[0].type}/{.status.conditions[0].status}/{.status.conditions[0].reason}",
    ]);
    assert_eq!(found.trim(), "Dangling/False/Found");

    // an applied level and schema take effect
    fd.kubectl_ok(&["apply", "-f", &o]);
    let uid = fd.kubectl_ok(&["get", "prioritylevelconfiguration", "tiny", "-o", "jsonpath={.metadata.uid}"]);
    assert!(!uid.trim().is_empty());
    let anon = fd.anonymous_client();
    wait_until("anonymous requests go to the applied level", Duration::from_secs(10), || {
        pf_headers(&anon.get(fd.url("/version")).send().unwrap()).1 == uid.trim()
    });

    // a schema naming a missing level is Dangling and matches nothing
    fd.kubectl_ok(&["apply", "-f", &d]);
    let cond = fd.kubectl_ok(&["get", "flowschema", "dangling", "-o", "jsonpath={.status.conditions[0]}"]);
    let cond: serde_json::Value = serde_json::from_str(&cond).unwrap();
    assert_eq!(cond["type"], "Dangling");
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "NotFound");
    assert_eq!(
        cond["message"],
        "This FlowSchema references the PriorityLevelConfiguration object named \"missing\" but there is no such object"
    );
    assert!(cond["lastTransitionTime"].is_string());
    assert_eq!(pf_headers(&anon.get(fd.url("/version")).send().unwrap()).1, uid.trim(), "still the tiny level");
    // kubectl prints kube's columns
    let table = fd.kubectl_ok(&["get", "flowschema", "dangling", "global-default"]);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        ["NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE", "MISSINGPL"],
        "{table}"
    );
    let row = |name: &str| rows.iter().find(|r| r[0] == name).cloned().unwrap_or_else(|| panic!("{table}"));
    assert_eq!(
        (row("dangling")[1], row("dangling")[2], row("dangling")[3], row("dangling")[5]),
        ("missing", "100", "<none>", "True")
    );
    assert_eq!((row("global-default")[3], row("global-default")[5]), ("ByUser", "False"));
    let levels = fd.kubectl_ok(&["get", "prioritylevelconfiguration", "catch-all", "workload-low"]);
    assert!(levels.starts_with("NAME") && levels.contains("NOMINALCONCURRENCYSHARES"), "{levels}");
    let wl: Vec<&str> = levels.lines().find(|l| l.starts_with("workload-low")).unwrap().split_whitespace().collect();
    assert_eq!(wl[1..6], ["Limited", "100", "128", "6", "50"], "{levels}");

    fd.kubectl_ok(&["delete", "flowschema", "anonymous"]);
    wait_until("and leave it once its schema is deleted", Duration::from_secs(10), || {
        pf_headers(&anon.get(fd.url("/version")).send().unwrap()).1 != uid.trim()
    });
}

/// kube-aggregator's RequestDelegated: a watch handed to a backend gives its seat back at once
/// (backend_faults.rs checks this for a backend that never answers).
#[test]
fn a_proxied_watch_gives_its_seat_back_when_it_is_delegated() {
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("tiny.yaml");
    std::fs::write(&file, tiny_level(1)).unwrap();
    let s = crate::aggregation::setup(&[
        "--flowcontrol-config",
        file.to_str().unwrap(),
        "--authorization-mode",
        "AlwaysAllow",
        "--max-requests-inflight",
        "1",
        "--max-mutating-requests-inflight",
        "1",
    ]);
    let anon = s.fd.anonymous_client();
    // the backend holds the watch open after its first event
    let watch = anon.get(s.fd.url(&format!("{}?watch=true", crate::aggregation::FLUNDERS))).send().unwrap();
    assert_eq!(watch.status(), 200);
    assert_eq!(pf_headers(&watch).1, TINY_UID, "proxied responses carry the headers");
    // tiny's only seat is free again: a list goes through instead of timing out in the queue
    let r = anon.get(s.fd.url(crate::aggregation::FLUNDERS)).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(pf_headers(&r), (ANON_UID.to_string(), TINY_UID.to_string()));
    s.be.release();
    drop(watch);
}

/// A Reject level of one seat (no lending, no borrowing) and anonymous users sent to it.
const JAIL: &str = r#"apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: jail}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {type: Reject}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: jail}
spec:
  matchingPrecedence: 400
  priorityLevelConfiguration: {name: jail}
  rules:
  - subjects: [{kind: Group, group: {name: "system:unauthenticated"}}]
    resourceRules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], clusterScope: true, namespaces: ["*"]}]
    nonResourceRules: [{verbs: ["*"], nonResourceURLs: ["*"]}]
"#;

#[test]
fn kubectl_writes_are_validated_as_kube_and_take_effect_on_the_next_request() {
    // 2 seats in all: jail gets ceil(2 * 1/247) = 1
    let (fd, mport) = start(&[
        "--enable-priority-and-fairness=true",
        "--max-requests-inflight",
        "1",
        "--max-mutating-requests-inflight",
        "1",
    ]);
    let dir = tempfile::tempdir().unwrap();

    // invalid objects are refused with kube's 422 and texts, not stored
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: bad}\nspec:\n  type: Limited\n  limited: {limitResponse: {type: Queue, queuing: {queues: 8, handSize: 9}}}\n",
    )
    .unwrap();
    let o = fd.kubectl(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("The PriorityLevelConfiguration \"bad\" is invalid: spec.limited.limitResponse.queuing.handSize: Invalid value: 9: should not be greater than queues (8)"),
        "{}",
        stderr(&o)
    );
    let r = fd
        .admin_client()
        .post(fd.url("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas"))
        .json(&serde_json::json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
            "metadata": {"name": "bad"},
            "spec": {"matchingPrecedence": 1, "priorityLevelConfiguration": {"name": "x"},
                     "rules": [{"subjects": [{"kind": "User"}], "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["healthz"]}]}]}
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    let s: serde_json::Value = r.json().unwrap();
    assert_eq!(s["reason"], "Invalid");
    assert_eq!(
        s["message"],
        "FlowSchema.flowcontrol.apiserver.k8s.io \"bad\" is invalid: [spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may have matchingPrecedence 1, spec.rules[0].subjects[0].user: Required value: user is required when subject kind is 'User', spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: \"healthz\": must start with slash]"
    );
    assert_eq!(s["details"]["causes"][1]["field"], "spec.rules[0].subjects[0].user");
    assert_eq!(s["details"]["causes"][1]["reason"], "FieldValueRequired");
    let o = fd.kubectl(&["get", "flowschema", "bad"]);
    assert!(!o.status.success(), "not stored");
    // a mandatory object keeps kube's spec
    let o = fd.kubectl(&[
        "patch",
        "flowschema",
        "catch-all",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"matchingPrecedence":5000}}"#,
    ]);
    assert!(stderr(&o).contains("spec of 'catch-all' must equal the fixed value"), "{}", stderr(&o));
    // defaults are applied and shown, as kube's
    let d = dir.path().join("defaulted.yaml");
    std::fs::write(&d, "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: defaulted}\nspec: {type: Limited, limited: {limitResponse: {type: Queue, queuing: {}}}}\n").unwrap();
    fd.kubectl_ok(&["apply", "-f", d.to_str().unwrap()]);
    let got = fd.kubectl_ok(&["get", "prioritylevelconfiguration", "defaulted", "-o", "jsonpath={.spec.limited.nominalConcurrencyShares}/{.spec.limited.lendablePercent}/{.spec.limited.limitResponse.queuing}"]);
    assert_eq!(got.trim(), r#"30/0/{"handSize":8,"queueLengthLimit":50,"queues":64}"#);

    // a schema sending anonymous users to a Reject level applies to their very next request
    let jail = dir.path().join("jail.yaml");
    std::fs::write(&jail, JAIL).unwrap();
    fd.kubectl_ok(&["apply", "-f", jail.to_str().unwrap()]);
    let uid = fd.kubectl_ok(&["get", "prioritylevelconfiguration", "jail", "-o", "jsonpath={.metadata.uid}"]);
    let anon = fd.anonymous_client();
    let r = anon.get(fd.url("/version")).send().unwrap();
    assert_eq!((r.status().as_u16(), pf_headers(&r).1), (200, uid.trim().to_string()), "no resync awaited");
    let held = slow_reader(&fd, LARGE);
    assert_eq!(held.status, "HTTP/1.1 200");
    wait_metric(
        mport,
        "apiserver_flowcontrol_current_executing_requests{flow_schema=\"jail\",priority_level=\"jail\"}",
        1.0,
    );
    let r = anon.get(fd.url("/version")).send().unwrap();
    assert_eq!(r.status(), 429, "the Reject level is full");
    assert_eq!(pf_headers(&r).1, uid.trim());
    // the admin is exempt, and deleting the schema frees the anonymous users at once
    fd.kubectl_ok(&["delete", "flowschema", "jail"]);
    let r = anon.get(fd.url("/version")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(pf_headers(&r).1, uid.trim());
    drop(held);
}

#[test]
fn bootstrap_objects_an_older_version_left_are_removed_unless_the_admin_took_them_over() {
    let mut fd = Frontdoor::start(&[]);
    let schema = |name: &str, auto: &str| {
        format!(
            "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {{name: {name}, annotations: {{apf.kubernetes.io/autoupdate-spec: \"{auto}\"}}}}\nspec:\n  matchingPrecedence: 900\n  priorityLevelConfiguration: {{name: global-default}}\n  rules:\n  - subjects: [{{kind: User, user: {{name: nobody}}}}]\n    nonResourceRules: [{{verbs: [\"*\"], nonResourceURLs: [\"*\"]}}]\n"
        )
    };
    let f = fd.dir.path().join("old.yaml");
    std::fs::write(&f, format!("{}---\n{}", schema("retired-suggestion", "true"), schema("taken-over", "false")))
        .unwrap();
    fd.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    let names = fd_names(&fd);
    assert!(names.contains("retired-suggestion") && names.contains("taken-over"), "{names}");

    // the ensurer runs at start (and every minute): a restart on the same data
    let port = fd.port;
    let dir = std::mem::replace(&mut fd.dir, tempfile::tempdir().unwrap());
    drop(fd);
    let fd = Frontdoor::start_on(dir, port, &[], Some("info"));
    let names = fd_names(&fd);
    let names: Vec<&str> = names.split_whitespace().collect();
    assert!(!names.contains(&"retired-suggestion"), "{names:?}");
    assert!(names.contains(&"taken-over") && names.contains(&"global-default"), "{names:?}");
}

fn fd_names(fd: &Frontdoor) -> String {
    fd.kubectl_ok(&["get", "flowschemas", "-o", "jsonpath={.items[*].metadata.name}"])
}

#[test]
fn a_write_followed_by_many_watches_costs_seats_for_its_events() {
    let fd = Frontdoor::start(&["--authorization-mode", "AlwaysAllow"]);
    let admin = fd.admin_client();
    let metric = |series: &str| -> f64 {
        let text = admin.get(fd.url("/metrics")).send().unwrap().text().unwrap();
        text.lines().filter(|l| l.starts_with(series)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    // 20 watches of all configmaps (exempt ones count too) and 5 of namespace a's
    let mut watches = Vec::new();
    for i in 0..25 {
        let path = if i < 20 { "/api/v1/configmaps?watch=true" } else { "/api/v1/namespaces/a/configmaps?watch=true" };
        let r = admin.get(fd.url(path)).send().unwrap();
        assert_eq!(r.status(), 200);
        watches.push(r);
    }
    let _b = admin.get(fd.url("/api/v1/namespaces/b/configmaps?watch=true")).send().unwrap();
    fd.kubectl_ok(&["create", "namespace", "a"]);
    // alice (impersonated: APF classifies the effective user) lands in global-default
    let alice = |b: reqwest::blocking::RequestBuilder| b.header("Impersonate-User", "alice").send().unwrap();
    let r = alice(
        admin
            .post(fd.url("/api/v1/namespaces/a/configmaps"))
            .json(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
    );
    assert_eq!(r.status(), 201);
    let flow = "{flow_schema=\"global-default\",priority_level=\"global-default\"}";
    // 25 interested watches (not b's): ceil(25 / 10) = 3 seats
    assert_eq!(metric(&format!("apiserver_flowcontrol_watch_count_samples_sum{flow}")), 25.0);
    assert_eq!(metric(&format!("apiserver_flowcontrol_work_estimated_seats_sum{flow}")), 3.0);
    // a read notifies nobody and is not sampled; the watches, once gone, are forgotten
    assert_eq!(alice(admin.get(fd.url("/api/v1/namespaces/a/configmaps/c"))).status(), 200);
    assert_eq!(metric(&format!("apiserver_flowcontrol_watch_count_samples_count{flow}")), 1.0);
    drop(watches);
    wait_until("the watches are forgotten", Duration::from_secs(10), || {
        let r =
            alice(admin.post(fd.url("/api/v1/namespaces/a/configmaps")).json(
                &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "c"}}),
            ));
        assert_eq!(r.status(), 201);
        let none = "{flow_schema=\"global-default\",priority_level=\"global-default\",le=\"0\"}";
        metric(&format!("apiserver_flowcontrol_watch_count_samples_bucket{none}")) >= 1.0
    });
}

/// A queued request whose client leaves is withdrawn at once, counted as cancelled, and never
/// runs (kube's wait ends with the request's context); it held its queue's place until its
/// wait limit, and then ran for no one.
#[test]
fn a_queued_request_whose_client_left_leaves_its_queue() {
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("tiny.yaml");
    std::fs::write(&file, tiny_level(2)).unwrap();
    let (fd, mport) = start(&[
        "--enable-priority-and-fairness=true",
        "--flowcontrol-config",
        file.to_str().unwrap(),
        "--max-requests-inflight",
        "1",
        "--max-mutating-requests-inflight",
        "1",
        "--request-timeout",
        "60s",
    ]);
    let held = slow_reader(&fd, LARGE);
    assert_eq!(held.status, "HTTP/1.1 200");
    let level = "flow_schema=\"anonymous\",priority_level=\"tiny\"";
    wait_metric(mport, &format!("apiserver_flowcontrol_current_executing_requests{{{level}}}"), 1.0);
    let config = crate::raw::tls_config(&fd.certs().join("ca.crt"), None, &[b"http/1.1"]);
    let mut tls = crate::raw::connect(fd.port, config).unwrap();
    use std::io::Write;
    tls.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    tls.flush().unwrap();
    wait_metric(mport, &format!("apiserver_flowcontrol_current_inqueue_requests{{{level}}}"), 1.0);
    drop(tls);
    // within its 15 s wait limit: the client's leaving ended it
    wait_metric(mport, &format!("apiserver_flowcontrol_current_inqueue_requests{{{level}}}"), 0.0);
    let cancelled = format!("apiserver_flowcontrol_rejected_requests_total{{{level},reason=\"cancelled\"}}");
    assert_eq!(metric(mport, &cancelled), 1.0);
    drop(held);
}
