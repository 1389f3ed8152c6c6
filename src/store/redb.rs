//! The embedded backend: redb under `--data-dir`, every write committed durably (fsync)
//! before it is acknowledged. Keys are kube's (`/registry/<group>/<resource>/<ns>/<name>`);
//! an event log in the same transaction makes watches and lists at an older revision
//! answerable within a compaction window. All objects are also held in memory, so reads
//! never touch the disk (kube's watch cache, in effect).

use super::backend::{initial_events, stamp, Event, EventType, Storage, StorageError, Stored, Watch};
use super::watch::Hub;
use redb::{Database, ReadableTable, TableDefinition};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

struct State {
    objects: BTreeMap<String, Stored>,
    rev: u64,
    /// Events after `compacted`, oldest first.
    log: VecDeque<Arc<Event>>,
    /// What the log keeps alive (`backend::held_bytes` of each event).
    log_bytes: usize,
    compacted: u64,
}

pub struct RedbStorage {
    db: Database,
    /// One writer at a time: revisions are assigned and committed in order.
    write: Mutex<()>,
    state: RwLock<State>,
    hub: Hub,
    window: usize,
    /// The window's bound in bytes (`backend::WINDOW_BYTES` unless set).
    window_bytes: usize,
}

/// Values from this size on are written lz4-compressed: redb gives a large value a page of the
/// next power of two (8 MiB for a 3 MB ConfigMap of 200k keys with its managed fields), and
/// copying that page into the file's cache cost more CPU than compressing it (bench/body_cpu.py).
/// Reads come from memory (`State`), so the file is decompressed only when it is opened.
const COMPRESS_FROM: usize = 64 * 1024;

/// Marks a compressed value: no JSON document starts with a NUL byte, so values written before
/// compression existed (and small ones) are read as they are.
const LZ4: u8 = 0;

/// A table value as written: `b` itself, or `LZ4`, `b`'s length (u32, little-endian) and its
/// lz4 block when that is smaller.
fn pack(b: &[u8]) -> Cow<'_, [u8]> {
    const HEAD: usize = 5;
    if b.len() < COMPRESS_FROM || b.len() > u32::MAX as usize {
        return b.into();
    }
    let mut out = vec![0; HEAD + lz4_flex::block::get_maximum_output_size(b.len())];
    out[0] = LZ4;
    out[1..HEAD].copy_from_slice(&(b.len() as u32).to_le_bytes());
    match lz4_flex::block::compress_into(b, &mut out[HEAD..]) {
        Ok(n) if HEAD + n < b.len() => {
            out.truncate(HEAD + n);
            out.into()
        }
        _ => b.into(),
    }
}

/// A table value as `pack` wrote it.
fn unpack(b: &[u8]) -> anyhow::Result<Cow<'_, [u8]>> {
    /// Far above any object's size (a body is at most 3 MiB): a damaged length is an error,
    /// not an allocation of up to 4 GiB.
    const MAX_UNPACKED: usize = 256 << 20;
    let Some((&LZ4, packed)) = b.split_first() else { return Ok(b.into()) };
    let (n, block) = packed.split_at_checked(4).ok_or_else(|| anyhow::anyhow!("a compressed value is damaged"))?;
    let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
    anyhow::ensure!(n <= MAX_UNPACKED, "a compressed value is damaged: it claims {n} bytes");
    let out = lz4_flex::block::decompress(block, n)?;
    // a block cut short at a sequence's end decodes without error, only shorter
    anyhow::ensure!(out.len() == n, "a compressed value is damaged: {} of {n} bytes decoded", out.len());
    Ok(out.into())
}

fn internal(e: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(e.to_string())
}

