//! The native object store: kube-apiserver's generic REST semantics (rest/) over a storage
//! backend with one global revision (backend.rs; embedded redb in redb.rs) and an in-memory
//! watch fan-out (watch.rs), for the resources declared in resources.rs.

// Status (kube's error body) is the error type of every verb; it travels by value, as the
// rest of the chain passes it.
#![allow(clippy::result_large_err)]

pub mod backend;
pub mod controller;
pub mod crd;
pub mod etcd;
pub mod events;
pub mod fields_v1;
pub mod gc;
pub mod metrics;
pub mod namespace;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod redb;
pub mod resources;
pub mod rest;
pub mod schema;
pub mod selectors;
pub mod table;
pub mod validate_object;
pub mod validation;
pub mod watch;

use backend::{Storage, StorageError, Stored};
use resources::ResourceDef;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// Store flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// A YAML list of extra resources to serve from the store (group, version, resource,
    /// kind, namespaced, shortNames, singular, categories, subresources), schemaless; for kinds
    /// without a CRD, and kinds kept local in front of an upstream apiserver.
    #[arg(long, value_name = "FILE")]
    pub resources_file: Option<PathBuf>,

    /// In front of an upstream apiserver, kube's built-in resources are the upstream's: the
    /// store keeps only APIServices (the aggregation table), RBAC when frontdoor's own RBAC
    /// authorizer reads it, and --resources-file's (filled by `ServeArgs::complete`).
    #[arg(skip)]
    pub builtins: Option<resources::Builtins>,

    /// How many of the latest changes stay replayable for watches and paginated lists; older
    /// resourceVersions answer 410 Expired.
    #[arg(long, default_value_t = 10_000)]
    pub storage_event_window: usize,

    /// The most bytes of serialized objects the replayable changes may keep alive (each
    /// replaced or deleted object stays until its change leaves the window); past it, the
    /// oldest changes go, as past --storage-event-window, and their resourceVersions answer
    /// 410 Expired.
    #[arg(long, default_value_t = backend::WINDOW_BYTES, value_name = "BYTES")]
    pub storage_event_window_bytes: usize,

    /// The storage backend: `redb` (embedded, under --data-dir) or `etcd3` (shared by several
    /// replicas). Default: etcd3 when --etcd-servers is set, else redb.
    #[arg(long, value_name = "BACKEND")]
    pub storage_backend: Option<String>,

    /// List of etcd servers to connect with (scheme://ip:port), comma separated.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub etcd_servers: Vec<String>,

    /// The prefix to prepend to all resource paths in etcd.
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,

    /// SSL Certificate Authority file used to secure etcd communication.
    #[arg(long, value_name = "FILE")]
    pub etcd_cafile: Option<PathBuf>,

    /// SSL certification file used to secure etcd communication.
    #[arg(long, value_name = "FILE")]
    pub etcd_certfile: Option<PathBuf>,

    /// SSL key file used to secure etcd communication.
    #[arg(long, value_name = "FILE")]
    pub etcd_keyfile: Option<PathBuf>,

    /// The interval of compaction requests. If 0, the compaction request from apiserver is
    /// disabled. The embedded redb store's history is compacted at the same interval.
    #[arg(long, default_value = "5m", value_parser = crate::api::duration::parse_duration)]
    pub etcd_compaction_interval: std::time::Duration,

    /// If set, this root certificate authority is published as `ca.crt` of the
    /// kube-root-ca.crt ConfigMap in every namespace. This must be a valid PEM-encoded CA
    /// bundle. Default on the development certs: ca.crt in --cert-dir.
    #[arg(long, value_name = "FILE")]
    pub root_ca_file: Option<PathBuf>,
}

/// kube's namespaces that exist from the first start.
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

type ChangeHook = Arc<dyn Fn(Vec<Value>) + Send + Sync>;
/// Reports the live status of an object by name.
pub type StatusFn = dyn Fn(&str) -> Option<Value> + Send + Sync;
type StatusProvider = Arc<StatusFn>;

/// Told of a change of the served custom resources.
type CustomListener = Box<dyn Fn(&Store) + Send + Sync>;

/// The store. Cloning it is cheap and shares everything: background work (the namespace
/// deleter) holds a weak handle to the same state.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// What every clone of a `Store` shares.
pub struct Shared {
    defs: Vec<ResourceDef>,
    /// The custom resources served now (CustomResourceDefinitions'), with their schemas.
    custom: Arc<arc_swap::ArcSwap<CustomSet>>,
    pub storage: Arc<dyn Storage>,
    hooks: Arc<Hooks>,
    /// Told when the served custom resources change (discovery and OpenAPI are rebuilt).
    custom_listeners: Mutex<Vec<CustomListener>>,
    status: RwLock<Vec<(String, String, StatusProvider)>>,
    namespaces: namespace::Deleter,
}

