//! The queue set's dispatch order, limits and refusals.

use super::*;

fn level(queues: u32, hand: u32, qlen: u32, limit: u32) -> Arc<Level> {
    let l = Level::new("test", "uid", Some(Some(Queuing { queues, hand_size: hand, queue_length_limit: qlen })));
    l.set_limits(Limits { nominal: limit, lower: limit, upper: limit }, true);
    l
}

fn fm() -> Arc<FlowMetrics> {
    FlowMetrics::new("test", "fs")
}

fn now(a: Admission) -> Seat {
    match a {
        Admission::Now(s) => s,
        Admission::Queued(_) => panic!("queued"),
        Admission::Rejected(r) => panic!("rejected: {r}"),
    }
}

fn queued(a: Admission) -> Ticket {
    match a {
        Admission::Queued(t) => t,
        Admission::Now(_) => panic!("ran at once"),
        Admission::Rejected(r) => panic!("rejected: {r}"),
    }
}

/// A hash whose hand (of size 1) is queue `q` of `deck`.
fn flow_on(q: usize, deck: u32) -> u64 {
    (0..1000u64).find(|&h| shuffle::hand(h, deck, 1) == vec![q]).unwrap()
}

#[tokio::test]
async fn queues_then_dispatches_on_release() {
    let l = level(4, 2, 2, 2);
    let fs = fm();
    let a = now(l.admit(&fs, 1, 1, None));
    let _b = now(l.admit(&fs, 1, 1, None));
    let t = queued(l.admit(&fs, 1, 1, None));
    drop(a);
    let seat = t.wait(Duration::from_secs(1)).await.expect("dispatched");
    assert_eq!(l.limits().1, 2);
    drop(seat);
    now(l.admit(&fs, 1, 1, None));
}

#[tokio::test]
async fn queue_full_only_when_saturated_time_out_and_cancel() {
    let l = level(1, 1, 1, 1);
    let fs = fm();
    let _a = now(l.admit(&fs, 1, 1, None));
    let t = queued(l.admit(&fs, 1, 1, None));
    assert!(matches!(l.admit(&fs, 1, 1, None), Admission::Rejected(QUEUE_FULL)));
    assert_eq!(t.wait(Duration::from_millis(20)).await.unwrap_err(), TIME_OUT);
    let t = queued(l.admit(&fs, 1, 1, None));
    drop(t);
    assert_eq!(l.dump_row()[8], "1", "cancelled");
    assert_eq!(l.dump_row()[7], "1", "timed out");
    // with seats to spare a full queue still takes requests (kube refuses only when saturated)
    let l = level(1, 1, 1, 3);
    let _x = now(l.admit(&fs, 1, 1, None));
    let _y = now(l.admit(&fs, 1, 1, None));
    let _z = now(l.admit(&fs, 1, 1, None));
    let _w = queued(l.admit(&fs, 1, 1, None));
    assert!(matches!(l.admit(&fs, 1, 1, None), Admission::Rejected(QUEUE_FULL)));
}

#[test]
fn reject_levels_refuse_at_the_limit_and_wide_requests_run_alone() {
    let l = Level::new("r", "u", Some(None));
    l.set_limits(Limits { nominal: 3, lower: 3, upper: 3 }, true);
    let fs = fm();
    let wide = now(l.admit(&fs, 0, 10, None));
    assert!(matches!(l.admit(&fs, 0, 1, None), Admission::Rejected(CONCURRENCY_LIMIT)));
    drop(wide);
    let _one = now(l.admit(&fs, 0, 1, None));
    let _two = now(l.admit(&fs, 0, 2, None));
    assert!(matches!(l.admit(&fs, 0, 1, None), Admission::Rejected(CONCURRENCY_LIMIT)));
}

#[test]
fn initial_limit_and_widest_request_are_kubes() {
    // nominal 49, lendable 25 (global-default at 600): starts at 49 - 25/2 = 37 seats
    let l = Level::new("g", "u", Some(Some(Queuing { queues: 128, hand_size: 6, queue_length_limit: 50 })));
    l.set_limits(Limits { nominal: 49, lower: 24, upper: 649 }, true);
    assert_eq!(l.limits().1, 37);
    // max seats: max(1, min(ceil(0.15 × 49) = 8, 49 / 6 = 8)) = 8
    let fs = fm();
    let s = now(l.admit(&fs, 0, 10, None));
    assert_eq!(s.seats, 8);
    // a reconfiguration keeps the current limit
    l.set_limits(Limits { nominal: 3, lower: 1, upper: 33 }, false);
    assert_eq!(l.limits().1, 37);
    drop(s);
    let s = now(l.admit(&fs, 0, 10, None));
    assert_eq!(s.seats, 1, "3 nominal seats, hand 6: one seat at most");
}