/// The event of `kind` on `key` for the log, `prev` being the value it replaced, already
/// serialized. The new value is not logged again: it is the objects table's (written in the same
/// transaction) until the key changes again, and then the next event's `prev`; a deletion's is
/// its `prev` at the deletion's revision. So a create writes the object's bytes once, an update
/// twice (new and old), not two and three times. Read back by `decode_event` and `resolve`.
fn encode_event(kind: EventType, key: &str, prev: Option<(&[u8], u64)>) -> Vec<u8> {
    let mut b = Vec::with_capacity(prev.map_or(0, |(p, _)| p.len()) + key.len() + 48);
    b.extend_from_slice(b"{\"t\":\"");
    b.extend_from_slice(kind.as_str().as_bytes());
    b.extend_from_slice(b"\",\"k\":");
    serde_json::to_writer(&mut b, key).expect("a string serializes");
    match prev {
        Some((p, r)) => {
            b.extend_from_slice(b",\"p\":{\"v\":");
            b.extend_from_slice(p);
            b.extend_from_slice(format!(",\"r\":{r}}}}}").as_bytes());
        }
        None => b.extend_from_slice(b",\"p\":null}"),
    }
    b
}

/// An event as read from the log; `value` is None when the log left it out (as it does since
/// `encode_event` stopped repeating it; older logs have it).
struct Logged {
    rev: u64,
    kind: EventType,
    key: String,
    value: Option<Value>,
    prev: Option<(Value, u64)>,
}

fn decode_event(rev: u64, b: &[u8]) -> Option<Logged> {
    let mut v: Value = serde_json::from_slice(b).ok()?;
    let kind = match v["t"].as_str()? {
        "ADDED" => EventType::Added,
        "MODIFIED" => EventType::Modified,
        _ => EventType::Deleted,
    };
    let prev = v.get_mut("p").filter(|p| !p.is_null()).map(|p| (p["v"].take(), p["r"].as_u64().unwrap_or(0)));
    let value = v.get_mut("v").map(Value::take);
    Some(Logged { rev, kind, key: v["k"].as_str()?.to_string(), value, prev })
}

/// The logged events (oldest first) with their values, newest first filled in from where they
/// are kept: the object now when it is still at that revision, else the state the key's next
/// change replaced (its `prev`, shared); a deletion's from its own `prev`. An event nothing
/// holds the value of (a damaged log) is left out.
fn resolve(logged: Vec<Logged>, objects: &BTreeMap<String, Stored>) -> VecDeque<Arc<Event>> {
    let mut replaced: std::collections::HashMap<String, (Arc<Value>, u64)> = Default::default();
    let mut out = Vec::with_capacity(logged.len());
    for l in logged.into_iter().rev() {
        let prev = l.prev.map(|(v, r)| (Arc::new(v), r));
        let (value, raw) = match (l.value, l.kind, &prev) {
            (Some(v), _, _) => (Arc::new(v), None),
            (None, EventType::Deleted, Some((p, _))) => (Arc::new(stamp((**p).clone(), l.rev)), None),
            (None, _, _) => match replaced.get(&l.key).filter(|(_, r)| *r == l.rev) {
                Some((v, _)) => (v.clone(), None),
                None => match objects.get(&l.key).filter(|o| o.rev == l.rev) {
                    Some(o) => (o.value.clone(), o.raw.clone()),
                    None => {
                        tracing::warn!(key = l.key, rev = l.rev, "a logged event without its object; left out");
                        continue;
                    }
                },
            },
        };
        match &prev {
            Some(p) => replaced.insert(l.key.clone(), p.clone()),
            None => replaced.remove(&l.key),
        };
        out.push(Arc::new(Event { rev: l.rev, kind: l.kind, key: l.key, value, prev, raw }));
    }
    out.reverse();
    out.into()
}

enum Op {
    Create(Value),
    Update(Value, Option<u64>),
    Delete(Option<u64>),
}

