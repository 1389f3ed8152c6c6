//! What every namespace holds from its creation, as kube-controller-manager's
//! serviceaccounts-controller and root-ca-cert-publisher keep it: the `default` ServiceAccount
//! and the `kube-root-ca.crt` ConfigMap (`ca.crt`: the CA bundle that verifies this server),
//! created for each active namespace (those of before a restart too), put back when deleted,
//! and the ConfigMap's data restored when edited. Creates are idempotent and updates
//! compare-and-swap, so replicas on one etcd may both run it.

use super::terminating;
use crate::store::backend::{Event, EventType, StorageError};
use crate::store::controller::Controller;
use crate::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap with the cluster's CA bundle in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal \
     endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across \
     distributions of Kubernetes clusters.";
const RETRY: Duration = Duration::from_millis(500);

/// Starts the controller over `store`; `root_ca` is the PEM bundle to publish (None: no
/// ConfigMap is published).
pub fn start(store: &Store, root_ca: Option<String>) {
    if store.def("", "namespaces").is_none() {
        return;
    }
    crate::store::controller::start(store, "namespace-defaults", move |_: &Store| NamespaceDefaults {
        root_ca: root_ca.clone(),
        queue: BTreeMap::new(),
    });
}

struct NamespaceDefaults {
    root_ca: Option<String>,
    /// Namespaces to look at, and from when.
    queue: BTreeMap<String, Instant>,
}

/// The namespace and name of a stored key under `prefix` (a namespaced resource's).
fn namespaced<'a>(key: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(prefix)?.split_once('/')
}

impl Controller for NamespaceDefaults {
    fn observe(&mut self, ev: &Event) {
        let ns = if let Some(name) = ev.key.strip_prefix("/registry/namespaces/") {
            (ev.kind != EventType::Deleted && !terminating(&ev.value)).then_some(name)
        } else if let Some((ns, name)) = namespaced(&ev.key, "/registry/serviceaccounts/") {
            (ev.kind == EventType::Deleted && name == DEFAULT_SERVICE_ACCOUNT).then_some(ns)
        } else if let Some((ns, name)) = namespaced(&ev.key, "/registry/configmaps/") {
            (ev.kind != EventType::Added && name == ROOT_CA_CONFIGMAP && self.root_ca.is_some()).then_some(ns)
        } else {
            None
        };
        if let Some(ns) = ns {
            self.queue.entry(ns.to_string()).or_insert_with(Instant::now);
        }
    }

    fn work(&mut self, store: &Store) {
        let now = Instant::now();
        let due: Vec<String> = self.queue.iter().filter(|(_, d)| **d <= now).map(|(k, _)| k.clone()).collect();
        for ns in due {
            self.queue.remove(&ns);
            if let Err(e) = self.sync(store, &ns) {
                tracing::debug!(namespace = ns, error = %e, "namespace defaults: retrying");
                self.queue.insert(ns, Instant::now() + RETRY);
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.values().min().copied()
    }
}

impl NamespaceDefaults {
    fn sync(&self, store: &Store, ns: &str) -> Result<(), StorageError> {
        let Some(ns_def) = store.def("", "namespaces") else { return Ok(()) };
        let Some(namespace) = store.storage.get(&ns_def.key("", ns)) else { return Ok(()) };
        if terminating(&namespace.value) || namespace.value["status"]["phase"] == "Terminating" {
            return Ok(());
        }
        if let Some(sa) = store.def("", "serviceaccounts").cloned() {
            let key = sa.key(ns, DEFAULT_SERVICE_ACCOUNT);
            if store.storage.get(&key).is_none() {
                let obj = new_object("ServiceAccount", ns, DEFAULT_SERVICE_ACCOUNT);
                ignore_exists(store.create(&sa, &key, obj))?;
            }
        }
        let (Some(ca), Some(cm)) = (&self.root_ca, store.def("", "configmaps").cloned()) else { return Ok(()) };
        let key = cm.key(ns, ROOT_CA_CONFIGMAP);
        let data = json!({"ca.crt": ca});
        match store.storage.get(&key) {
            None => {
                let mut obj = new_object("ConfigMap", ns, ROOT_CA_CONFIGMAP);
                obj["metadata"]["annotations"] = json!({DESCRIPTION_ANNOTATION: DESCRIPTION});
                obj["data"] = data;
                ignore_exists(store.create(&cm, &key, obj))
            }
            Some(existing) => {
                let described = existing.value["metadata"]["annotations"][DESCRIPTION_ANNOTATION]
                    .as_str()
                    .is_some_and(|d| !d.is_empty());
                if existing.value["data"] == data && described {
                    return Ok(());
                }
                let mut obj = (*existing.value).clone();
                obj["data"] = data;
                if !obj["metadata"]["annotations"].is_object() {
                    obj["metadata"]["annotations"] = json!({});
                }
                obj["metadata"]["annotations"][DESCRIPTION_ANNOTATION] = json!(DESCRIPTION);
                match store.update(&cm, &key, obj, Some(existing.rev)) {
                    Ok(_) | Err(StorageError::NotFound) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

fn new_object(kind: &str, ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": {"name": name, "namespace": ns, "uid": uuid::Uuid::new_v4().to_string(),
                     "creationTimestamp": crate::store::rest::now()},
    })
}

fn ignore_exists<T>(r: Result<T, StorageError>) -> Result<(), StorageError> {
    match r {
        Ok(_) | Err(StorageError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}
