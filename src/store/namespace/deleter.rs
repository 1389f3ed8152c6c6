//! The namespace deleter: kube's namespace controller (namespaced_resources_deleter.go) as a
//! thread of the store. A namespace marked for deletion is synced after kube's grace period
//! (other replicas see the mark first, and `kubectl delete -f` of a namespace with its objects
//! still finds them); a sync deletes everything in it, records the outcome in its conditions,
//! and once it is empty drops the `kubernetes` finalizer, which removes it. Removals in a
//! terminating namespace wake it again; a periodic resync picks up namespaces marked by other
//! replicas or left over from a restart.

use super::conditions::{self, Totals};
use super::{is_namespaces, list_len, terminating, FINALIZER};
use crate::store::backend::{StorageError, Stored};
use crate::store::gc::Propagation;
use crate::store::resources::ResourceDef;
use crate::store::rest::write::delete_one;
use crate::store::{Shared, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// kube's namespaceDeletionGracePeriod: how long a new deletion waits before it is processed.
pub const GRACE_PERIOD: Duration = Duration::from_secs(5);
/// How often every terminating namespace is looked at again.
const RESYNC: Duration = Duration::from_secs(10);
/// kube's finalizerEstimateSeconds / 2 + 1: when content held by finalizers is checked again
/// (its removal wakes the namespace sooner).
const FINALIZER_RETRY: Duration = Duration::from_secs(8);
/// How soon a sync that failed is tried again.
const ERROR_RETRY: Duration = Duration::from_secs(1);

/// The store's handle on its deleter thread: what to sync, and when.
#[derive(Default)]
pub struct Deleter {
    tx: Mutex<Option<Sender<(String, Instant)>>>,
    /// Namespaces seen terminating by a sync, whose content removals wake them.
    terminating: Mutex<HashSet<String>>,
}

impl Deleter {
    fn enqueue(&self, name: &str, due: Instant) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send((name.to_string(), due));
        }
    }

    /// A namespace just marked for deletion.
    pub fn after_grace_period(&self, name: &str) {
        self.enqueue(name, Instant::now() + GRACE_PERIOD);
    }

    /// An object in `namespace` was removed: sync it now if it is terminating.
    pub fn content_removed(&self, namespace: &str) {
        if self.terminating.lock().unwrap_or_else(|e| e.into_inner()).contains(namespace) {
            self.enqueue(namespace, Instant::now());
        }
    }

    /// Ends the deleter thread (tests drive `sync` themselves).
    #[cfg(test)]
    pub fn stop(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn track(&self, name: &str, terminating: bool) {
        let mut set = self.terminating.lock().unwrap_or_else(|e| e.into_inner());
        if terminating {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }
}

/// Starts `store`'s deleter thread. It ends with the store (its queue's sender goes with it).
pub fn start(store: &Store) {
    let (tx, rx) = channel::<(String, Instant)>();
    *store.namespaces.tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    let weak: Weak<Shared> = Arc::downgrade(&store.shared);
    let spawned = std::thread::Builder::new().name("namespace-deleter".into()).spawn(move || {
        let mut pending: BTreeMap<String, Instant> = BTreeMap::new();
        // what a restart left terminating is picked up after the grace period, as new work is
        let mut next_resync = Instant::now() + GRACE_PERIOD;
        loop {
            let now = Instant::now();
            let next = pending.values().copied().chain([next_resync]).min().unwrap_or(next_resync);
            match rx.recv_timeout(next.saturating_duration_since(now)) {
                Ok((name, due)) => {
                    let slot = pending.entry(name).or_insert(due);
                    *slot = (*slot).min(due);
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(shared) = weak.upgrade() else { return };
            let store = Store { shared };
            let now = Instant::now();
            if now >= next_resync {
                next_resync = now + RESYNC;
                for (name, due) in terminating_namespaces(&store) {
                    pending.entry(name).or_insert(due);
                }
            }
            let due: Vec<String> = pending.iter().filter(|(_, d)| **d <= now).map(|(n, _)| n.clone()).collect();
            for name in due {
                pending.remove(&name);
                // a bug in one namespace's sync must not end the deleter for all of them
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync(&store, &name)));
                match outcome {
                    Ok(Outcome::Done) => {}
                    Ok(Outcome::Retry(after)) => {
                        pending.insert(name, Instant::now() + after);
                    }
                    Err(_) => {
                        tracing::error!(namespace = name, "namespace deleter: sync panicked");
                        pending.insert(name, Instant::now() + RESYNC);
                    }
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the namespace deleter");
    }
}

/// Every terminating namespace, with when its grace period (from its deletionTimestamp,
/// whichever replica set it) is over.
fn terminating_namespaces(store: &Store) -> Vec<(String, Instant)> {
    let Some(def) = store.def("", "namespaces") else { return Vec::new() };
    let Ok((items, _)) = store.storage.list(&def.prefix(), None) else { return Vec::new() };
    let now = Instant::now();
    items
        .iter()
        .filter(|s| terminating(&s.value))
        .filter_map(|s| {
            let name = s.value["metadata"]["name"].as_str()?.to_string();
            let marked = s.value["metadata"]["deletionTimestamp"].as_str();
            let since = marked
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .and_then(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().ok())
                .unwrap_or(GRACE_PERIOD);
            Some((name, now + GRACE_PERIOD.saturating_sub(since)))
        })
        .collect()
}

/// What a sync left to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing (gone, not terminating, or held only by finalizers of others).
    Done,
    /// Look again after this long.
    Retry(Duration),
}

/// One pass of kube's namespaced resources deleter over namespace `name`.
pub fn sync(store: &Store, name: &str) -> Outcome {
    let Some(def) = store.def("", "namespaces").cloned() else { return Outcome::Done };
    let key = def.key("", name);
    let Some(ns) = store.storage.get(&key) else {
        store.namespaces.track(name, false);
        return Outcome::Done;
    };
    if !terminating(&ns.value) {
        store.namespaces.track(name, false);
        return Outcome::Done;
    }
    store.namespaces.track(name, true);
    if list_len(&ns.value["spec"]["finalizers"]) == 0 {
        return remove(store, &def, &ns);
    }
    let totals = delete_all_content(store, name);
    let ns = match update_status(store, &def, &key, &totals) {
        Ok(Some(ns)) => ns,
        Ok(None) => return Outcome::Done,
        Err(e) => {
            tracing::warn!(namespace = name, error = %e, "namespace deleter: status update failed");
            return Outcome::Retry(ERROR_RETRY);
        }
    };
    if !totals.errors.is_empty() {
        return Outcome::Retry(ERROR_RETRY);
    }
    if totals.remaining() > 0 {
        return Outcome::Retry(FINALIZER_RETRY);
    }
    finalize(store, &def, ns)
}

/// Deletes everything in `namespace` and counts what is left, as deleteAllContent does.
fn delete_all_content(store: &Store, namespace: &str) -> Totals {
    let mut totals = Totals::default();
    for d in store.all_defs().iter().filter(|d| d.namespaced) {
        let gvr = format!("{}/{}, Resource={}", d.group, d.version, d.resource);
        let mut failed = None;
        match store.storage.list(&d.list_prefix(namespace), None) {
            Ok((items, _)) => {
                for item in items {
                    match delete_one(store, d, &item, false, Some(Propagation::Background)) {
                        Ok(_) | Err(StorageError::NotFound) | Err(StorageError::Conflict) => {}
                        Err(e) => failed = Some(e.to_string()),
                    }
                }
            }
            Err(e) => failed = Some(e.to_string()),
        }
        let left = match store.storage.list(&d.list_prefix(namespace), None) {
            Ok((items, _)) => items,
            Err(e) => {
                totals.errors.push(e.to_string());
                continue;
            }
        };
        let mut held = false;
        for item in &left {
            for f in item.value["metadata"]["finalizers"].as_array().into_iter().flatten() {
                *totals.finalizers.entry(f.as_str().unwrap_or_default().to_string()).or_default() += 1;
                held = true;
            }
        }
        if !left.is_empty() {
            totals.remaining.insert(format!("{}.{}", d.resource, d.group), left.len());
        }
        match failed {
            Some(e) => totals.errors.push(e),
            None if !left.is_empty() && !held => {
                totals.errors.push(format!("unexpected items still remain in namespace: {namespace} for gvr: {gvr}"))
            }
            None => {}
        }
    }
    totals
}

/// Writes phase Terminating and the deletion conditions when they changed; the namespace as
/// it now is, None when it is gone.
fn update_status(store: &Store, def: &ResourceDef, key: &str, totals: &Totals) -> Result<Option<Stored>, StorageError> {
    for _ in 0..crate::store::rest::write::RETRIES {
        let Some(ns) = store.storage.get(key) else { return Ok(None) };
        let mut new = (*ns.value).clone();
        if !new["status"].is_object() {
            new["status"] = json!({});
        }
        let mut changed = new["status"]["phase"] != "Terminating";
        new["status"]["phase"] = json!("Terminating");
        changed |= conditions::update(&mut new["status"], totals, &crate::store::rest::now());
        if !changed {
            return Ok(Some(ns));
        }
        match store.update(def, key, new, Some(ns.rev)) {
            Ok(s) => return Ok(Some(s)),
            Err(StorageError::Conflict) => continue,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Conflict)
}

/// Drops our finalizer (kube's finalize call); the namespace goes with its last finalizer.
fn finalize(store: &Store, def: &ResourceDef, mut ns: Stored) -> Outcome {
    for _ in 0..crate::store::rest::write::RETRIES {
        let mut new: Value = (*ns.value).clone();
        if !new["spec"].is_object() {
            new["spec"] = json!({});
        }
        let kept: Vec<Value> = new["spec"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f.as_str() != Some(FINALIZER))
            .cloned()
            .collect();
        new["spec"]["finalizers"] = json!(kept);
        super::omit_empty_finalizers(&mut new);
        let result = if kept.len() == list_len(&ns.value["spec"]["finalizers"]) {
            Ok(ns.clone())
        } else {
            store.update(def, &ns.key, new, Some(ns.rev))
        };
        match result {
            Ok(s) if list_len(&s.value["spec"]["finalizers"]) == 0 => return remove(store, def, &s),
            Ok(_) => return Outcome::Done, // someone else's finalizer holds it
            Err(StorageError::NotFound) => return Outcome::Done,
            Err(StorageError::Conflict) => match store.storage.get(&ns.key) {
                Some(fresh) => ns = fresh,
                None => return Outcome::Done,
            },
            Err(e) => {
                tracing::warn!(error = %e, "namespace deleter: finalize failed");
                return Outcome::Retry(ERROR_RETRY);
            }
        }
    }
    Outcome::Retry(ERROR_RETRY)
}

/// Removes a finalized namespace, unless metadata.finalizers still hold it.
fn remove(store: &Store, def: &ResourceDef, ns: &Stored) -> Outcome {
    debug_assert!(is_namespaces(def));
    if list_len(&ns.value["metadata"]["finalizers"]) > 0 {
        return Outcome::Done;
    }
    match store.delete(def, &ns.key, Some(ns.rev)) {
        Ok(_) | Err(StorageError::NotFound) => {
            let name = ns.value["metadata"]["name"].as_str().unwrap_or_default();
            store.namespaces.track(name, false);
            Outcome::Done
        }
        Err(StorageError::Conflict) => Outcome::Retry(Duration::ZERO),
        Err(e) => {
            tracing::warn!(error = %e, "namespace deleter: delete failed");
            Outcome::Retry(ERROR_RETRY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{redb::RedbStorage, resources};

    /// A namespace another replica marked just now still gets its grace period here; one
    /// marked long ago is due at once.
    #[test]
    fn resync_keeps_the_grace_period_of_any_replica() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::with_storage(resources::defaults(), Arc::new(RedbStorage::open(dir.path(), 100).unwrap())).unwrap();
        store.namespaces.stop();
        let def = store.def("", "namespaces").unwrap().clone();
        for (name, marked) in [("fresh", crate::store::rest::now()), ("old", "2020-01-01T00:00:00Z".to_string())] {
            let ns = json!({"metadata": {"name": name, "deletionTimestamp": marked}, "spec": {"finalizers": ["kubernetes"]}});
            store.storage.create(&def.key("", name), ns).unwrap();
        }
        let now = Instant::now();
        let due: BTreeMap<String, Instant> = terminating_namespaces(&store).into_iter().collect();
        assert_eq!(due.len(), 2, "{due:?}");
        assert!(due["fresh"] > now + Duration::from_secs(3), "{:?}", due["fresh"] - now);
        assert!(due["old"] <= now + Duration::from_millis(100));
    }
}
