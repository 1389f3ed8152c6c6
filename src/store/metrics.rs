//! The store's metrics: kube's `apiserver_storage_*` and `apiserver_registered_watchers`
//! where the meaning is the same.

use once_cell::sync::Lazy;
use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge, IntCounter, IntCounterVec,
    IntGauge,
};

/// Live watchers on the store.
pub static WATCHERS: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "frontdoor_store_watchers",
        "Number of watchers currently registered on the store"
    )
    .expect("metric")
});

/// Watchers cut off because they fell too far behind.
pub static WATCHERS_CUT_OFF: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "frontdoor_store_watchers_terminated_total",
        "Watchers cut off because their buffer was full"
    )
    .expect("metric")
});

/// Committed writes by resource.
pub static WRITES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "frontdoor_store_writes_total",
        "Writes committed to the store",
        &["resource"]
    )
    .expect("metric")
});

pub fn force() {
    Lazy::force(&WATCHERS);
    Lazy::force(&WATCHERS_CUT_OFF);
    Lazy::force(&WRITES);
}
