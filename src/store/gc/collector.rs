//! The garbage collector (kube's garbagecollector.go and graph_builder.go) as a thread of the
//! store. It follows every write through a storage watch from the full state (so objects
//! left over from a restart, or written by another replica on the same etcd, are seen as
//! well), keeps the owner → dependents graph, and for each object a change concerns:
//! - an owner being deleted with `orphan`: removes its ownerReferences from the dependents,
//!   then the finalizer;
//! - an owner being deleted with `foregroundDeletion`: deletes its dependents, and drops the
//!   finalizer (which removes it) once no dependent with `blockOwnerDeletion` is left;
//! - a dependent: deleted once none of its owners is left (an owner of another uid under the
//!   same name is not its owner), with the propagation its own finalizers ask for; an owner
//!   that is gone but others are not is only removed from its ownerReferences.
//!
//! Every write is a compare-and-swap on the revision read, so replicas sharing one etcd may
//! act on the same object: the loser of a race re-reads and finds nothing left to do.

use super::{Propagation, FOREGROUND, ORPHAN};
use crate::store::backend::{Event, EventType, StorageError, Stored};
use crate::store::namespace::terminating;
use crate::store::resources::ResourceDef;
use crate::store::rest::write::delete_one;
use crate::store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How soon an object whose processing failed (a lost write race, a storage error) is
/// looked at again.
const RETRY: Duration = Duration::from_millis(200);

/// One ownerReference, as far as the collector reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OwnerRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    block: bool,
}

fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    let s = |r: &Value, f: &str| r[f].as_str().unwrap_or_default().to_string();
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| OwnerRef {
            api_version: s(r, "apiVersion"),
            kind: s(r, "kind"),
            name: s(r, "name"),
            uid: s(r, "uid"),
            block: r["blockOwnerDeletion"].as_bool().unwrap_or(false),
        })
        .collect()
}

fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj["metadata"]["finalizers"].as_array().is_some_and(|a| a.iter().any(|x| x == f))
}

/// Who depends on whom, from the objects' ownerReferences.
#[derive(Default)]
struct Graph {
    /// owner uid → keys of the objects naming it as an owner
    dependents: HashMap<String, HashSet<String>>,
    /// key → the ownerReferences it had when last seen
    owners: HashMap<String, Vec<OwnerRef>>,
    /// uid → key of every object seen (graph_builder's uidToNode): an owner is found by the
    /// uid its dependents name, whatever name they give it
    keys: HashMap<String, String>,
}

impl Graph {
    fn set(&mut self, key: &str, refs: Vec<OwnerRef>) {
        if let Some(old) = self.owners.remove(key) {
            for r in old {
                if let Some(d) = self.dependents.get_mut(&r.uid) {
                    d.remove(key);
                    if d.is_empty() {
                        self.dependents.remove(&r.uid);
                    }
                }
            }
        }
        if refs.is_empty() {
            return;
        }
        for r in &refs {
            self.dependents.entry(r.uid.clone()).or_default().insert(key.to_string());
        }
        self.owners.insert(key.to_string(), refs);
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents.get(uid).map(|d| d.iter().cloned().collect()).unwrap_or_default()
    }
}

/// Starts `store`'s garbage collector thread. It ends with the store.
pub fn start(store: &Store) {
    crate::store::controller::start(store, "garbage-collector", |store: &Store| Collector {
        defs: store.all_defs(),
        custom: store.custom.clone(),
        seen: store.custom.load_full(),
        graph: Graph::default(),
        queue: BTreeMap::new(),
    });
}

struct Collector {
    /// The store's resources (to find an owner's key from its reference), custom ones included.
    defs: Vec<ResourceDef>,
    /// The custom resources served now, and the set `defs` was built with.
    custom: Arc<arc_swap::ArcSwap<crate::store::CustomSet>>,
    seen: Arc<crate::store::CustomSet>,
    graph: Graph,
    /// Keys to look at, and from when.
    queue: BTreeMap<String, Instant>,
}

