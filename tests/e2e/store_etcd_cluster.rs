//! Two frontdoor replicas on a 3-member etcd cluster (Debian's etcd-server on loopback,
//! statically bootstrapped), each given all three endpoints:
//! - concurrent writers through both replicas while an etcd member is killed with `kill -9`
//!   (the leader first, then a follower; ETCD_KILLS sets how many, the ignored test runs 10): a
//!   write answered 5xx or not at all is retried as a kube client does, every acknowledged write
//!   is there afterwards on both replicas, nothing is half written, and writes keep succeeding
//!   after the kill; none is refused for want of a connection to the dead member (frontdoor
//!   sends what never reached etcd again). A write etcd had in flight to a dead leader is
//!   answered by etcd only after its request timeout (7 s: 5 s plus two election timeouts),
//!   as kube-apiserver sees it too;
//! - watches opened on both replicas before the kills see every write once, in order, with
//!   strictly increasing resourceVersions, and never end;
//! - all of etcd stopped and restarted: both replicas report it in /readyz and recover, their
//!   mirrors and watches resume without a relist;
//! - a replica cut off (SIGSTOP) while etcd restarts and compacts past its revision: on SIGCONT
//!   its mirror relists, its watches end, a watch resumed at the old resourceVersion gets kube's
//!   410 Gone ("too old resource version"), and the relist shows every object;
//! - the relist is a quorum read: a member cut off from the quorum, which would answer a
//!   serializable read, cannot start a replica.

use crate::common::etcd::EtcdCluster;
use crate::common::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn body(name: &str, seq: u64) -> Value {
    // both fields in one write: a torn write would show them apart
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
           "data": {"seq": seq.to_string(), "copy": seq.to_string()}})
}

/// An admin client for a replica without a whole-request timeout (watches outlive 30 s) and
/// one for writes with a bound a kube client would use.
fn clients(fd: &Frontdoor) -> (Client, Client) {
    let mut pem = std::fs::read(fd.certs().join("admin.crt")).unwrap();
    pem.extend(std::fs::read(fd.certs().join("admin.key")).unwrap());
    let id = reqwest::Identity::from_pem(&pem).unwrap();
    let watch = client_builder(&fd.certs()).identity(id.clone()).timeout(None).build().unwrap();
    let write = client_builder(&fd.certs()).identity(id).timeout(Duration::from_secs(15)).build().unwrap();
    (watch, write)
}

/// A write's kind, as the watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    fn event(self) -> &'static str {
        match self {
            Op::Create => "ADDED",
            Op::Update => "MODIFIED",
            Op::Delete => "DELETED",
        }
    }
}

#[derive(Default)]
struct Ledger {
    /// Per key, its acknowledged writes in order: (op, seq).
    acked: BTreeMap<String, Vec<(Op, u64)>>,
    /// Acknowledged writes per replica after the last kill, and attempts answered 5xx or not at all.
    after_kill: [usize; 2],
    first_after_kill: [Option<Instant>; 2],
    retried: usize,
    /// Why attempts were retried: the code and the start of the message, counted.
    reasons: BTreeMap<String, usize>,
    writes: usize,
    failures: Vec<String>,
}

impl Ledger {
    /// Each key's last acknowledged state: its seq, or None when deleted.
    fn state(&self) -> BTreeMap<String, Option<u64>> {
        self.acked
            .iter()
            .map(|(k, ops)| {
                let (op, seq) = *ops.last().unwrap();
                (k.clone(), (op != Op::Delete).then_some(seq))
            })
            .collect()
    }
}

