//! Authorization metrics with kube-apiserver's names: the filter's
//! `authorization_attempts_total` / `authorization_duration_seconds` (k8s.io/apiserver
//! endpoints/filters), the per-authorizer `apiserver_authorization_decisions_total`, and the
//! webhook authorizer's evaluation metrics.

use once_cell::sync::Lazy;
use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

pub static ATTEMPTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "authorization_attempts_total",
        "Counter of authorization attempts broken down by result. It can be either 'allowed', 'denied', 'no-opinion' or 'error'.",
        &["result"]
    )
    .expect("register authorization_attempts_total")
});

pub static DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "authorization_duration_seconds",
        "Authorization duration in seconds broken out by result.",
        &["result"],
        prometheus::exponential_buckets(0.001, 2.0, 15).expect("valid buckets")
    )
    .expect("register authorization_duration_seconds")
});

/// An attempt of the filter's, with its `result` and duration (an allowed one's series kept).
pub static RESULTS: crate::metrics::ResultMetrics = crate::metrics::ResultMetrics::new(&ATTEMPTS, &DURATION, "allowed");

pub static DECISIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_authorization_decisions_total",
        "Total number of terminal decisions made by an authorizer split by authorizer type, name, and decision.",
        &["type", "name", "decision"]
    )
    .expect("register apiserver_authorization_decisions_total")
});

pub static WEBHOOK_EVALUATIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_authorization_webhook_evaluations_total",
        "Round-trips to authorization webhooks.",
        &["name", "result"]
    )
    .expect("register apiserver_authorization_webhook_evaluations_total")
});

pub static WEBHOOK_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "apiserver_authorization_webhook_duration_seconds",
        "Request latency in seconds.",
        &["name", "result"],
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("register apiserver_authorization_webhook_duration_seconds")
});

pub static WEBHOOK_FAIL_OPEN: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_authorization_webhook_evaluations_fail_open_total",
        "NoOpinion results due to webhook timeout or error.",
        &["name", "result"]
    )
    .expect("register apiserver_authorization_webhook_evaluations_fail_open_total")
});

/// Registers every authorization metric, so they are listed before the first request.
/// kube's reload metrics for `--authorization-config`.
pub static CONFIG_RELOADS: Lazy<crate::metrics::ConfigReloadMetrics> =
    Lazy::new(|| crate::metrics::ConfigReloadMetrics::register("authorization"));

pub fn record_config_reload(result: &anyhow::Result<()>) {
    CONFIG_RELOADS.record(result);
}

pub fn force() {
    Lazy::force(&ATTEMPTS);
    Lazy::force(&DURATION);
    Lazy::force(&DECISIONS);
    Lazy::force(&WEBHOOK_EVALUATIONS);
    Lazy::force(&WEBHOOK_DURATION);
    Lazy::force(&WEBHOOK_FAIL_OPEN);
}