impl std::ops::Deref for Store {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Store {
    /// Opens the configured backend (`data_dir` holds the embedded one).
    pub fn open(a: &StoreArgs, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let mut defs = resources::load(a.resources_file.as_deref())?;
        if let Some(keep) = &a.builtins {
            defs.retain(|d| keep.keeps(d));
        }
        let window = if a.storage_event_window == 0 { 10_000 } else { a.storage_event_window };
        let backend = a.storage_backend.as_deref().unwrap_or(if a.etcd_servers.is_empty() { "redb" } else { "etcd3" });
        let root_ca = match &a.root_ca_file {
            Some(f) => Some(read_ca_bundle(f)?),
            None => None,
        };
        let store = match backend {
            "redb" => {
                let redb = redb::RedbStorage::open(data_dir, window)?.with_window_bytes(a.storage_event_window_bytes);
                let redb: Arc<dyn Storage> = Arc::new(redb);
                backend::start_compactor(Arc::downgrade(&redb), a.etcd_compaction_interval);
                Self::with_storage(defs, redb)
            }
            "etcd3" => {
                if a.etcd_servers.is_empty() {
                    anyhow::bail!("--etcd-servers must be specified with --storage-backend=etcd3");
                }
                let config = etcd::EtcdConfig {
                    prefix: a.etcd_prefix.clone(),
                    window,
                    window_bytes: a.storage_event_window_bytes,
                    ca_file: a.etcd_cafile.clone(),
                    cert_file: a.etcd_certfile.clone(),
                    key_file: a.etcd_keyfile.clone(),
                    compaction_interval: a.etcd_compaction_interval,
                    ..etcd::EtcdConfig::new(a.etcd_servers.clone())
                };
                let storage: Arc<dyn Storage> = Arc::new(etcd::EtcdStorage::connect(&config)?);
                let store = Self::with_storage(defs, storage)?;
                store.follow_other_replicas();
                Ok(store)
            }
            other => anyhow::bail!("--storage-backend {other:?} is not supported (redb, etcd3)"),
        }?;
        namespace::defaults::start(&store, root_ca);
        Ok(store)
    }

    /// A store over any backend (tests and benches use a temp dir).
    pub fn with_storage(defs: Vec<ResourceDef>, storage: Arc<dyn Storage>) -> anyhow::Result<Self> {
        metrics::force();
        let shared = Shared {
            defs,
            custom: Default::default(),
            storage,
            hooks: Default::default(),
            custom_listeners: Default::default(),
            status: RwLock::new(Vec::new()),
            namespaces: Default::default(),
        };
        let store = Store { shared: Arc::new(shared) };
        store.bootstrap()?;
        for d in &store.defs {
            store.count(d);
        }
        namespace::start(&store);
        gc::start(&store);
        crd::controller::start(&store);
        Ok(store)
    }

    fn bootstrap(&self) -> anyhow::Result<()> {
        let Some(ns) = self.def("", "namespaces").cloned() else {
            return Ok(());
        };
        for name in SYSTEM_NAMESPACES {
            let key = ns.key("", name);
            if self.storage.get(&key).is_some() {
                continue;
            }
            let obj = json!({
                "kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(),
                             "creationTimestamp": rest::now(), "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            match self.storage.create(&key, obj) {
                Ok(_) | Err(StorageError::AlreadyExists) => {}
                Err(e) => anyhow::bail!("cannot create namespace {name}: {e}"),
            }
        }
        Ok(())
    }

    /// Registers the `etcd` health check (kube's name for its storage check).
    pub fn register_health(&self, health: &crate::endpoints::health::Health) {
        let storage = self.storage.clone();
        health.add("etcd", crate::endpoints::health::Scope::All, Arc::new(move || storage.healthy()));
    }

    /// The resources the store serves, for discovery: the built-in ones, then the custom.
    pub fn resources(&self) -> Vec<crate::api::ApiResource> {
        let custom = self.custom.load();
        self.defs.iter().chain(custom.defs.iter()).flat_map(ResourceDef::api_resources).collect()
    }

    /// The built-in resources.
    pub fn defs(&self) -> &[ResourceDef] {
        &self.defs
    }

    /// Every resource with storage of its own: the built-in ones and each custom resource
    /// once (at its storage version).
    pub fn all_defs(&self) -> Vec<ResourceDef> {
        let custom = self.custom.load();
        let stored = custom.defs.iter().filter(|d| d.custom.as_ref().is_some_and(|c| c.storage_version == d.version));
        self.defs.iter().chain(stored).cloned().collect()
    }

    /// The definition serving `group`/`version`/`resource`: a built-in one (borrowed) or a
    /// custom resource's (owned: the set changes with every CRD write).
    pub fn served_def(&self, group: &str, version: &str, resource: &str) -> Option<std::borrow::Cow<'_, ResourceDef>> {
        if let Some(d) = self.defs.iter().find(|d| d.group == group && d.version == version && d.resource == resource) {
            return Some(std::borrow::Cow::Borrowed(d));
        }
        let custom = self.custom.load();
        let d = custom.defs.iter().find(|d| d.group == group && d.version == version && d.resource == resource)?;
        Some(std::borrow::Cow::Owned(d.clone()))
    }

