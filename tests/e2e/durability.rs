//! Durability under `kill -9`: rounds of concurrent creates, updates and deletes, each round
//! ended by SIGKILL at a random moment, then a restart on the same data (the embedded redb
//! store, or etcd). After every restart:
//! - every acknowledged write is there (the last acknowledged state of each key, or the
//!   write that was in flight on that key when the process died);
//! - nothing is half there: each object's two data fields, written together, agree;
//! - resourceVersions never go backwards (the list's RV after a restart is at least every
//!   acknowledged RV, and new writes get larger ones);
//! - a watch resumed from the last resourceVersion it saw, across every kill, sees each
//!   acknowledged write's event exactly once, in order.
//!
//! The default suite runs a few rounds per store; `cargo test --test e2e durability --
//! --ignored` runs 50 per store (DURABILITY_ROUNDS overrides) and prints the figures.

use crate::common::*;
use frontdoor::store::etcd::process::EtcdProcess;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NS: &str = "/api/v1/namespaces/default/configmaps";
const WRITERS: usize = 4;

/// The state a key is in after a write: present with `seq`, or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present(u64),
    Absent,
}

#[derive(Default)]
struct Ledger {
    /// Per key: the last acknowledged state, and the state an unacknowledged write would leave.
    acked: BTreeMap<String, State>,
    in_flight: BTreeMap<String, State>,
    /// RVs of acknowledged creates and updates, with their key.
    acked_rvs: Vec<(u64, String)>,
    /// Keys whose acknowledged delete must be seen by the watch, after this RV.
    acked_deletes: Vec<(String, u64)>,
    writes: usize,
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn body(name: &str, seq: u64) -> Value {
    // both fields are written in one request: a torn write would show them apart
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
           "data": {"seq": seq.to_string(), "copy": seq.to_string(), "pad": pad(seq)}})
}

/// Some hundred bytes, and every seventh write ~100 KB: redb stores values from 64 KiB on
/// compressed, so a kill can land on those writes too; read back whole after every restart.
fn pad(seq: u64) -> String {
    match seq % 7 {
        6 => (0..10_000)
            .map(|i| format!("{:x}", (i * 2_654_435_761 + seq) % 1_000_000_007))
            .collect::<Vec<_>>()
            .join(","),
        n => "x".repeat(n as usize * 100),
    }
}

/// One writer's loop over its own keys until a request fails to get an answer (the kill).
fn writer(id: usize, round: usize, base: String, c: Client, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let mut seq = 0u64;
    let mut next_key = 0;
    let mut live: Vec<String> = {
        let l = ledger.lock().unwrap();
        l.acked
            .iter()
            .filter(|(k, s)| k.starts_with(&format!("w{id}-")) && **s != State::Absent)
            .map(|(k, _)| k.clone())
            .collect()
    };
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        // unique per write, so the state after an unanswered write tells whether it happened
        let stamp = (round as u64 + 1) * 10_000_000 + seq * 10 + id as u64;
        let (key, after, req) = if live.len() < 3 || seq.is_multiple_of(5) {
            next_key += 1;
            let key = format!("w{id}-{round}-{next_key}");
            (key.clone(), State::Present(stamp), c.post(format!("{base}{NS}")).json(&body(&key, stamp)))
        } else if seq.is_multiple_of(3) {
            let key = live[(seq as usize) % live.len()].clone();
            (key.clone(), State::Absent, c.delete(format!("{base}{NS}/{key}")))
        } else {
            let key = live[(seq as usize) % live.len()].clone();
            (key.clone(), State::Present(stamp), c.put(format!("{base}{NS}/{key}")).json(&body(&key, stamp)))
        };
        ledger.lock().unwrap().in_flight.insert(key.clone(), after);
        let answer = req.send().and_then(|r| {
            let code = r.status().as_u16();
            r.text().map(|t| (code, t))
        });
        let mut l = ledger.lock().unwrap();
        let Ok((code, text)) = answer else {
            // no answer: the write may or may not have happened; it stays in flight
            return;
        };
        l.in_flight.remove(&key);
        assert!(matches!(code, 200 | 201), "{key}: {code} {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        l.writes += 1;
        match after {
            State::Present(_) => {
                l.acked_rvs.push((rv_of(&v), key.clone()));
                if !live.contains(&key) {
                    live.push(key.clone());
                }
            }
            State::Absent => {
                let last = l.acked_rvs.iter().rev().find(|(_, k)| *k == key).map(|(rv, _)| *rv).unwrap_or(0);
                l.acked_deletes.push((key.clone(), last));
                live.retain(|k| *k != key);
            }
        }
        l.acked.insert(key, after);
    }
}