#[tokio::test]
async fn the_queue_with_the_earliest_virtual_finish_goes_first() {
    // 2 queues, hand 1: flows land on fixed queues
    let l = level(2, 1, 100, 4);
    let fs = fm();
    let (heavy, light) = (flow_on(0, 2), flow_on(1, 2));
    // the heavy flow takes every seat: its queue's virtual start moves 4 requests' work ahead
    let mut running: Vec<Seat> = (0..4).map(|_| now(l.admit(&fs, heavy, 1, None))).collect();
    let heavy_waiting: Vec<Ticket> = (0..5).map(|_| queued(l.admit(&fs, heavy, 1, None))).collect();
    let lt = queued(l.admit(&fs, light, 1, None));
    running.remove(0);
    // the light flow's queue starts at the current virtual time: it goes first despite
    // arriving last
    let seat = lt.wait(Duration::from_millis(100)).await.expect("light flow served first");
    assert_eq!(seat.queue, Some(1));
    assert_eq!(l.dump_row()[3], "5", "the heavy flow's five still wait");
    drop(seat);
    let mut heavy_waiting = heavy_waiting.into_iter();
    heavy_waiting.next().unwrap().wait(Duration::from_millis(100)).await.expect("then the heavy one");
}

#[tokio::test]
async fn flows_alternate_by_virtual_finish_time() {
    // one seat, three flows on three queues: A queues 3, B and C 1 each, all while the seat
    // is held; the order is by virtual finish time, so B and C do not wait behind all of A
    let l = level(3, 1, 100, 1);
    let fs = fm();
    let (a, b, c) = (flow_on(0, 3), flow_on(1, 3), flow_on(2, 3));
    let first = now(l.admit(&fs, a, 1, None));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (name, hash) in [("a", a), ("a", a), ("a", a), ("b", b), ("c", c)] {
        let t = queued(l.admit(&fs, hash, 1, None));
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let seat = t.wait(Duration::from_secs(5)).await.unwrap();
            order.lock().unwrap().push(name);
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(seat);
        }));
    }
    drop(first);
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order[3..], ["a", "a"], "A's backlog goes last: {order:?}");
    assert!(order[..3].contains(&"b") && order[..3].contains(&"c"), "{order:?}");
}

#[test]
fn exempt_counts_seats_for_the_demand() {
    let l = Level::new("exempt", "u", None);
    l.set_limits(Limits::default(), true);
    let fs = fm();
    let held: Vec<Seat> = (0..5).map(|_| now(l.admit(&fs, 0, 2, None))).collect();
    let d = l.demand_period();
    assert_eq!(d.high_watermark, 10.0);
    drop(held);
    assert_eq!(l.demand_period().high_watermark, 10.0, "the period starts at the value then");
    assert_eq!(l.demand_period().high_watermark, 0.0);
}

fn req(user: &str, path: &str) -> Option<Arc<Request>> {
    Some(Arc::new(Request {
        flow_schema: Arc::from("fs"),
        distinguisher: user.to_string(),
        user: user.to_string(),
        info: Arc::new(crate::request_info::RequestInfo::resolve("GET", path, None).unwrap()),
        arrive: SystemTime::now(),
        fan_out: Default::default(),
    }))
}

#[tokio::test]
async fn the_dump_shows_waiting_then_executing_requests_until_they_finish() {
    let l = level(1, 1, 5, 1);
    let fs = fm();
    let a = now(l.admit(&fs, 1, 1, req("alice", "/api/v1/namespaces/n/pods/p")));
    let t = queued(l.admit(&fs, 1, 1, req("bob", "/version")));
    let _untracked = queued(l.admit(&fs, 1, 1, None));
    let rows = l.dump_requests();
    let facts: Vec<(i64, i64, &str, bool)> =
        rows.iter().map(|r| (r.queue, r.index, r.req.user.as_str(), r.started.is_some())).collect();
    assert_eq!(facts, [(0, 0, "bob", false), (0, -1, "alice", true)], "waiting first, then executing");
    assert_eq!(rows[1].req.info.name(), "p");
    drop(a);
    let b = t.wait(Duration::from_secs(1)).await.unwrap();
    let users: Vec<String> = l.dump_requests().iter().map(|r| r.req.user.clone()).collect();
    assert_eq!(users, ["bob"], "alice's seat is given back, bob's is shown executing");
    drop(b);
    assert!(l.dump_requests().iter().all(|r| r.req.user != "bob"));

    // a Reject level's executing requests have no queue
    let r = Level::new("reject", "uid", Some(None));
    r.set_limits(Limits { nominal: 2, lower: 2, upper: 2 }, true);
    let _c = now(r.admit(&fs, 1, 2, req("carol", "/healthz")));
    let rows = r.dump_requests();
    assert_eq!((rows[0].queue, rows[0].index, rows[0].seats), (-1, -1, 2));
}

