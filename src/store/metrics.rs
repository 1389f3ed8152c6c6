//! The store's metrics: kube's `apiserver_storage_objects`, and `frontdoor_store_*` for
//! what is ours.

use once_cell::sync::Lazy;
use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec,
};

/// kube's `apiserver_storage_objects`: objects stored per resource (`configmaps`,
/// `roles.rbac.authorization.k8s.io`).
pub static OBJECTS: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_storage_objects",
        "Number of stored objects at the time of last check split by kind.",
        &["resource"]
    )
    .expect("metric")
});

/// Live watchers on the store.
pub static WATCHERS: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!("frontdoor_store_watchers", "Number of watchers currently registered on the store")
        .expect("metric")
});

/// Watchers cut off because they fell too far behind.
pub static WATCHERS_CUT_OFF: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!("frontdoor_store_watchers_terminated_total", "Watchers cut off because their buffer was full")
        .expect("metric")
});

/// Committed writes by resource.
pub static WRITES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!("frontdoor_store_writes_total", "Writes committed to the store", &["resource"])
        .expect("metric")
});

pub fn force() {
    Lazy::force(&WATCHERS);
    Lazy::force(&WATCHERS_CUT_OFF);
    Lazy::force(&WRITES);
    Lazy::force(&OBJECTS);
}