    /// Replaces the served custom resources (the CRD controller's hook).
    pub fn set_custom(&self, defs: Vec<ResourceDef>) {
        // a built-in resource is never shadowed
        let defs: Vec<ResourceDef> = defs
            .into_iter()
            .filter(|d| !self.defs.iter().any(|b| b.group == d.group && b.resource == d.resource))
            .collect();
        let schemas = Arc::new(crd::openapi::schemas(&defs));
        // apiserver_storage_objects counts each custom resource once, from what is stored
        for d in defs.iter().filter(|d| d.custom.as_ref().is_some_and(|c| c.storage_version == d.version)) {
            self.count(d);
        }
        self.custom.store(Arc::new(CustomSet { defs, schemas }));
        for listener in self.custom_listeners.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            listener(self);
        }
    }

    /// Calls `f` after every change of the served custom resources.
    pub fn on_custom_change(&self, f: impl Fn(&Store) + Send + Sync + 'static) {
        self.custom_listeners.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(f));
    }

    /// The custom resources' schemas, for /openapi.
    pub fn custom_schemas(&self) -> Arc<openapi::CustomSchemas> {
        self.custom.load().schemas.clone()
    }

    pub fn def(&self, group: &str, resource: &str) -> Option<&ResourceDef> {
        self.defs.iter().find(|d| d.group == group && d.resource == resource)
    }

    /// The uid of the stored core object `resource` `namespace`/`name` (a service account, a
    /// Secret), if it exists: what a service-account token is bound to.
    pub fn core_uid(&self, resource: &str, namespace: &str, name: &str) -> Option<String> {
        let obj = self.core_object(resource, namespace, name)?;
        Some(obj["metadata"]["uid"].as_str().unwrap_or_default().to_string())
    }

    /// A stored core object (`serviceaccounts`, `secrets`, ...), if it exists.
    pub fn core_object(&self, resource: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        Some(self.storage.get(&self.def("", resource)?.key(namespace, name))?.value)
    }

    /// Whether this group/version/resource is served from the store.
    pub fn serves(&self, group: &str, version: &str, resource: &str) -> bool {
        self.defs.iter().any(|d| d.group == group && d.version == version && d.resource == resource)
            || self
                .custom
                .load()
                .defs
                .iter()
                .any(|d| d.group == group && d.version == version && d.resource == resource)
    }

    /// Calls `f` with every object of `group`/`resource` now and after every write to it
    /// (RBAC objects for authorization, APIServices for the router).
    pub fn on_change(&self, group: &str, resource: &str, f: Box<dyn Fn(Vec<Value>) + Send + Sync>) {
        let f: ChangeHook = Arc::from(f);
        f(self.current(group, resource));
        self.hooks.registered.lock().unwrap().push((group.to_string(), resource.to_string(), f));
    }

    /// Fills the status of `group`/`resource` objects on read from `f(name)` (the router
    /// reports APIService availability this way).
    pub fn set_status_provider(&self, group: &str, resource: &str, f: Box<StatusFn>) {
        self.status.write().unwrap().push((group.to_string(), resource.to_string(), Arc::from(f)));
    }

    /// Whether `present` serves every `def` object as stored (no other version's view, no
    /// schema's defaults, no live status): a list asks once instead of once per object.
    pub fn reads_as_stored(&self, def: &ResourceDef) -> bool {
        !events::is_events_v1(def)
            && def.custom.as_ref().and_then(|c| c.schema.as_ref()).is_none()
            && !self.status.read().unwrap().iter().any(|(g, r, _)| *g == def.group && *r == def.resource)
    }

    /// The object as served: another version's view of it (events.k8s.io), or the provided
    /// status, if any, laid over the stored one.
    pub fn present<'a>(&self, def: &ResourceDef, obj: &'a Value) -> Cow<'a, Value> {
        if events::is_events_v1(def) {
            return Cow::Owned(events::to_events_v1(obj));
        }
        // a custom object is read pruned and defaulted by its version's schema, as kube reads
        // one from storage (a default added to the CRD later shows at once)
        if let Some(schema) = def.custom.as_ref().and_then(|c| c.schema.as_ref()) {
            if !crd::structural::needs_prune_or_default(schema, obj) {
                return Cow::Borrowed(obj);
            }
            let mut obj = obj.clone();
            crd::structural::prune_and_default(schema, &mut obj);
            return Cow::Owned(obj);
        }
        let status = self.status.read().unwrap();
        let Some((_, _, f)) = status.iter().find(|(g, r, _)| *g == def.group && *r == def.resource) else {
            return Cow::Borrowed(obj);
        };
        let Some(s) = obj["metadata"]["name"].as_str().and_then(|n| f(n)) else { return Cow::Borrowed(obj) };
        let mut obj = obj.clone();
        obj["status"] = s;
        Cow::Owned(obj)
    }

    fn current(&self, group: &str, resource: &str) -> Vec<Value> {
        self.def(group, resource).map(|def| current(&self.storage, def)).unwrap_or_default()
    }

    /// Runs the change hooks of `def` after a write.
    pub fn changed(&self, def: &ResourceDef) {
        run_hooks(&self.hooks, &self.storage, def);
    }

    /// With a shared backend, other replicas write too: their writes to resources that have
    /// change hooks (RBAC, APIServices) run the hooks here as well, from a watch.
    fn follow_other_replicas(&self) {
        let (hooks, storage, defs) = (self.hooks.clone(), self.storage.clone(), self.defs.clone());
        let spawned = std::thread::Builder::new().name("store-hooks".into()).spawn(move || loop {
            let Ok(mut watch) = storage.watch("/registry/", Some(storage.revision())) else {
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            };
            // (re)started: catch up on whatever a gap may have hidden
            for def in &defs {
                run_hooks(&hooks, &storage, def);
            }
            // the changes queued meanwhile are taken together: each resource's hooks run once
            // for all of them (an RBAC hook compiles the whole policy: run per change, a
            // tenant's burst of writes delayed another replica's revocation by seconds)
            while let Some(d) = futures::executor::block_on(watch.rx.recv()) {
                let mut touched = vec![false; defs.len()];
                let mut note = |key: &str| {
                    if let Some(i) = defs.iter().position(|def| key.starts_with(&def.prefix())) {
                        touched[i] = true;
                    }
                };
                note(&d.event.key);
                while let Ok(d) = watch.rx.try_recv() {
                    note(&d.event.key);
                }
                for (def, _) in defs.iter().zip(&touched).filter(|(_, t)| **t) {
                    run_hooks(&hooks, &storage, def);
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot follow other replicas' changes");
        }
    }

    pub fn create(&self, def: &ResourceDef, key: &str, obj: Value) -> Result<Stored, StorageError> {
        let r = self.storage.create(key, stored_form(def, obj));
        self.after_write(def, &r, 1);
        r
    }

    pub fn update(
        &self,
        def: &ResourceDef,
        key: &str,
        obj: Value,
        expected: Option<u64>,
    ) -> Result<Stored, StorageError> {
        let r = self.storage.update(key, stored_form(def, obj), expected);
        self.after_write(def, &r, 0);
        r
    }

    pub fn delete(&self, def: &ResourceDef, key: &str, expected: Option<u64>) -> Result<Stored, StorageError> {
        let r = self.storage.delete(key, expected);
        self.after_write(def, &r, -1);
        if let (Ok(gone), true) = (&r, def.namespaced) {
            self.namespaces.content_removed(gone.value["metadata"]["namespace"].as_str().unwrap_or_default());
        }
        r
    }

    /// Refreshes `apiserver_storage_objects` for `def`.
    fn count(&self, def: &ResourceDef) {
        let n = self.storage.list(&def.prefix(), None).map(|(i, _)| i.len()).unwrap_or(0);
        metrics::OBJECTS
            .with_label_values(&[&crate::api::status::qualified_resource(&def.group, &def.resource)])
            .set(n as i64);
    }

    fn after_write(&self, def: &ResourceDef, r: &Result<Stored, StorageError>, delta: i64) {
        if r.is_ok() {
            metrics::WRITES.with_label_values(&[&def.resource]).inc();
            if delta != 0 {
                metrics::OBJECTS
                    .with_label_values(&[&crate::api::status::qualified_resource(&def.group, &def.resource)])
                    .add(delta);
            }
            self.changed(def);
        }
    }
}

/// An object as it is stored: another version's view of a resource in the form of the one
/// whose storage it shares.
fn stored_form(def: &ResourceDef, mut obj: Value) -> Value {
    if events::is_events_v1(def) {
        events::to_core(&obj)
    } else {
        crd::to_storage(def, &mut obj);
        obj
    }
}

/// The custom resources served, and their schemas for /openapi.
#[derive(Default)]
pub struct CustomSet {
    pub defs: Vec<ResourceDef>,
    pub schemas: Arc<openapi::CustomSchemas>,
}

/// A PEM CA bundle, checked as kube checks --root-ca-file (every block a certificate).
fn read_ca_bundle(file: &std::path::Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("--root-ca-file {}: {e}", file.display()))?;
    let mut n = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| anyhow::anyhow!("--root-ca-file {}: {e}", file.display()))?;
        block.parse_x509().map_err(|e| anyhow::anyhow!("--root-ca-file {}: {e}", file.display()))?;
        n += 1;
    }
    if n == 0 {
        anyhow::bail!("--root-ca-file {}: no certificates found", file.display());
    }
    Ok(pem)
}