impl RedbStorage {
    /// Opens (or creates) `dir/store.redb`; `window` is how many events stay replayable.
    pub fn open(dir: &Path, window: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join("store.redb"))?;
        let mut state = State { objects: BTreeMap::new(), rev: 0, log: VecDeque::new(), log_bytes: 0, compacted: 0 };
        {
            let w = db.begin_write()?;
            w.open_table(OBJECTS)?;
            w.open_table(EVENTS)?;
            w.open_table(META)?;
            w.commit()?;
        }
        let r = db.begin_read()?;
        let meta = r.open_table(META)?;
        state.rev = meta.get("revision")?.map(|g| g.value()).unwrap_or(0);
        state.compacted = meta.get("compacted")?.map(|g| g.value()).unwrap_or(0);
        for row in r.open_table(OBJECTS)?.iter()? {
            let (k, v) = row?;
            let mut value: Value = serde_json::from_slice(&unpack(v.value())?)?;
            super::fields_v1::hold_as_text(&mut value);
            let rev = value["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
            // serialized again rather than kept as read: what an older build wrote may differ
            // in form (spacing, escapes) from what a reply writes
            let raw = Some(super::backend::raw_json(&value));
            let key = k.value().to_string();
            state.objects.insert(key.clone(), Stored { key, value: Arc::new(value), rev, raw });
        }
        let mut logged = Vec::new();
        for row in r.open_table(EVENTS)?.iter()? {
            let (k, v) = row?;
            logged.extend(decode_event(k.value(), &unpack(v.value())?));
        }
        state.log = resolve(logged, &state.objects);
        state.log_bytes = state.log.iter().map(|e| super::backend::held_bytes(e)).sum();
        drop(meta);
        Ok(RedbStorage {
            db,
            write: Mutex::new(()),
            state: RwLock::new(state),
            hub: Hub::default(),
            window: window.max(1),
            window_bytes: super::backend::WINDOW_BYTES,
        })
    }

    /// Bounds the event window to `bytes` of the objects its events keep alive.
    pub fn with_window_bytes(mut self, bytes: usize) -> Self {
        self.window_bytes = bytes;
        self
    }

    pub fn watchers(&self) -> usize {
        self.hub.len()
    }

    fn write(&self, key: &str, op: Op) -> Result<Stored, StorageError> {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let (current, rev, compact_to) = {
            let s = self.state.read().unwrap();
            // past the window by a tenth (in events or bytes), back to it: compaction is a
            // write of its own, not one per event
            let (events, bytes) = (self.window, self.window_bytes);
            let over = s.log.len() >= events + events / 10 || s.log_bytes > bytes.saturating_add(bytes / 10);
            let compact_to =
                over.then(|| super::backend::compaction_point(&s.log, s.log_bytes, events, bytes)).flatten();
            (s.objects.get(key).cloned(), s.rev + 1, compact_to)
        };
        let check = |expected: Option<u64>, cur: &Stored| match expected {
            Some(e) if e != cur.rev => Err(StorageError::Conflict),
            _ => Ok(()),
        };
        let (kind, value, prev) = match (op, &current) {
            (Op::Create(_), Some(_)) => return Err(StorageError::AlreadyExists),
            (Op::Create(v), None) => (EventType::Added, stamp(v, rev), None),
            (Op::Update(..) | Op::Delete(_), None) => return Err(StorageError::NotFound),
            (Op::Update(v, exp), Some(cur)) => {
                check(exp, cur)?;
                (EventType::Modified, stamp(v, rev), Some((cur.value.clone(), cur.rev)))
            }
            (Op::Delete(exp), Some(cur)) => {
                check(exp, cur)?;
                (EventType::Deleted, stamp((*cur.value).clone(), rev), Some((cur.value.clone(), cur.rev)))
            }
        };
        // serialized once: for the objects table and every reply that serves the object as
        // stored (the log holds only what it replaced)
        let raw = super::backend::raw_json(&value);
        let prev_raw = match &current {
            Some(Stored { raw: Some(r), .. }) => Some(r.clone()),
            Some(cur) => Some(super::backend::raw_json(&cur.value)),
            None => None,
        };
        let logged = encode_event(kind, key, prev_raw.as_deref().zip(prev.as_ref().map(|(_, r)| *r)));
        let event = Event { rev, kind, key: key.to_string(), value: Arc::new(value), prev, raw: Some(raw) };
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut objects = txn.open_table(OBJECTS).map_err(internal)?;
            if kind == EventType::Deleted {
                objects.remove(key).map_err(internal)?;
            } else {
                objects.insert(key, &*pack(event.raw.as_deref().unwrap_or_default())).map_err(internal)?;
            }
            let mut events = txn.open_table(EVENTS).map_err(internal)?;
            events.insert(rev, &*pack(&logged)).map_err(internal)?;
            if let Some(to) = compact_to {
                events.retain_in(..=to, |_, _| false).map_err(internal)?;
            }
            let mut meta = txn.open_table(META).map_err(internal)?;
            meta.insert("revision", rev).map_err(internal)?;
            if let Some(to) = compact_to {
                meta.insert("compacted", to).map_err(internal)?;
            }
        }
        txn.commit().map_err(internal)?;

