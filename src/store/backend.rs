//! The storage interface the REST layer is written against: one global revision (the
//! resourceVersion), compare-and-swap writes, list at a revision, watch from a revision.
//! The embedded redb backend implements it now; an etcd backend fits the same shape.

use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// An object as stored, with the revision of its last write (its resourceVersion).
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub value: Arc<Value>,
    pub rev: u64,
    /// `value` serialized as every reply writes it (`raw_json`), when the backend had it at
    /// hand: a reply serving the object as stored writes these bytes instead of serializing
    /// the tree again.
    pub raw: Option<Bytes>,
}

/// `value` as JSON in the form every reply writes (serde_json's compact form, keys in order):
/// the bytes a `Stored` or `Event` may keep beside its tree.
pub fn raw_json(value: &Value) -> Bytes {
    let mut b = Vec::new();
    super::fields_v1::write_json(&mut b, value);
    Bytes::from(b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. `value` is the new object (the last state for a delete); `prev`
/// is the object before the change, kept so a list can be rebuilt at an older revision.
#[derive(Debug, Clone)]
pub struct Event {
    pub rev: u64,
    pub kind: EventType,
    pub key: String,
    pub value: Arc<Value>,
    pub prev: Option<(Arc<Value>, u64)>,
    /// `value`'s `raw_json`, when the backend had it at hand.
    pub raw: Option<Bytes>,
}

/// The event window's default bound in bytes: the latest events are kept up to the window's
/// count and to this many bytes of their objects, so churn of large objects (each deletion and
/// replacement keeps an object alive) cannot grow memory without bound (~2.3x in memory).
pub const WINDOW_BYTES: usize = 64 << 20;

/// The bytes an event keeps alive beyond the live objects: its object's serialized size, twice
/// for a deletion (its last state, copied to carry the deletion's revision, and that state).
pub fn held_bytes(e: &Event) -> usize {
    let raw = e.raw.as_ref().map_or(0, Bytes::len);
    if e.kind == EventType::Deleted {
        2 * raw
    } else {
        raw
    }
}

/// How many of `log`'s oldest events (holding `held` bytes in all) go so that at most
/// `events` of them and `bytes` remain; the newest always stays (it may be larger alone).
pub fn excess(log: &VecDeque<Arc<Event>>, held: usize, events: usize, bytes: usize) -> usize {
    let (mut n, mut held) = (0, held);
    while n + 1 < log.len() && (log.len() - n > events || held > bytes) {
        held -= held_bytes(&log[n]).min(held);
        n += 1;
    }
    n
}

/// Compacts `storage`'s history every `interval` (zero: never) to the revision it had one
/// interval before, as kube-apiserver compacts etcd: a change stays readable (a list at its
/// exact resourceVersion, a watch from before it) for one to two intervals, and not for good,
/// restarts included: a deleted or rotated Secret's old data is gone once its history is. Ends
/// with the storage.
pub fn start_compactor(storage: std::sync::Weak<dyn Storage>, interval: std::time::Duration) {
    if interval.is_zero() {
        return;
    }
    let spawned = std::thread::Builder::new().name("compactor".into()).spawn(move || {
        let mut last = 0;
        loop {
            std::thread::sleep(interval);
            let Some(storage) = storage.upgrade() else { return };
            if last > 0 {
                storage.compact(last);
                tracing::debug!(revision = last, "compacted the store's history");
            }
            last = storage.revision();
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the store's compactor");
    }
}

/// The revision to compact `log` to so that at most `events` and `bytes` remain (`excess`),
/// None when nothing need go.
pub fn compaction_point(log: &VecDeque<Arc<Event>>, held: usize, events: usize, bytes: usize) -> Option<u64> {
    let gone = excess(log, held, events, bytes);
    gone.checked_sub(1).and_then(|last| log.get(last)).map(|e| e.rev)
}

/// Forgets `log`'s events at or below `rev`, and what they held.
pub fn drop_through(log: &mut VecDeque<Arc<Event>>, held: &mut usize, rev: u64) {
    while let Some(old) = log.pop_front_if(|e| e.rev <= rev) {
        *held -= held_bytes(&old).min(*held);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("key exists")]
    AlreadyExists,
    #[error("key not found")]
    NotFound,
    /// The object's revision is not the one the write expected.
    #[error("the object has been modified; please apply your changes to the latest version and try again")]
    Conflict,
    /// The revision asked for has been compacted away.
    #[error("too old resource version: {asked} ({oldest})")]
    Expired { asked: u64, oldest: u64 },
    /// The revision asked for is in the future.
    #[error("Too large resource version: {asked}, current: {current}")]
    TooLarge { asked: u64, current: u64 },
    #[error("storage error: {0}")]
    Internal(String),
}

/// A watch: the events already committed after the start revision (or a synthetic ADDED
/// per object for a watch without one), then the live stream. The stream closes when the
/// watcher falls too far behind (a stalled client is cut off, not buffered without end).
pub struct Watch {
    pub initial: Vec<Arc<Event>>,
    pub rx: super::watch::Receiver,
    /// The revision the watch is synced to after `initial`.
    pub rev: u64,
}

pub trait Storage: Send + Sync {
    /// The newest committed revision.
    fn revision(&self) -> u64;
    /// The oldest revision still answerable by `list(.., Some(rev))` and `watch`.
    fn oldest(&self) -> u64;
    fn get(&self, key: &str) -> Option<Stored>;
    /// Objects under `prefix` in key order, as of `at` (default: now), with that revision.
    fn list(&self, prefix: &str, at: Option<u64>) -> Result<(Vec<Stored>, u64), StorageError>;
    fn create(&self, key: &str, value: Value) -> Result<Stored, StorageError>;
    /// Replaces the object when its revision is `expected` (any revision when None).
    fn update(&self, key: &str, value: Value, expected: Option<u64>) -> Result<Stored, StorageError>;
    fn delete(&self, key: &str, expected: Option<u64>) -> Result<Stored, StorageError>;
    /// Events under `prefix` after `from`; `None` starts with the current objects as ADDED.
    fn watch(&self, prefix: &str, from: Option<u64>) -> Result<Watch, StorageError>;
    /// Forgets events at or below `rev`.
    fn compact(&self, rev: u64);
    /// Ends every watch, and every one started later: the server is shutting down.
    fn close_watches(&self);
    /// Waits until this replica's view holds every write committed before the call (kube's
    /// quorum read): what a read without a resourceVersion must see. The embedded store is
    /// always current.
    fn sync(&self) -> Result<(), StorageError> {
        Ok(())
    }
    /// Whether other replicas write the same store (so `sync` has work to do).
    fn replicated(&self) -> bool {
        false
    }
    /// Whether the backend can serve (the `etcd` health check).
    fn healthy(&self) -> Result<(), String>;
}

/// Stamps the revision into the object as its resourceVersion.
pub fn stamp(mut v: Value, rev: u64) -> Value {
    if let Some(meta) = v.as_object_mut().and_then(|m| m.entry("metadata").or_insert_with(|| json!({})).as_object_mut())
    {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
    v
}

/// The objects under `prefix`, in key order.
pub fn under<'a>(objects: &'a BTreeMap<String, Stored>, prefix: &str) -> impl Iterator<Item = &'a Stored> {
    let prefix = prefix.to_string();
    objects.range(prefix.clone()..).take_while(move |(k, _)| k.starts_with(&prefix)).map(|(_, v)| v)
}

/// What a watch starts with, for backends that keep objects and a log of recent events in
/// memory: without `from`, every object under `prefix` as ADDED; with it, the logged events
/// after it (Expired when it was compacted away).
pub fn initial_events(
    objects: &BTreeMap<String, Stored>,
    log: &VecDeque<Arc<Event>>,
    compacted: u64,
    prefix: &str,
    from: Option<u64>,
) -> Result<Vec<Arc<Event>>, StorageError> {
    match from {
        None => Ok(under(objects, prefix)
            .map(|v| {
                Arc::new(Event {
                    rev: v.rev,
                    kind: EventType::Added,
                    key: v.key.clone(),
                    value: v.value.clone(),
                    prev: None,
                    raw: v.raw.clone(),
                })
            })
            .collect()),
        Some(r) if r < compacted => Err(StorageError::Expired { asked: r, oldest: compacted }),
        Some(r) => Ok(log.iter().filter(|e| e.rev > r && e.key.starts_with(prefix)).cloned().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType, size: usize) -> Arc<Event> {
        let raw = Some(Bytes::from(vec![b' '; size]));
        Arc::new(Event { rev: 0, kind, key: String::new(), value: Arc::new(Value::Null), prev: None, raw })
    }

    #[test]
    fn the_oldest_events_go_past_the_count_or_the_bytes() {
        let log: VecDeque<Arc<Event>> =
            [(EventType::Added, 10), (EventType::Deleted, 10), (EventType::Added, 5), (EventType::Modified, 5)]
                .into_iter()
                .map(|(k, n)| event(k, n))
                .collect();
        let held: usize = log.iter().map(|e| held_bytes(e)).sum();
        assert_eq!(held, 10 + 2 * 10 + 5 + 5, "a deletion holds its object twice");
        assert_eq!(excess(&log, held, 10, 1000), 0);
        assert_eq!(excess(&log, held, 2, 1000), 2, "by count");
        assert_eq!(excess(&log, held, 10, 10), 2, "by bytes: 40 - 10 - 20 = 10");
        assert_eq!(excess(&log, held, 10, 9), 3);
        assert_eq!(excess(&log, held, 10, 0), 3, "the newest stays, whatever its size");
    }
}