/// Events a watch delivered: (type, name, rv).
type Events = Arc<Mutex<Vec<(String, String, u64)>>>;

/// Watches from `rv` until the stream ends (the kill, or `timeoutSeconds`), as client-go's
/// reflector does: a watch from an RV the server no longer serves (410 Expired) relists and
/// watches on from the list's RV, which is pushed to `relists`. Returns the last RV seen
/// (bookmarks included).
fn watch(c: &Client, base: &str, mut rv: u64, timeout: u64, events: &Events, relists: &Mutex<Vec<u64>>) -> u64 {
    'watch: loop {
        let url = format!("{base}{NS}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds={timeout}");
        let Ok(r) = c.get(url).send() else { return rv };
        assert_eq!(r.status(), 200, "watch from {rv}");
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let Ok(ev) = serde_json::from_str::<Value>(&line) else { break };
            let t = ev["type"].as_str().unwrap_or("").to_string();
            let o = &ev["object"];
            if t == "ERROR" {
                assert_eq!(o["code"], 410, "watch resumed from {rv}: {ev}");
                let Ok(list) = c.get(format!("{base}{NS}")).send().and_then(|r| r.json::<Value>()) else { return rv };
                rv = rv_of(&list);
                relists.lock().unwrap().push(rv);
                continue 'watch;
            }
            rv = rv.max(rv_of(o));
            if t != "BOOKMARK" {
                events.lock().unwrap().push((t, o["metadata"]["name"].as_str().unwrap_or("").to_string(), rv_of(o)));
            }
        }
        return rv;
    }
}

fn list(c: &Client, base: &str) -> (u64, BTreeMap<String, Value>) {
    let v: Value = c.get(format!("{base}{NS}")).send().unwrap().json().unwrap();
    let items =
        v["items"].as_array().unwrap().iter().map(|o| (o["metadata"]["name"].as_str().unwrap().to_string(), o.clone()));
    (rv_of(&v), items.collect())
}

/// Where the store lives across restarts.
enum Backend {
    Redb,
    Etcd { dir: tempfile::TempDir, etcd: Option<EtcdProcess> },
}

impl Backend {
    fn args(&self) -> Vec<String> {
        match self {
            Backend::Redb => Vec::new(),
            Backend::Etcd { etcd, .. } => vec!["--etcd-servers".into(), etcd.as_ref().unwrap().url.clone()],
        }
    }
}

struct Figures {
    rounds: usize,
    acked: usize,
    in_flight_applied: usize,
    in_flight_lost: usize,
    events: usize,
    relists: usize,
    covered_by_relist: usize,
    max_rv: u64,
}

fn start(dir: tempfile::TempDir, backend: &Backend) -> Frontdoor {
    let args = backend.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Frontdoor::start_logging(dir, &args, None)
}