/// Every object of `def` now.
fn current(storage: &Arc<dyn Storage>, def: &ResourceDef) -> Vec<Value> {
    match storage.list(&def.prefix(), None) {
        Ok((items, _)) => items.into_iter().map(|s| (*s.value).clone()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The change hooks, and the lock their runs take.
#[derive(Default)]
struct Hooks {
    registered: Mutex<Vec<(String, String, ChangeHook)>>,
    /// Held from reading the objects to the hooks' return: writers run the hooks in their own
    /// threads, and a run that read the objects before another write must not apply them after
    /// that write's run (a deleted RoleBinding granting again until the next RBAC change).
    applying: Mutex<()>,
}

/// Calls `def`'s change hooks with every object of it.
fn run_hooks(hooks: &Hooks, storage: &Arc<dyn Storage>, def: &ResourceDef) {
    let _in_order = hooks.applying.lock().unwrap_or_else(|e| e.into_inner());
    let hooks: Vec<ChangeHook> = hooks
        .registered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(g, r, _)| *g == def.group && *r == def.resource)
        .map(|(_, _, f)| f.clone())
        .collect();
    if hooks.is_empty() {
        return;
    }
    let all = current(storage, def);
    for f in hooks {
        f(all.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn test_store(dir: &std::path::Path) -> Store {
        // a store's threads (namespace deleter, controllers) may hold it a moment after it
        // is dropped, and the database with it
        let mut tries = 0;
        let storage = loop {
            match redb::RedbStorage::open(dir, 1000) {
                Ok(s) => break Arc::new(s),
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        };
        Store::with_storage(resources::defaults(), storage).unwrap()
    }

    #[test]
    fn system_namespaces_and_change_hooks() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(dir.path());
        let ns = store.def("", "namespaces").unwrap().clone();
        for n in SYSTEM_NAMESPACES {
            assert!(store.storage.get(&ns.key("", n)).is_some(), "{n}");
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        store.on_change(
            "rbac.authorization.k8s.io",
            "roles",
            Box::new(move |objs| s2.lock().unwrap().push(objs.len())),
        );
        let roles = store.def("rbac.authorization.k8s.io", "roles").unwrap().clone();
        store.create(&roles, &roles.key("default", "r"), json!({"metadata": {"name": "r"}})).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![0, 1]);
        // writers racing: the hooks' last run saw every write (what an authorizer applies
        // is the store's state, not an older read of it)
        let applied = Arc::new(Mutex::new(0usize));
        let a2 = applied.clone();
        store.on_change("rbac.authorization.k8s.io", "roles", Box::new(move |objs| *a2.lock().unwrap() = objs.len()));
        for round in 0..150 {
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|t| {
                for w in 0..2 {
                    let (store, roles, barrier) = (&store, &roles, &barrier);
                    t.spawn(move || {
                        let name = format!("r{round}-{w}");
                        barrier.wait();
                        // a write runs the hooks itself
                        store.create(roles, &roles.key("default", &name), json!({"metadata": {"name": name}})).unwrap();
                    });
                }
            });
            assert_eq!(*applied.lock().unwrap(), 1 + 2 * (round + 1), "round {round}");
        }
        // reopening keeps the namespaces without duplicating writes
        let rev = store.storage.revision();
        drop(store);
        let store = test_store(dir.path());
        assert_eq!(store.storage.revision(), rev);
    }
}