        let event = Arc::new(event);
        let mut s = self.state.write().unwrap();
        s.rev = rev;
        let stored = Stored { key: key.to_string(), value: event.value.clone(), rev, raw: event.raw.clone() };
        if kind == EventType::Deleted {
            s.objects.remove(key);
        } else {
            s.objects.insert(key.to_string(), stored.clone());
        }
        s.log_bytes += super::backend::held_bytes(&event);
        s.log.push_back(event.clone());
        if let Some(to) = compact_to {
            let s = &mut *s;
            super::backend::drop_through(&mut s.log, &mut s.log_bytes, to);
            s.compacted = to;
        }
        self.hub.publish(&event);
        Ok(stored)
    }
}

impl Storage for RedbStorage {
    fn revision(&self) -> u64 {
        self.state.read().unwrap().rev
    }

    fn oldest(&self) -> u64 {
        self.state.read().unwrap().compacted
    }

    fn get(&self, key: &str) -> Option<Stored> {
        self.state.read().unwrap().objects.get(key).cloned()
    }

    fn list(&self, prefix: &str, at: Option<u64>) -> Result<(Vec<Stored>, u64), StorageError> {
        let s = self.state.read().unwrap();
        let range = s.objects.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix));
        let Some(at) = at.filter(|a| *a != s.rev) else {
            return Ok((range.map(|(_, v)| v.clone()).collect(), s.rev));
        };
        if at > s.rev {
            return Err(StorageError::TooLarge { asked: at, current: s.rev });
        }
        if at < s.compacted {
            return Err(StorageError::Expired { asked: at, oldest: s.compacted });
        }
        // rebuild the state at `at`: undo the newer events, newest first
        let mut view: BTreeMap<String, Stored> = range.map(|(k, v)| (k.clone(), v.clone())).collect();
        for e in s.log.iter().rev().take_while(|e| e.rev > at) {
            if !e.key.starts_with(prefix) {
                continue;
            }
            match &e.prev {
                None => {
                    view.remove(&e.key);
                }
                Some((v, r)) => {
                    view.insert(e.key.clone(), Stored { key: e.key.clone(), value: v.clone(), rev: *r, raw: None });
                }
            }
        }
        Ok((view.into_values().collect(), at))
    }

    fn create(&self, key: &str, value: Value) -> Result<Stored, StorageError> {
        self.write(key, Op::Create(value))
    }

    fn update(&self, key: &str, value: Value, expected: Option<u64>) -> Result<Stored, StorageError> {
        self.write(key, Op::Update(value, expected))
    }

    fn delete(&self, key: &str, expected: Option<u64>) -> Result<Stored, StorageError> {
        self.write(key, Op::Delete(expected))
    }

    fn watch(&self, prefix: &str, from: Option<u64>) -> Result<Watch, StorageError> {
        let s = self.state.read().unwrap();
        let initial = initial_events(&s.objects, &s.log, s.compacted, prefix, from)?;
        let rx = self.hub.subscribe(prefix);
        Ok(Watch { initial, rx, rev: s.rev })
    }

    fn compact(&self, rev: u64) {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let rev = rev.min(self.revision());
        // the window may have compacted past it already: the stored mark never goes back (a
        // restart would take revisions in the gap for ones it still has)
        if rev <= self.oldest() {
            return;
        }
        let Ok(txn) = self.db.begin_write() else {
            return;
        };
        {
            let Ok(mut events) = txn.open_table(EVENTS) else {
                return;
            };
            let _ = events.retain_in(..=rev, |_, _| false);
            let Ok(mut meta) = txn.open_table(META) else {
                return;
            };
            let _ = meta.insert("compacted", rev);
        }
        if txn.commit().is_ok() {
            let s = &mut *self.state.write().unwrap();
            super::backend::drop_through(&mut s.log, &mut s.log_bytes, rev);
            s.compacted = s.compacted.max(rev);
        }
    }

    fn close_watches(&self) {
        self.hub.shut_down();
    }

    fn healthy(&self) -> Result<(), String> {
        self.db.begin_read().map(|_| ()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, v: &str) -> Value {
        json!({"metadata": {"name": name}, "data": {"k": v}})
    }

    #[test]
    fn revisions_cas_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStorage::open(dir.path(), 100).unwrap();
            let a = s.create("/registry/cm/ns/a", obj("a", "1")).unwrap();
            assert_eq!(a.rev, 1);
            assert_eq!(a.value["metadata"]["resourceVersion"], "1");
            assert_eq!(s.create("/registry/cm/ns/a", obj("a", "1")).unwrap_err(), StorageError::AlreadyExists);
            assert_eq!(s.update("/registry/cm/ns/a", obj("a", "2"), Some(7)).unwrap_err(), StorageError::Conflict);
            assert_eq!(s.update("/registry/cm/ns/a", obj("a", "2"), Some(1)).unwrap().rev, 2);
            s.create("/registry/cm/ns/b", obj("b", "1")).unwrap();
            s.delete("/registry/cm/ns/b", None).unwrap();
            assert_eq!(s.delete("/registry/cm/ns/b", None).unwrap_err(), StorageError::NotFound);
        }
        let s = RedbStorage::open(dir.path(), 100).unwrap();
        assert_eq!(s.revision(), 4);
        let (items, rev) = s.list("/registry/cm/", None).unwrap();
        assert_eq!((items.len(), rev), (1, 4));
        assert_eq!(items[0].value["data"]["k"], "2");
        // list at older revisions is rebuilt from the event log
        let (at1, _) = s.list("/registry/cm/", Some(1)).unwrap();
        assert_eq!(at1[0].value["data"]["k"], "1");
        let (at3, _) = s.list("/registry/cm/", Some(3)).unwrap();
        assert_eq!(at3.len(), 2);
        assert!(matches!(s.list("/registry/cm/", Some(9)), Err(StorageError::TooLarge { .. })));
        let w = s.watch("/registry/cm/", Some(2)).unwrap();
        assert_eq!(w.initial.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![EventType::Added, EventType::Deleted]);
    }

    #[test]
    fn the_log_does_not_repeat_objects_and_replays_the_same_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let big = json!({"metadata": {"name": "a"}, "data": {"k": "x".repeat(10_000)}});
        type Logged = (u64, EventType, String, Value, Option<(Value, u64)>);
        let before: Vec<Logged>;
        {
            let s = RedbStorage::open(dir.path(), 100).unwrap();
            s.create("/registry/cm/ns/a", big.clone()).unwrap();
            s.update("/registry/cm/ns/a", obj("a", "2"), None).unwrap();
            s.update("/registry/cm/ns/a", obj("a", "3"), None).unwrap();
            s.create("/registry/cm/ns/b", obj("b", "1")).unwrap();
            s.delete("/registry/cm/ns/a", None).unwrap();
            s.create("/registry/cm/ns/a", obj("a", "again")).unwrap();
            s.update("/registry/cm/ns/b", obj("b", "2"), None).unwrap();
            // the create of the big object logged no copy of it
            let r = s.db.begin_read().unwrap();
            let logged = r.open_table(EVENTS).unwrap().get(1).unwrap().unwrap().value().len();
            assert!(logged < 200, "{logged} bytes logged for a create");
            let st = s.state.read().unwrap();
            before = st
                .log
                .iter()
                .map(|e| {
                    (
                        e.rev,
                        e.kind,
                        e.key.clone(),
                        (*e.value).clone(),
                        e.prev.as_ref().map(|(v, r)| ((**v).clone(), *r)),
                    )
                })
                .collect();
        }
        let s = RedbStorage::open(dir.path(), 100).unwrap();
        let st = s.state.read().unwrap();
        let after: Vec<_> = st
            .log
            .iter()
            .map(|e| {
                (e.rev, e.kind, e.key.clone(), (*e.value).clone(), e.prev.as_ref().map(|(v, r)| ((**v).clone(), *r)))
            })
            .collect();
        assert_eq!(after.len(), 7);
        assert_eq!(after, before);
        assert_eq!(after[0].3["data"]["k"].as_str().map(str::len), Some(10_000));
        // the current objects' events share them (and their bytes)
        let b = st.log.back().unwrap();
        assert!(Arc::ptr_eq(&b.value, &st.objects["/registry/cm/ns/b"].value) && b.raw.is_some());
        drop(st);
        for at in 1..=7 {
            assert!(s.list("/registry/cm/", Some(at)).is_ok(), "{at}");
        }
        assert_eq!(s.list("/registry/cm/", Some(3)).unwrap().0[0].value["data"]["k"], "3");
    }

    #[test]
    fn large_values_are_compressed_and_read_back_with_values_written_before() {
        let dir = tempfile::tempdir().unwrap();
        let data: serde_json::Map<String, Value> = (0..20_000).map(|i| (format!("k{i}"), json!("v"))).collect();
        let big = json!({"metadata": {"name": "big"}, "data": data});
        let small = obj("small", "1");
        {
            let s = RedbStorage::open(dir.path(), 100).unwrap();
            s.create("/registry/cm/ns/big", big.clone()).unwrap();
            s.update("/registry/cm/ns/big", obj("big", "2"), None).unwrap();
            s.create("/registry/cm/ns/small", small.clone()).unwrap();
            let r = s.db.begin_read().unwrap();
            let objects = r.open_table(OBJECTS).unwrap();
            let stored = |k: &str| objects.get(k).unwrap().unwrap().value().to_vec();
            // the small object as JSON; the big one's old state (the update's log entry) packed
            assert_eq!(stored("/registry/cm/ns/small")[0], b'{');
            let logged = r.open_table(EVENTS).unwrap().get(2).unwrap().unwrap().value().to_vec();
            let raw = serde_json::to_vec(&stamp(big.clone(), 1)).unwrap();
            assert_eq!(logged[0], LZ4);
            assert!(logged.len() * 2 < raw.len(), "{} bytes packed for {}", logged.len(), raw.len());
            drop((objects, r));
            // a value written as JSON by a build before compression, beside packed ones
            let txn = s.db.begin_write().unwrap();
            txn.open_table(OBJECTS).unwrap().insert("/registry/cm/ns/old", raw.as_slice()).unwrap();
            txn.commit().unwrap();
            s.create("/registry/cm/ns/big2", big.clone()).unwrap();
        }
        let s = RedbStorage::open(dir.path(), 100).unwrap();
        let value = |k: &str| (*s.get(k).unwrap().value).clone();
        assert_eq!(value("/registry/cm/ns/big2"), stamp(big.clone(), 4));
        assert_eq!(value("/registry/cm/ns/old"), stamp(big.clone(), 1));
        assert_eq!(value("/registry/cm/ns/small"), stamp(small, 3));
        assert_eq!(s.list("/registry/cm/", Some(1)).unwrap().0[0].value["data"], big["data"]);
        // what does not compress is written as it is; a damaged packed value is an error, not a panic
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert!(matches!(pack(&noise), Cow::Borrowed(b) if b == noise), "noise was packed");
        let packed = pack(&serde_json::to_vec(&big).unwrap()).into_owned();
        assert!(unpack(&packed[..packed.len() / 2]).is_err());
        assert!(unpack(&packed[..3]).is_err());
        let mut claims_4gib = packed.clone();
        claims_4gib[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&claims_4gib).unwrap_err().to_string().contains("claims 4294967295 bytes"));
    }

    #[test]
    fn older_logs_with_values_still_read() {
        let old = br#"{"t":"MODIFIED","k":"/registry/cm/ns/a","v":{"metadata":{"name":"a","resourceVersion":"2"}},"p":{"v":{"metadata":{"name":"a","resourceVersion":"1"}},"r":1}}"#;
        let l = decode_event(2, old).unwrap();
        let log = resolve(vec![l], &BTreeMap::new());
        assert_eq!(log[0].value["metadata"]["resourceVersion"], "2");
        assert_eq!(log[0].prev.as_ref().unwrap().1, 1);
        // without its value and nothing holding it: left out, not invented
        let new = encode_event(EventType::Added, "/registry/cm/ns/z", None);
        assert!(resolve(vec![decode_event(3, &new).unwrap()], &BTreeMap::new()).is_empty());
    }

    #[test]
    fn compaction_window_expires_old_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStorage::open(dir.path(), 10).unwrap();
        for i in 0..30 {
            s.create(&format!("/registry/cm/ns/{i}"), obj("x", "1")).unwrap();
        }
        assert!(s.oldest() > 0);
        assert!(matches!(s.watch("/registry/cm/", Some(1)), Err(StorageError::Expired { .. })));
        assert!(s.watch("/registry/cm/", Some(s.revision() - 5)).is_ok());
        s.compact(s.revision());
        assert!(matches!(s.list("/registry/cm/", Some(s.revision() - 1)), Err(StorageError::Expired { .. })));
    }

    /// A compaction to a revision the window already passed changes nothing: the stored mark
    /// never goes back, or a restart would take revisions in the gap for ones it still has.
    #[test]
    fn the_compaction_mark_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let oldest = {
            let s = RedbStorage::open(dir.path(), 10).unwrap();
            for i in 0..30 {
                s.create(&format!("/registry/cm/ns/{i}"), obj("x", "1")).unwrap();
            }
            let oldest = s.oldest();
            assert!(oldest > 5);
            s.compact(5);
            oldest
        };
        let s = RedbStorage::open(dir.path(), 10).unwrap();
        assert_eq!(s.oldest(), oldest);
        assert!(matches!(s.watch("/registry/cm/", Some(6)), Err(StorageError::Expired { .. })));
    }

    /// Churn of large objects keeps the window within its bytes (each deletion keeps the object
    /// twice), and past them the oldest changes go as past its count: 410 for their revisions.
    #[test]
    fn the_window_is_bounded_in_bytes_too() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStorage::open(dir.path(), 10_000).unwrap().with_window_bytes(1 << 20);
        let big = |n: &str| json!({"metadata": {"name": n}, "data": {"k": "x".repeat(64 << 10)}});
        let first = s.revision() + 1;
        for i in 0..100 {
            let key = format!("/registry/cm/ns/c{i}");
            s.create(&key, big(&format!("c{i}"))).unwrap();
            s.delete(&key, None).unwrap();
        }
        // at most the bound and its tenth of slack (compaction is a write of its own), and the
        // one event written since the last compaction
        let held = s.state.read().unwrap().log_bytes;
        assert!(held <= (1 << 20) + (1 << 20) / 10 + 2 * (65 << 10), "{held} bytes held");
        let log_len = s.state.read().unwrap().log.len();
        assert!(log_len < 30, "{log_len} events of 200 kept: ~8 deletions fit 1 MiB");
        assert!(matches!(s.watch("/registry/cm/", Some(first)), Err(StorageError::Expired { .. })));
        assert!(s.watch("/registry/cm/", Some(s.revision() - 2)).is_ok(), "the latest changes stay");
        // counted again as they were after a restart
        drop(s);
        let s = RedbStorage::open(dir.path(), 10_000).unwrap();
        let st = s.state.read().unwrap();
        assert_eq!(st.log_bytes, st.log.iter().map(|e| crate::store::backend::held_bytes(e)).sum::<usize>());
        assert!(st.log.len() == log_len, "the file's log is the memory's");
    }

    #[tokio::test]
    async fn watch_streams_after_replay() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStorage::open(dir.path(), 100).unwrap();
        s.create("/registry/cm/a/x", obj("x", "1")).unwrap();
        let mut w = s.watch("/registry/cm/a/", None).unwrap();
        assert_eq!(w.initial.len(), 1);
        s.create("/registry/cm/b/y", obj("y", "1")).unwrap();
        s.update("/registry/cm/a/x", obj("x", "2"), None).unwrap();
        let e = w.rx.recv().await.unwrap().event.clone();
        assert_eq!((e.kind, e.rev), (EventType::Modified, 3));
    }
}

#[cfg(test)]
mod memprobe {
    #[test]
    #[ignore]
    fn watcher_memory() {
        let rss = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let s = super::RedbStorage::open(dir.path(), 100).unwrap();
        use crate::store::backend::Storage;
        s.create("/registry/cm/a/x", serde_json::json!({"metadata": {"name": "x"}})).unwrap();
        let before = rss();
        let ws: Vec<_> = (0..10_000).map(|_| s.watch("/registry/cm/a/", Some(1)).unwrap()).collect();
        let after = rss();
        println!("10000 storage watchers: +{:.1} KB each", (after - before) / 10_000.0);
        drop(ws);
    }
}
