//! kube-apiserver's audit metrics.

use super::policy::Level;
use once_cell::sync::{Lazy, OnceCell};
use prometheus::{register_int_counter, register_int_counter_vec, IntCounter, IntCounterVec};

pub static EVENT_TOTAL: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "apiserver_audit_event_total",
        "Counter of audit events generated and sent to the audit backend."
    )
    .expect("register apiserver_audit_event_total")
});

pub static ERROR_TOTAL: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_audit_error_total",
        "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.",
        &["plugin"]
    )
    .expect("register apiserver_audit_error_total")
});

pub static LEVEL_TOTAL: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_audit_level_total",
        "Counter of policy levels for audit events (1 per request).",
        &["level"]
    )
    .expect("register apiserver_audit_level_total")
});

pub static REQUESTS_REJECTED_TOTAL: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "apiserver_audit_requests_rejected_total",
        "Counter of apiserver requests rejected due to an error in audit logging backend."
    )
    .expect("register apiserver_audit_requests_rejected_total")
});

/// `apiserver_audit_level_total{level}` per level, each resolved on its first use (so only
/// levels seen show, as in kube) and cached: it is counted on every request.
static LEVEL_COUNTERS: [OnceCell<IntCounter>; 4] = [OnceCell::new(), OnceCell::new(), OnceCell::new(), OnceCell::new()];

/// `apiserver_audit_error_total{plugin="buffered"}`: events a full batch buffer dropped.
pub static BUFFERED_ERRORS: Lazy<IntCounter> = Lazy::new(|| ERROR_TOTAL.with_label_values(&["buffered"]));

pub fn count_level(level: Level) {
    LEVEL_COUNTERS[level as usize].get_or_init(|| LEVEL_TOTAL.with_label_values(&[level.as_str()])).inc();
}

/// Registers the metrics so they show before the first event.
pub fn force() {
    Lazy::force(&EVENT_TOTAL);
    Lazy::force(&ERROR_TOTAL);
    Lazy::force(&LEVEL_TOTAL);
    Lazy::force(&REQUESTS_REJECTED_TOTAL);
}