/// Sends one write as a kube client does: an answer of 5xx (an election, etcd unreachable) or
/// none at all is retried; a create retried into 409 AlreadyExists, or a delete into 404, means
/// an earlier attempt landed, which is then checked to be whole. Err: a failure to report.
fn write(c: &Client, base: &str, op: Op, name: &str, seq: u64, retried: &mut Vec<String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let req = match op {
            Op::Create => c.post(format!("{base}{CMS}")).json(&body(name, seq)),
            Op::Update => c.put(format!("{base}{CMS}/{name}")).json(&body(name, seq)),
            Op::Delete => c.delete(format!("{base}{CMS}/{name}")),
        };
        let answer = req.send().and_then(|r| {
            let code = r.status().as_u16();
            r.text().map(|t| (code, t))
        });
        match answer {
            Ok((200 | 201, _)) => return Ok(()),
            Ok((409, _)) if op == Op::Create && attempts > 1 => {
                let now: Value =
                    c.get(format!("{base}{CMS}/{name}")).send().and_then(|r| r.json()).map_err(|e| e.to_string())?;
                let (want, data) = (seq.to_string(), &now["data"]);
                return if data["seq"].as_str() == Some(&want) && data["copy"].as_str() == Some(&want) {
                    Ok(())
                } else {
                    Err(format!("{name}: a retried create found {now}"))
                };
            }
            Ok((404, _)) if op == Op::Delete && attempts > 1 => return Ok(()),
            Ok((code, text)) if code < 500 => return Err(format!("{op:?} {name}: {code} {text}")),
            Ok((code, text)) => {
                let message =
                    serde_json::from_str::<Value>(&text).ok().and_then(|v| v["message"].as_str().map(String::from));
                let message = message.unwrap_or(text);
                retried.push(format!("{code} {}", message.chars().take(160).collect::<String>()));
            }
            Err(e) => {
                retried.push(if e.is_timeout() { "no answer: timeout".into() } else { "no answer: connection".into() })
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{op:?} {name}: no success in 40 s (last: {:?})", retried.last()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One writer through one replica, on its own keys, until `stop`.
fn writer(replica: usize, id: usize, base: String, c: Client, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let (mut live, mut next, mut seq) = (Vec::<String>::new(), 0, 0u64);
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let stamp = (replica * 10 + id) as u64 * 1_000_000 + seq;
        let (op, key) = if live.len() < 2 || seq.is_multiple_of(4) {
            next += 1;
            (Op::Create, format!("t-w{replica}{id}-{next}"))
        } else if seq.is_multiple_of(3) {
            (Op::Delete, live.remove(seq as usize % live.len()))
        } else {
            (Op::Update, live[seq as usize % live.len()].clone())
        };
        let mut retried = Vec::new();
        let r = write(&c, &base, op, &key, stamp, &mut retried);
        let mut l = ledger.lock().unwrap();
        l.retried += retried.len();
        for reason in retried {
            *l.reasons.entry(reason).or_default() += 1;
        }
        match r {
            Ok(()) => {
                l.writes += 1;
                if l.after_kill[replica] == 0 {
                    l.first_after_kill[replica] = Some(Instant::now());
                }
                l.after_kill[replica] += 1;
                l.acked.entry(key.clone()).or_default().push((op, stamp));
                if op == Op::Create {
                    live.push(key);
                }
            }
            Err(e) => {
                l.failures.push(e);
                return;
            }
        }
    }
}

/// What one watcher saw, across the streams it opened (client-go's reflector: a stream that
/// ends is resumed from the last resourceVersion; a 410 relists and watches from the list's).
#[derive(Default)]
struct Seen {
    /// (type, name, seq, rv) of our objects, in stream order.
    events: Vec<(String, String, u64, u64)>,
    streams: usize,
    /// The 410 Gone messages a resumed watch got.
    gone: Vec<String>,
    /// Each relist: its resourceVersion, our objects' seqs, and how many events came before it.
    relists: Vec<(u64, BTreeMap<String, u64>, usize)>,
    last_rv: u64,
    /// Events whose resourceVersion did not increase, and other surprises.
    violations: Vec<String>,
}

fn seq_of(o: &Value) -> u64 {
    o["data"]["seq"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn list(c: &Client, base: &str) -> (u64, BTreeMap<String, u64>) {
    let v: Value = c.get(format!("{base}{CMS}")).send().unwrap().json().unwrap();
    let items = v["items"].as_array().unwrap().iter();
    let ours = items
        .filter_map(|o| Some((o["metadata"]["name"].as_str()?.to_string(), o)))
        .filter(|(n, _)| n.starts_with("t-"))
        .map(|(n, o)| {
            assert_eq!(o["data"]["seq"], o["data"]["copy"], "{n} is half written: {o}");
            (n, seq_of(o))
        });
    (rv_of(&v), ours.collect())
}

fn watcher(c: Client, base: String, rv: u64, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    seen.lock().unwrap().last_rv = rv;
    while !stop.load(Ordering::Relaxed) {
        let from = seen.lock().unwrap().last_rv;
        let url = format!("{base}{CMS}?watch=1&resourceVersion={from}&allowWatchBookmarks=true&timeoutSeconds=600");
        let Ok(r) = c.get(url).send() else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        seen.lock().unwrap().streams += 1;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let Ok(ev) = serde_json::from_str::<Value>(&line) else { break };
            let (t, o) = (ev["type"].as_str().unwrap_or("").to_string(), &ev["object"]);
            let mut s = seen.lock().unwrap();
            if t == "ERROR" {
                let message = o["message"].as_str().unwrap_or("").to_string();
                if o["code"] != 410 {
                    s.violations.push(format!("watch from {from}: {ev}"));
                }
                s.gone.push(message);
                drop(s);
                let (rv, objects) = list(&c, &base);
                let mut s = seen.lock().unwrap();
                let n = s.events.len();
                s.relists.push((rv, objects, n));
                s.last_rv = rv;
                break;
            }
            let rv = rv_of(o);
            if t == "BOOKMARK" {
                s.last_rv = s.last_rv.max(rv);
                continue;
            }
            if rv <= s.last_rv {
                let last = s.last_rv;
                s.violations.push(format!("{t} at RV {rv} after {last}"));
            }
            s.last_rv = rv;
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            if name.starts_with("t-") {
                if t != "DELETED" && o["data"]["seq"] != o["data"]["copy"] {
                    s.violations.push(format!("{name} half written in a watch event: {o}"));
                }
                s.events.push((t, name, seq_of(o), rv));
            }
        }
    }
}

/// Each key's events, as (type, seq), with an update that landed twice (a retried PUT of the
/// same object, which kube may or may not write again) counted once.
fn per_key(events: &[(String, String, u64, u64)]) -> BTreeMap<String, Vec<(String, u64)>> {
    let mut out: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (t, name, seq, _) in events {
        let evs = out.entry(name.clone()).or_default();
        let seq = if t == "DELETED" { 0 } else { *seq };
        if t == "MODIFIED" && evs.last().is_some_and(|(lt, ls)| lt != "DELETED" && *ls == seq) {
            continue;
        }
        evs.push((t.clone(), seq));
    }
    out
}

fn expected(ledger: &Ledger) -> BTreeMap<String, Vec<(String, u64)>> {
    let evs = |ops: &Vec<(Op, u64)>| {
        ops.iter().map(|(op, seq)| (op.event().to_string(), if *op == Op::Delete { 0 } else { *seq })).collect()
    };
    ledger.acked.iter().map(|(k, ops)| (k.clone(), evs(ops))).collect()
}

fn ready(c: &Client, fd: &Frontdoor) -> (u16, String) {
    match c.get(fd.url("/readyz?verbose")).timeout(Duration::from_secs(5)).send() {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn signal(fd: &Frontdoor, sig: i32) {
    unsafe {
        libc::kill(fd.child.id() as i32, sig);
    }
}

#[test]
fn replicas_ride_out_member_loss_restart_and_compaction() {
    ride_out(kills_from_env(2));
}

#[test]
#[ignore = "long: 10 member kills (ETCD_KILLS)"]
fn replicas_ride_out_ten_member_kills() {
    ride_out(kills_from_env(10));
}

fn kills_from_env(default: usize) -> usize {
    std::env::var("ETCD_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ride_out(kills: usize) {
    let started = Instant::now();
    let mut etcd = EtcdCluster::start(3);
    let servers = etcd.servers();
    let args = ["--etcd-servers", servers.as_str()];
    let a = Frontdoor::start_logging(tempfile::tempdir().unwrap(), &args, None);
    // one PKI for both (one root CA published, one admin for both), as replicas behind one address
    let dir_b = tempfile::tempdir().unwrap();
    share_pki(&a, &dir_b.path().join("certs"));
    let b = Frontdoor::start_logging(dir_b, &args, None);
    let replicas = [&a, &b];
    let (watch_a, write_a) = clients(&a);
    let (watch_b, write_b) = clients(&b);
    let writes = [write_a.clone(), write_b.clone()];

    let stop = Arc::new(AtomicBool::new(false));
    let (rv0, _) = list(&write_a, &a.url(""));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..2).map(|_| Arc::default()).collect();
    for (i, c) in [watch_a.clone(), watch_b.clone()].into_iter().enumerate() {
        let (base, s, stop) = (replicas[i].url(""), seen[i].clone(), stop.clone());
        std::thread::spawn(move || watcher(c, base, rv0, s, stop));
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let saw_all = |ledger: &Ledger, i: usize| per_key(&seen[i].lock().unwrap().events) == expected(ledger);
    // both watches are live before the writes start
    let mut retried = Vec::new();
    write(&write_a, &a.url(""), Op::Create, "t-start", 1, &mut retried).unwrap();
    ledger.lock().unwrap().acked.insert("t-start".into(), vec![(Op::Create, 1)]);
    wait_until("both watches to see the first write", Duration::from_secs(10), || {
        let l = ledger.lock().unwrap();
        saw_all(&l, 0) && saw_all(&l, 1)
    });

    // 1. writers through both replicas; kill -9 a member mid-write, the leader first
    let stop_writers = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .flat_map(|r| (0..2).map(move |id| (r, id)))
        .map(|(r, id)| {
            let (base, c, l, s) = (replicas[r].url(""), writes[r].clone(), ledger.clone(), stop_writers.clone());
            std::thread::spawn(move || writer(r, id, base, c, l, s))
        })
        .collect();
    let mut killed = Vec::new();
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(1000));
        let leader = etcd.leader();
        let victim = if k % 2 == 0 { leader } else { etcd.other_than(leader) };
        etcd.kill(victim);
        let t = Instant::now();
        {
            let mut l = ledger.lock().unwrap();
            (l.after_kill, l.first_after_kill) = ([0, 0], [None, None]);
        }
        // a write sent right after the kill, through each replica (the writers' own writes may
        // have been in flight to the dead member, which etcd answers after its request timeout)
        let probes: Vec<_> = (0..2)
            .map(|r| {
                let (base, c, l) = (replicas[r].url(""), writes[r].clone(), ledger.clone());
                std::thread::spawn(move || {
                    let (key, mut retried) = (format!("t-probe-{k}-{r}"), Vec::new());
                    let t = Instant::now();
                    let result = write(&c, &base, Op::Create, &key, 7, &mut retried);
                    let took = t.elapsed();
                    let mut l = l.lock().unwrap();
                    match result {
                        Ok(()) => l.acked.entry(key).or_default().push((Op::Create, 7)),
                        Err(e) => l.failures.push(e),
                    }
                    l.retried += retried.len();
                    for reason in retried {
                        *l.reasons.entry(reason).or_default() += 1;
                    }
                    took
                })
            })
            .collect();
        let probed: Vec<Duration> = probes.into_iter().map(|p| p.join().unwrap()).collect();
        // writes go on through both replicas without the member
        wait_until("writes through both replicas after the kill", Duration::from_secs(20), || {
            ledger.lock().unwrap().after_kill.iter().all(|n| *n >= 5)
        });
        let recovered = t.elapsed();
        let first = ledger.lock().unwrap().first_after_kill.map(|f| f.map(|f| f.duration_since(t)).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(1500));
        killed.push((if victim == leader { "leader" } else { "follower" }, probed, first, recovered));
        etcd.start_member(victim);
        wait_until("the restarted member to rejoin", Duration::from_secs(20), || etcd.linearizable_ok(victim));
    }
    stop_writers.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    {
        let l = ledger.lock().unwrap();
        assert!(l.failures.is_empty(), "failed writes: {:?}", l.failures);
        // what never reached etcd was sent again by frontdoor, not left to the client
        assert!(!l.reasons.keys().any(|r| r.contains("connect error")), "{:?}", l.reasons);
    }
    wait_until("both watches to see every acknowledged write", Duration::from_secs(20), || {
        let l = ledger.lock().unwrap();
        saw_all(&l, 0) && saw_all(&l, 1)
    });
    // every acknowledged write is there, whole, on both replicas
    let state: BTreeMap<String, u64> =
        ledger.lock().unwrap().state().into_iter().filter_map(|(k, s)| Some((k, s?))).collect();
    for (i, fd) in replicas.iter().enumerate() {
        let (_, objects) = list(&writes[i], &fd.url(""));
        assert_eq!(objects, state, "replica {i}'s objects are the acknowledged ones");
    }

    // 2. all of etcd down, then back: readiness says so, mirrors and watches resume
    etcd.kill_all();
    for (i, fd) in replicas.iter().enumerate() {
        wait_until(&format!("replica {i}'s /readyz to report etcd down"), Duration::from_secs(15), || {
            let (code, text) = ready(&writes[i], fd);
            code == 500 && text.contains("[-]etcd failed")
        });
    }
    etcd.start_all();
    for (i, fd) in replicas.iter().enumerate() {
        wait_until(&format!("replica {i}'s /readyz to recover"), Duration::from_secs(30), || {
            let (code, text) = ready(&writes[i], fd);
            code == 200 && text.contains("[+]etcd ok")
        });
    }
    write(&write_b, &b.url(""), Op::Create, "t-restarted", 2, &mut retried).unwrap();
    ledger.lock().unwrap().acked.insert("t-restarted".into(), vec![(Op::Create, 2)]);
    wait_until("both watches to see a write after etcd's restart", Duration::from_secs(20), || {
        let l = ledger.lock().unwrap();
        saw_all(&l, 0) && saw_all(&l, 1)
    });
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        assert_eq!(s.streams, 1, "replica {i}'s watch never ended");
        assert!(s.violations.is_empty(), "replica {i}: {:?}", s.violations);
    }

    // 3. b cut off while etcd restarts and compacts past b's revision
    let b_rv = seen[1].lock().unwrap().last_rv;
    signal(&b, libc::SIGSTOP);
    etcd.kill_all();
    etcd.start_all();
    wait_until("a's /readyz to recover", Duration::from_secs(30), || ready(&write_a, &a).0 == 200);
    let live: Vec<String> = state.keys().cloned().collect();
    let mut phase3 = vec![(Op::Create, "t-c1".to_string(), 3), (Op::Create, "t-c2".to_string(), 4)];
    phase3.push((Op::Delete, live[0].clone(), 0));
    phase3.push((Op::Update, live[1].clone(), 5));
    for (op, key, seq) in &phase3 {
        write(&write_a, &a.url(""), *op, key, *seq, &mut retried).unwrap();
        ledger.lock().unwrap().acked.entry(key.clone()).or_default().push((*op, *seq));
    }
    let compacted = etcd.revision();
    assert!(compacted as u64 > b_rv);
    etcd.compact(compacted);
    signal(&b, libc::SIGCONT);
    wait_until("b's watch to be ended and told its resourceVersion is gone", Duration::from_secs(30), || {
        !seen[1].lock().unwrap().relists.is_empty()
    });
    let (relist_rv, relisted) = {
        let s = seen[1].lock().unwrap();
        assert_eq!(s.gone.len(), 1, "{:?}", s.gone);
        assert!(s.gone[0].starts_with("too old resource version: "), "{}", s.gone[0]);
        let (rv, objects, before) = s.relists[0].clone();
        assert!(s.events[before..].iter().all(|e| e.3 > rv), "events after the relist are newer than it");
        (rv, objects)
    };
    assert!(relist_rv >= compacted as u64, "the relist is at or after the compaction");
    let present =
        |l: &Ledger| -> BTreeMap<String, u64> { l.state().into_iter().filter_map(|(k, s)| Some((k, s?))).collect() };
    assert_eq!(relisted, present(&ledger.lock().unwrap()), "b's relist shows every object");
    wait_until("b's /readyz", Duration::from_secs(20), || ready(&write_b, &b).0 == 200);
    write(&write_b, &b.url(""), Op::Create, "t-after-compaction", 6, &mut retried).unwrap();
    ledger.lock().unwrap().acked.insert("t-after-compaction".into(), vec![(Op::Create, 6)]);
    wait_until("a's watch to see everything, and b's what followed its relist", Duration::from_secs(20), || {
        let l = ledger.lock().unwrap();
        let b_after = seen[1].lock().unwrap().events.iter().any(|e| e.1 == "t-after-compaction");
        saw_all(&l, 0) && b_after
    });
    {
        let (sa, sb) = (seen[0].lock().unwrap(), seen[1].lock().unwrap());
        assert_eq!(sa.streams, 1, "a's watch never ended");
        assert!(sa.gone.is_empty() && sa.relists.is_empty());
        assert!(sa.violations.is_empty() && sb.violations.is_empty(), "{:?} {:?}", sa.violations, sb.violations);
    }
    let final_state = present(&ledger.lock().unwrap());
    for (i, fd) in replicas.iter().enumerate() {
        assert_eq!(list(&writes[i], &fd.url("")).1, final_state, "replica {i} after the compaction");
    }
    stop.store(true, Ordering::Relaxed);

    let l = ledger.lock().unwrap();
    let (events_a, events_b) = (seen[0].lock().unwrap().events.len(), seen[1].lock().unwrap().events.len());
    println!(
        "etcd cluster: {} acknowledged writes through 2 replicas, all present; {} attempts retried by the writers \
         (5xx or no answer: {:?}), {} outside them; members killed {:?} (how long a write sent right after the kill took on each replica; the time to the first acknowledged write of the continuous writers on each, and to 5 on both); \
         watches saw {events_a} and {events_b} events once each in order; b relisted at {relist_rv} after a compaction \
         at {compacted}; {:?}",
        l.acked.values().map(Vec::len).sum::<usize>(),
        l.retried,
        l.reasons,
        retried.len(),
        killed,
        started.elapsed()
    );
}

/// The mirror is (re)built by a quorum read: with two of three members gone, the survivor
/// still answers a serializable read with what it has, but a replica pointed at it does not
/// start from it, and a running replica reports etcd unready; with the quorum back, both work.
#[test]
fn a_relist_is_a_quorum_read() {
    let mut etcd = EtcdCluster::start(3);
    let servers = etcd.servers();
    let a = Frontdoor::start_logging(tempfile::tempdir().unwrap(), &["--etcd-servers", servers.as_str()], None);
    a.kubectl_ok(&["create", "cm", "t-quorum", "--from-literal=k=1"]);
    let leader = etcd.leader();
    let follower = etcd.other_than(leader);
    etcd.kill(leader);
    etcd.kill(follower);
    let survivor = (0..3).find(|i| *i != leader && *i != follower).unwrap();
    let keys = etcd.serializable_keys(survivor, "/registry/configmaps/").unwrap();
    assert!(
        keys.iter().any(|k| k.ends_with("/t-quorum")),
        "the survivor has the object and serves it to a serializable read: {keys:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    share_pki(&a, &dir.path().join("certs"));
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_frontdoor"))
        .arg("serve")
        .args(["--secure-port", &free_port().to_string()])
        .arg("--cert-dir")
        .arg(dir.path().join("certs"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--policy-dir")
        .arg(dir.path().join("policies"))
        .args(["--etcd-servers", &etcd.url(survivor)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(40), "a replica started from a member without quorum");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("cannot read the store from etcd"), "{err}");
    let refused_in = t.elapsed();
    let admin = a.admin_client();
    wait_until("a's /readyz to report etcd without quorum", Duration::from_secs(15), || {
        let (code, text) = ready(&admin, &a);
        code == 500 && text.contains("[-]etcd failed")
    });

    etcd.start_member(leader);
    etcd.start_member(follower);
    etcd.leader();
    let c = Frontdoor::start_in(dir, &["--etcd-servers", &etcd.url(survivor)]);
    assert!(c.kubectl_ok(&["get", "cm", "t-quorum", "-o", "name"]).contains("configmap/t-quorum"));
    wait_until("a's /readyz to recover", Duration::from_secs(20), || ready(&admin, &a).0 == 200);
    println!("etcd quorum: a replica pointed at a member without quorum refused to start in {refused_in:?}");
}