impl crate::store::controller::Controller for Collector {
    fn observe(&mut self, ev: &Event) {
        self.follow_crds();
        Collector::observe(self, ev)
    }

    fn work(&mut self, store: &Store) {
        self.follow_crds();
        Collector::work(self, store)
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.values().min().copied()
    }
}

impl Collector {
    /// Takes in the custom resources a CRD write added or removed.
    fn follow_crds(&mut self) {
        let now = self.custom.load_full();
        if !Arc::ptr_eq(&now, &self.seen) {
            self.defs.retain(|d| d.custom.is_none());
            self.defs.extend(now.defs.iter().cloned());
            self.seen = now;
        }
    }

    fn enqueue(&mut self, key: &str, due: Instant) {
        let slot = self.queue.entry(key.to_string()).or_insert(due);
        *slot = (*slot).min(due);
    }

    /// Updates the graph from one change and queues what it concerns (graph_builder's
    /// processGraphChanges).
    fn observe(&mut self, ev: &Event) {
        let now = Instant::now();
        let old = self.graph.owners.get(&ev.key).cloned().unwrap_or_default();
        if ev.kind == EventType::Deleted {
            self.graph.keys.remove(uid(&ev.value));
            self.graph.set(&ev.key, Vec::new());
            // its dependents may have lost their last owner; a foreground owner may be waiting for it
            for d in self.graph.dependents_of(uid(&ev.value)) {
                self.enqueue(&d, now);
            }
            for r in old {
                self.enqueue_owner(&ev.key, &r, now);
            }
            return;
        }
        if !uid(&ev.value).is_empty() {
            self.graph.keys.insert(uid(&ev.value).to_string(), ev.key.clone());
        }
        let refs = owner_refs(&ev.value);
        let changed = refs != old;
        self.graph.set(&ev.key, refs.clone());
        if changed {
            // an owner this object no longer blocks may be able to go (found by hashing: an
            // object may name thousands of owners)
            let kept: HashSet<&OwnerRef> = refs.iter().collect();
            for r in old.iter().filter(|r| !kept.contains(r)) {
                self.enqueue_owner(&ev.key, r, now);
            }
        }
        let gc_finalizer = has_finalizer(&ev.value, ORPHAN) || has_finalizer(&ev.value, FOREGROUND);
        if (changed && !refs.is_empty()) || (terminating(&ev.value) && gc_finalizer) {
            self.enqueue(&ev.key, now);
        }
    }

    /// Queues the owner `r` of the object at `dependent_key`, if this store holds its kind.
    fn enqueue_owner(&mut self, dependent_key: &str, r: &OwnerRef, now: Instant) {
        // by the uid the reference names (a foreground owner waits on its dependents by uid),
        // else where the reference points
        if let Some(key) = self.graph.keys.get(&r.uid).cloned() {
            self.enqueue(&key, now);
            return;
        }
        let Some(dependent) = def_of(&self.defs, dependent_key) else { return };
        if let Some(key) = owner_key(&self.defs, dependent_key, dependent, r) {
            self.enqueue(&key, now);
        }
    }

    /// Processes every due key.
    fn work(&mut self, store: &Store) {
        let now = Instant::now();
        let due: Vec<String> = self.queue.iter().filter(|(_, d)| **d <= now).map(|(k, _)| k.clone()).collect();
        for key in due {
            self.queue.remove(&key);
            if let Err(e) = self.process(store, &key) {
                tracing::debug!(key, error = %e, "garbage collector: retrying");
                self.enqueue(&key, Instant::now() + RETRY);
            }
        }
    }

