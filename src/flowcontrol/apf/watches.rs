//! kube's watch tracker (request/list_work_estimator's sibling, `watchTracker`): the watches
//! APF let through, by resource and by the namespace and name they follow, so that a write
//! can be charged for the events it fans out (`mutating_work_estimator.go`).

use crate::request_info::RequestInfo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// (group, resource) -> (namespace, name) -> watches; "" is "all".
type Counts = HashMap<(String, String), HashMap<(String, String), usize>>;

#[derive(Default)]
pub struct Watches {
    counts: Mutex<Counts>,
}

/// A registered watch; dropping it (the request ending) forgets it. It names what it follows
/// by the request's own attributes: an idle watch holds no copy of them.
pub struct Registration {
    watches: Arc<Watches>,
    info: Arc<RequestInfo>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.info;
        write!(f, "Registration({:?}, {:?})", (i.api_group(), i.resource()), (i.namespace(), i.name()))
    }
}

impl Watches {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// kube's `RegisterWatch`: a resource watch, counted until the registration drops.
    pub fn register(self: &Arc<Self>, info: &Arc<RequestInfo>) -> Option<Registration> {
        if !info.is_resource_request || info.verb() != "watch" {
            return None;
        }
        let (key, object) = keys_of(info);
        *self.lock().entry(key).or_default().entry(object).or_default() += 1;
        Some(Registration { watches: self.clone(), info: info.clone() })
    }

    /// kube's `GetInterestedWatchCount`: the watches a write to this object notifies — of
    /// the whole resource, of its namespace, and of the object itself. Reads notify nobody.
    pub fn interested(&self, info: &RequestInfo) -> usize {
        if !info.is_resource_request || matches!(info.verb(), "get" | "list" | "watch") {
            return 0;
        }
        let counts = self.lock();
        let Some(by_object) = counts.get(&(info.api_group().to_string(), info.resource().to_string())) else {
            return 0;
        };
        let n = |ns: &str, name: &str| by_object.get(&(ns.to_string(), name.to_string())).copied().unwrap_or(0);
        let mut total = n("", "");
        if !info.namespace().is_empty() {
            total += n(info.namespace(), "");
        }
        if !info.name().is_empty() {
            total += n(info.namespace(), info.name());
        }
        total
    }
}

/// A watch's place in the counts: (group, resource), then (namespace, name).
fn keys_of(info: &RequestInfo) -> ((String, String), (String, String)) {
    (
        (info.api_group().to_string(), info.resource().to_string()),
        (info.namespace().to_string(), info.name().to_string()),
    )
}

impl Drop for Registration {
    fn drop(&mut self) {
        let (key, object) = keys_of(&self.info);
        let mut counts = self.watches.lock();
        if let Some(by_object) = counts.get_mut(&key) {
            if let Some(n) = by_object.get_mut(&object) {
                *n -= 1;
                if *n == 0 {
                    by_object.remove(&object);
                }
            }
            if by_object.is_empty() {
                counts.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str, q: Option<&str>) -> Arc<RequestInfo> {
        Arc::new(RequestInfo::resolve(method, path, q).unwrap())
    }

    #[test]
    fn a_write_notifies_watches_of_its_resource_namespace_and_object() {
        let w = Arc::new(Watches::default());
        let all = w.register(&info("GET", "/api/v1/configmaps", Some("watch=true"))).unwrap();
        let ns = w.register(&info("GET", "/api/v1/namespaces/a/configmaps", Some("watch=true"))).unwrap();
        let _other_ns = w.register(&info("GET", "/api/v1/namespaces/b/configmaps", Some("watch=true"))).unwrap();
        let _pods = w.register(&info("GET", "/api/v1/pods", Some("watch=true"))).unwrap();
        assert!(w.register(&info("GET", "/api/v1/configmaps", None)).is_none(), "a list is no watch");

        let create = info("POST", "/api/v1/namespaces/a/configmaps", None);
        assert_eq!(w.interested(&create), 2, "all configmaps and namespace a");
        assert_eq!(w.interested(&info("PUT", "/api/v1/namespaces/b/configmaps/x", None)), 2);
        assert_eq!(w.interested(&info("GET", "/api/v1/namespaces/a/configmaps/x", None)), 0, "reads notify nobody");
        assert_eq!(w.interested(&info("POST", "/apis/apps/v1/namespaces/a/deployments", None)), 0);
        drop(all);
        drop(ns);
        assert_eq!(w.interested(&create), 0, "forgotten when the watch ends");
        assert_eq!(w.lock().len(), 2, "empty entries go");
    }
}