fn rounds(mut backend: Backend, n: usize, seed: u64) -> Figures {
    let mut fd = start(tempfile::tempdir().unwrap(), &backend);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let events: Events = Arc::default();
    let relists: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (mut watched_rv, _) = list(&fd.admin_client(), &fd.url(""));
    let mut max_acked_rv = 0;
    let mut large_read_back = 0;
    let mut fig = Figures {
        rounds: n,
        acked: 0,
        in_flight_applied: 0,
        in_flight_lost: 0,
        events: 0,
        relists: 0,
        covered_by_relist: 0,
        max_rv: 0,
    };
    let mut rng = seed | 1;
    for round in 0..n {
        let base = fd.url("");
        let admin = fd.admin_client();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let (b, c, l, s) = (base.clone(), admin.clone(), ledger.clone(), stop.clone());
                std::thread::spawn(move || writer(id, round, b, c, l, s))
            })
            .collect();
        let watcher = {
            let (b, c, e, r) = (base.clone(), admin.clone(), events.clone(), relists.clone());
            std::thread::spawn(move || watch(&c, &b, watched_rv, 600, &e, &r))
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(250 + rng % 750));
        // kill -9 mid-write
        fd.child.kill().unwrap();
        fd.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        watched_rv = watcher.join().expect("watcher");
        if let Backend::Etcd { dir, etcd } = &mut backend {
            if round % 3 == 2 {
                // etcd itself killed -9 too, and restarted on its data
                drop(etcd.take());
                *etcd = Some(EtcdProcess::start(dir.path()).unwrap());
            }
        }
        let dir = std::mem::replace(&mut fd.dir, tempfile::tempdir().unwrap());
        drop(fd);
        fd = start(dir, &backend);
        let (admin, base) = (fd.admin_client(), fd.url(""));

        let mut l = ledger.lock().unwrap();
        let (list_rv, objects) = list(&admin, &base);
        for (rv, _) in &l.acked_rvs {
            max_acked_rv = max_acked_rv.max(*rv);
        }
        assert!(list_rv >= max_acked_rv, "round {round}: the RV went back from {max_acked_rv} to {list_rv}");
        for (name, o) in &objects {
            let d = &o["data"];
            assert_eq!(d["seq"], d["copy"], "round {round}: {name} is half written: {o}");
            // (the namespace's own kube-root-ca.crt has neither)
            let Some(seq) = d["seq"].as_str().and_then(|s| s.parse().ok()) else { continue };
            assert!(d["pad"] == pad(seq), "round {round}: {name}'s data at seq {seq} came back changed");
            large_read_back += usize::from(seq % 7 == 6);
        }
        let in_flight = std::mem::take(&mut l.in_flight);
        let keys: HashSet<&String> = l.acked.keys().chain(in_flight.keys()).collect();
        for key in keys {
            let now = match objects.get(key) {
                Some(o) => State::Present(o["data"]["seq"].as_str().unwrap().parse().unwrap()),
                None => State::Absent,
            };
            let acked = l.acked.get(key).copied().unwrap_or(State::Absent);
            match in_flight.get(key) {
                None => assert_eq!(now, acked, "round {round}: {key}: an acknowledged write was lost"),
                Some(f) => {
                    assert!(
                        now == acked || now == *f,
                        "round {round}: {key} is {now:?}: neither {acked:?} (acknowledged) nor {f:?} (in flight)"
                    );
                    if now == *f && now != acked {
                        fig.in_flight_applied += 1;
                    } else if now != *f {
                        fig.in_flight_lost += 1;
                    }
                }
            }
        }
        // what survived is the truth from here on
        let survivors: Vec<(String, State)> = in_flight
            .keys()
            .map(|k| {
                (
                    k.clone(),
                    objects
                        .get(k)
                        .map_or(State::Absent, |o| State::Present(o["data"]["seq"].as_str().unwrap().parse().unwrap())),
                )
            })
            .collect();
        for (k, s) in survivors {
            l.acked.insert(k.clone(), s);
            if let Some(o) = objects.get(&k) {
                l.acked_rvs.push((rv_of(o), k));
            }
        }
        // a write after the restart gets a larger RV
        let probe = admin.post(format!("{base}{NS}")).json(&body(&format!("probe-{round}"), 0)).send().unwrap();
        assert_eq!(probe.status(), 201);
        let prv = rv_of(&probe.json().unwrap());
        assert!(prv > list_rv.max(max_acked_rv), "round {round}: a new write got RV {prv} after {list_rv}");
        l.acked.insert(format!("probe-{round}"), State::Present(0));
        l.acked_rvs.push((prv, format!("probe-{round}")));
    }
    // drain the watch to the end, then check it saw each acknowledged write once
    let last = watch(&fd.admin_client(), &fd.url(""), watched_rv, 2, &events, &relists);
    let relists = relists.lock().unwrap().clone();
    let l = ledger.lock().unwrap();
    let evs = events.lock().unwrap();
    let mut seen = HashSet::new();
    let mut by_key: BTreeMap<&str, u64> = BTreeMap::new();
    for (t, name, rv) in evs.iter() {
        assert!(seen.insert((t.clone(), name.clone(), *rv)), "event {t} {name} {rv} seen twice");
        let prev = by_key.insert(name, *rv).unwrap_or(0);
        assert!(*rv > prev, "{name}: event at RV {rv} after {prev}");
    }
    let rvs: HashSet<u64> = evs.iter().filter(|(t, _, _)| t != "DELETED").map(|(_, _, rv)| *rv).collect();
    let mut covered_by_relist = 0;
    for (rv, key) in &l.acked_rvs {
        if !rvs.contains(rv) {
            // only a relist at or after it may stand in for an event (and its state was checked)
            assert!(
                relists.iter().any(|r| r >= rv),
                "the watch missed {key} at RV {rv} (last seen {last}, relists {relists:?})"
            );
            covered_by_relist += 1;
        }
    }
    for (key, after) in &l.acked_deletes {
        assert!(
            evs.iter().any(|(t, n, rv)| t == "DELETED" && n == key && rv > after) || relists.iter().any(|r| r > after),
            "the watch missed the deletion of {key}"
        );
    }
    assert!(large_read_back > 0, "no ~100 KB object was read back after a restart");
    fig.acked = l.writes + n;
    fig.events = evs.len();
    fig.relists = relists.len();
    fig.covered_by_relist = covered_by_relist;
    fig.max_rv = last;
    fig
}