    /// attemptToDeleteItem, with its owner-side branches (orphaning, foreground).
    fn process(&mut self, store: &Store, key: &str) -> Result<(), StorageError> {
        let Some(item) = store.storage.get(key) else { return Ok(()) };
        let Some(def) = def_of(&self.defs, key).cloned() else { return Ok(()) };
        if terminating(&item.value) {
            if has_finalizer(&item.value, ORPHAN) {
                return self.orphan_dependents(store, &def, &item);
            }
            if has_finalizer(&item.value, FOREGROUND) {
                return self.delete_dependents(store, &def, &item);
            }
            return Ok(()); // being deleted: its dependents are looked at once it is gone
        }
        let refs = owner_refs(&item.value);
        if refs.is_empty() {
            return Ok(());
        }
        let (mut solid, mut dangling, mut waiting) = (0, Vec::new(), Vec::new());
        for r in &refs {
            match owner_state(store, &self.defs, key, &def, r) {
                Owner::Solid => solid += 1,
                Owner::Absent => dangling.push(r.uid.clone()),
                Owner::WaitingForDependents => waiting.push(r.uid.clone()),
            }
        }
        if solid > 0 {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            // only the owners that are gone, or wait for this one, leave its ownerReferences
            let gone: HashSet<String> = dangling.into_iter().chain(waiting).collect();
            return remove_owner_refs(store, &def, &item, &gone);
        }
        let policy = if !waiting.is_empty() && !self.graph.dependents_of(uid(&item.value)).is_empty() {
            Propagation::Foreground
        } else if has_finalizer(&item.value, ORPHAN) {
            Propagation::Orphan
        } else if has_finalizer(&item.value, FOREGROUND) {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        tracing::info!(key, ?policy, "garbage collector: deleting an object whose owners are gone");
        match delete_one(store, &def, &item, false, Some(policy)) {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An owner deleted in the foreground: its dependents go; it goes once none that blocks
    /// its deletion is left (processDeletingDependentsItem).
    fn delete_dependents(&mut self, store: &Store, def: &ResourceDef, owner: &Stored) -> Result<(), StorageError> {
        let owner_uid = uid(&owner.value).to_string();
        let mut blocking = 0;
        let now = Instant::now();
        for key in self.graph.dependents_of(&owner_uid) {
            let Some(dep) = store.storage.get(&key) else { continue };
            let refs = owner_refs(&dep.value);
            let Some(r) = refs.iter().find(|r| r.uid == owner_uid) else { continue };
            if r.block {
                blocking += 1;
            }
            let deleting_dependents = terminating(&dep.value) && has_finalizer(&dep.value, FOREGROUND);
            if !deleting_dependents {
                self.enqueue(&key, now);
            }
        }
        if blocking > 0 {
            return Ok(());
        }
        remove_finalizer(store, def, owner, FOREGROUND)
    }

    /// An owner deleted with `orphan`: its dependents lose their references to it, then it
    /// loses the finalizer (orphanDependents, removeFinalizer).
    fn orphan_dependents(&mut self, store: &Store, def: &ResourceDef, owner: &Stored) -> Result<(), StorageError> {
        let owner_uid = uid(&owner.value).to_string();
        let only: HashSet<String> = [owner_uid.clone()].into();
        for key in self.graph.dependents_of(&owner_uid) {
            let Some(dep) = store.storage.get(&key) else { continue };
            let Some(dep_def) = def_of(&self.defs, &key) else { continue };
            remove_owner_refs(store, dep_def, &dep, &only)?;
        }
        remove_finalizer(store, def, owner, ORPHAN)
    }
}

/// What an ownerReference points at (classifyReferences).
enum Owner {
    /// There, and not waiting for its dependents (or not known to this store: left alone,
    /// as kube's collector cannot resolve it either).
    Solid,
    /// Not there, or another object of that name (another uid).
    Absent,
    /// Being deleted in the foreground.
    WaitingForDependents,
}

fn owner_state(
    store: &Store,
    defs: &[ResourceDef],
    dependent_key: &str,
    dependent: &ResourceDef,
    r: &OwnerRef,
) -> Owner {
    let Some(key) = owner_key(defs, dependent_key, dependent, r) else {
        return Owner::Solid;
    };
    match store.storage.get(&key) {
        None => Owner::Absent,
        Some(o) if uid(&o.value) != r.uid => Owner::Absent,
        Some(o) if terminating(&o.value) && has_finalizer(&o.value, FOREGROUND) => Owner::WaitingForDependents,
        Some(_) => Owner::Solid,
    }
}

/// The resource a stored key belongs to (the longest prefix: a core resource's may prefix a
/// group's).
fn def_of<'a>(defs: &'a [ResourceDef], key: &str) -> Option<&'a ResourceDef> {
    defs.iter().filter(|d| key.starts_with(&d.prefix())).max_by_key(|d| d.prefix().len())
}

/// The namespace of a stored key of a namespaced resource.
fn namespace_of<'a>(def: &ResourceDef, key: &'a str) -> &'a str {
    key.strip_prefix(&def.prefix()).and_then(|rest| rest.split('/').next()).unwrap_or_default()
}