#[tokio::test]
async fn queue_lengths_and_execution_times_are_observed_as_kube() {
    let l = level(1, 1, 5, 1);
    let fs = FlowMetrics::new("metrics-level", "metrics-schema");
    let a = now(l.admit(&fs, 1, 1, None));
    let _t1 = queued(l.admit(&fs, 1, 1, None));
    let _t2 = queued(l.admit(&fs, 1, 1, None));
    // every request joins its queue first (kube enqueues, then dispatches what fits)
    let lengths =
        crate::flowcontrol::apf::metrics::QUEUE_LENGTH.with_label_values(&["metrics-level", "metrics-schema"]);
    assert_eq!(lengths.get_sample_count(), 3);
    assert_eq!(lengths.get_sample_sum(), 1.0 + 1.0 + 2.0);
    let mut w = a;
    w.watch = true;
    std::thread::sleep(Duration::from_millis(20));
    drop(w);
    let exec = |t: &str| {
        crate::flowcontrol::apf::metrics::EXECUTION.with_label_values(&["metrics-level", "metrics-schema", t])
    };
    assert_eq!(exec("watch").get_sample_count(), 1);
    assert!(exec("watch").get_sample_sum() >= 0.02);
    assert_eq!(exec("regular").get_sample_count(), 0);
}

#[tokio::test]
async fn a_writes_seats_stay_taken_while_its_events_go_out() {
    let l = level(1, 1, 5, 1);
    let fs = fm();
    let mut a = now(l.admit(&fs, 1, 1, None));
    a.linger = Duration::from_millis(200);
    let t0 = Instant::now();
    drop(a);
    let t = queued(l.admit(&fs, 1, 1, None));
    let seat = t.wait(Duration::from_secs(2)).await.expect("dispatched once the linger ends");
    assert!(t0.elapsed() >= Duration::from_millis(200), "{:?}", t0.elapsed());
    drop(seat);
    now(l.admit(&fs, 1, 1, None));
}

#[test]
fn utilization_is_timed_as_kube_times_it() {
    let l = Level::new("ratio-level", "uid", Some(Some(Queuing { queues: 2, hand_size: 1, queue_length_limit: 5 })));
    l.set_server_seats(600);
    l.set_limits(Limits { nominal: 2, lower: 2, upper: 2 }, true);
    let fs = fm();
    let a = now(l.admit(&fs, 1, 1, None));
    std::thread::sleep(Duration::from_millis(30));
    drop(a);
    let family = |name: &str| {
        prometheus::gather().into_iter().find(|f| f.get_name() == name).unwrap_or_else(|| panic!("{name} registered"))
    };
    let series = |name: &str, phase: &str| {
        let f = family(name);
        let m = f
            .get_metric()
            .iter()
            .find(|m| {
                let l: Vec<(&str, &str)> = m.get_label().iter().map(|l| (l.get_name(), l.get_value())).collect();
                l.contains(&("priority_level", "ratio-level")) && (phase.is_empty() || l.contains(&("phase", phase)))
            })
            .cloned()
            .unwrap();
        m.get_histogram().clone()
    };
    // one of two seats for 30 ms: the integral is at least 0.5 × 30e6 ns, the 0.5 bucket holds it
    let seats = series("apiserver_flowcontrol_priority_level_seat_utilization", "executing");
    assert!(seats.get_sample_sum() >= 0.5 * 30e6, "{}", seats.get_sample_sum());
    let half = seats.get_bucket().iter().find(|b| b.get_upper_bound() == 0.5).unwrap();
    assert!(half.get_cumulative_count() >= 30_000_000);
    let waiting = series("apiserver_flowcontrol_priority_level_request_utilization", "waiting");
    assert!(waiting.get_sample_sum() < 0.01 * 30e6, "a request waits only as it is enqueued and dispatched");
    assert!(waiting.get_sample_count() >= 30_000_000);
    let demand = series("apiserver_flowcontrol_demand_seats", "");
    assert!(demand.get_sample_sum() >= 0.5 * 30e6);
}