fn report(store: &str, f: &Figures) {
    println!(
        "durability[{store}]: {} kill -9 rounds, {} acknowledged writes all present, {} in-flight writes applied whole and {} not at all, 0 torn; watch resumed {} times saw {} events once each ({} relists after 410 Expired, standing in for {} events), RVs monotonic to {}",
        f.rounds, f.acked, f.in_flight_applied, f.in_flight_lost, f.rounds, f.events, f.relists, f.covered_by_relist, f.max_rv
    );
}

fn rounds_from_env(default: usize) -> usize {
    std::env::var("DURABILITY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn etcd() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start(dir.path()).unwrap();
    Backend::Etcd { dir, etcd: Some(etcd) }
}

#[test]
fn kill_9_during_writes_loses_nothing_redb() {
    let t = Instant::now();
    report("redb", &rounds(Backend::Redb, 3, 7));
    println!("durability[redb]: {:?}", t.elapsed());
}

#[test]
fn kill_9_during_writes_loses_nothing_etcd() {
    report("etcd", &rounds(etcd(), 3, 11));
}

#[test]
#[ignore = "long: 50 rounds per store (DURABILITY_ROUNDS)"]
fn kill_9_fifty_rounds() {
    let n = rounds_from_env(50);
    let t = Instant::now();
    report("redb", &rounds(Backend::Redb, n, 1));
    println!("durability[redb]: {:?}", t.elapsed());
    let t = Instant::now();
    report("etcd", &rounds(etcd(), n, 2));
    println!("durability[etcd]: {:?}", t.elapsed());
}