/// Where the owner named by a reference is stored: in the dependent's namespace for a
/// namespaced kind, cluster-wide for a cluster-scoped one; None for a kind this store does
/// not serve, or a namespaced owner of a cluster-scoped dependent (which kube refuses to
/// resolve).
fn owner_key(defs: &[ResourceDef], dependent_key: &str, dependent: &ResourceDef, r: &OwnerRef) -> Option<String> {
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let def = defs.iter().find(|d| d.group == group && d.kind == r.kind)?;
    match (def.namespaced, dependent.namespaced) {
        (false, _) => Some(def.key("", &r.name)),
        (true, true) => Some(def.key(namespace_of(dependent, dependent_key), &r.name)),
        (true, false) => None,
    }
}

/// Removes the ownerReferences with these uids from `item` (the GC's delete-owner-ref patch),
/// re-reading on a lost race.
fn remove_owner_refs(
    store: &Store,
    def: &ResourceDef,
    item: &Stored,
    uids: &HashSet<String>,
) -> Result<(), StorageError> {
    let mut item = item.clone();
    for _ in 0..crate::store::rest::write::RETRIES {
        let refs = item.value["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        let kept: Vec<Value> =
            refs.iter().filter(|r| !uids.contains(r["uid"].as_str().unwrap_or_default())).cloned().collect();
        if kept.len() == refs.len() {
            return Ok(());
        }
        let mut new = (*item.value).clone();
        match new["metadata"].as_object_mut() {
            Some(m) if kept.is_empty() => {
                m.remove("ownerReferences");
            }
            Some(m) => {
                m.insert("ownerReferences".into(), Value::Array(kept));
            }
            None => return Ok(()),
        }
        match store.update(def, &item.key, new, Some(item.rev)) {
            Ok(_) | Err(StorageError::NotFound) => return Ok(()),
            Err(StorageError::Conflict) => match store.storage.get(&item.key) {
                Some(fresh) => item = fresh,
                None => return Ok(()),
            },
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Conflict)
}

/// Removes `finalizer` from a deleting object; the object goes with its last finalizer.
fn remove_finalizer(store: &Store, def: &ResourceDef, item: &Stored, finalizer: &str) -> Result<(), StorageError> {
    let mut item = item.clone();
    for _ in 0..crate::store::rest::write::RETRIES {
        if !has_finalizer(&item.value, finalizer) {
            return Ok(());
        }
        let mut new = (*item.value).clone();
        let kept: Vec<Value> = new["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .cloned()
            .collect();
        if kept.is_empty() {
            new["metadata"].as_object_mut().map(|m| m.remove("finalizers"));
        } else {
            new["metadata"]["finalizers"] = json!(kept);
        }
        let emptied = crate::store::namespace::emptied_by_update(def, &new);
        match store.update(def, &item.key, new, Some(item.rev)) {
            Ok(s) => {
                if emptied {
                    match store.delete(def, &s.key, Some(s.rev)) {
                        Ok(_) | Err(StorageError::NotFound) | Err(StorageError::Conflict) => {}
                        Err(e) => return Err(e),
                    }
                }
                return Ok(());
            }
            Err(StorageError::NotFound) => return Ok(()),
            Err(StorageError::Conflict) => match store.storage.get(&item.key) {
                Some(fresh) => item = fresh,
                None => return Ok(()),
            },
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Conflict)
}