/// The cost of one admission and release, with and without what dump_requests keeps
/// (`cargo test --release --lib admission_cost -- --ignored --nocapture`).
#[test]
#[ignore]
fn admission_cost() {
    let l = level(64, 8, 50, 1000);
    let fs = fm();
    // as the filter builds it: the request's RequestInfo is shared, its names copied
    let info =
        Arc::new(crate::request_info::RequestInfo::resolve("GET", "/api/v1/namespaces/a/configmaps", None).unwrap());
    let schema: Arc<str> = Arc::from("global-default");
    for tracked in [false, true, false, true] {
        let n = 200_000;
        let t = Instant::now();
        for i in 0..n {
            let r = tracked.then(|| {
                Arc::new(Request {
                    flow_schema: schema.clone(),
                    distinguisher: "alice".to_string(),
                    user: "alice".to_string(),
                    info: info.clone(),
                    arrive: SystemTime::now(),
                    fan_out: Default::default(),
                })
            });
            drop(now(l.admit(&fs, i, 1, r)));
        }
        println!("tracked={tracked}: {:?} per admission and release", t.elapsed() / n as u32);
    }
}

/// kube's fair-queuing clock gauges: R advances while a queue is active, and a dispatch from a
/// queue shows R, the request's virtual start and the bounds over the queues still waiting.
#[tokio::test]
async fn the_virtual_clock_and_dispatch_bounds_are_published() {
    let name = "clock-level";
    let l = Level::new(name, "uid", Some(Some(Queuing { queues: 2, hand_size: 1, queue_length_limit: 5 })));
    l.set_limits(Limits { nominal: 1, lower: 1, upper: 1 }, true);
    let g = |v: &prometheus::GaugeVec, labels: &[&str]| v.with_label_values(labels).get();
    assert_eq!(metrics::CONCURRENCY_LIMIT.with_label_values(&[name]).get(), 1);
    assert_eq!(metrics::CURRENT_LIMIT.with_label_values(&[name]).get(), 1);
    let fs = FlowMetrics::new(name, "fs");
    let a = now(l.admit(&fs, flow_on(0, 2), 1, None));
    assert_eq!(metrics::CONCURRENCY_IN_USE.with_label_values(&[name, "fs"]).get(), 1);
    // two waiters on two queues: the first dispatched leaves the other as the bounds
    let t0 = queued(l.admit(&fs, flow_on(0, 2), 1, None));
    std::thread::sleep(Duration::from_millis(20));
    let t1 = queued(l.admit(&fs, flow_on(1, 2), 1, None));
    let r_before = g(&metrics::CURRENT_R, &[name]);
    assert!(r_before > 0.0, "R ran while queue 0 was active: {r_before}");
    drop(a);
    // whichever is dispatched (the other, dropped, leaves its queue)
    let first = tokio::select! {
        s = t0.wait(Duration::from_secs(1)) => s,
        s = t1.wait(Duration::from_secs(1)) => s,
    }
    .expect("dispatched");
    let dispatch_r = g(&metrics::DISPATCH_R, &[name]);
    assert!(dispatch_r >= r_before, "dispatched at R {dispatch_r} >= {r_before}");
    let latest = g(&metrics::LATEST_S, &[name]);
    let (min, max) = (g(&metrics::NEXT_S_BOUNDS, &[name, "min"]), g(&metrics::NEXT_S_BOUNDS, &[name, "max"]));
    assert!(min <= latest && latest <= max, "the dispatched start {latest} lies within [{min}, {max}]");
    let dmin = g(&metrics::NEXT_DISCOUNTED_S_BOUNDS, &[name, "min"]);
    assert!(dmin <= min, "discounted by the work in progress: {dmin} <= {min}");
    assert_eq!(metrics::CONCURRENCY_IN_USE.with_label_values(&[name, "fs"]).get(), 1);
    drop(first);
    assert_eq!(metrics::CONCURRENCY_IN_USE.with_label_values(&[name, "fs"]).get(), 0);
}
