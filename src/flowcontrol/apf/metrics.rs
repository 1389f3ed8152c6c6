//! kube's `apiserver_flowcontrol_*` metrics (k8s.io/apiserver/pkg/util/flowcontrol/metrics),
//! same names, labels and help, so APF dashboards work unchanged.

use once_cell::sync::Lazy;
use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec, IntCounterVec, IntGaugeVec,
};

const PL: &str = "priority_level";
const FS: &str = "flow_schema";

pub static DISPATCHED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_flowcontrol_dispatched_requests_total",
        "Number of requests executed by API Priority and Fairness subsystem",
        &[PL, FS]
    )
    .expect("metric")
});

pub static REJECTED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_flowcontrol_rejected_requests_total",
        "Number of requests rejected by API Priority and Fairness subsystem",
        &[PL, FS, "reason"]
    )
    .expect("metric")
});

pub static INQUEUE: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_current_inqueue_requests",
        "Number of requests currently pending in queues of the API Priority and Fairness subsystem",
        &[PL, FS]
    )
    .expect("metric")
});

pub static EXECUTING: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_current_executing_requests",
        "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution stage in the API Priority and Fairness subsystem",
        &[PL, FS]
    )
    .expect("metric")
});

pub static EXECUTING_SEATS: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_current_executing_seats",
        "Concurrency (number of seats) occupied by the currently executing (initial stage for a WATCH, any stage otherwise) requests in the API Priority and Fairness subsystem",
        &[PL, FS]
    )
    .expect("metric")
});

pub static WAIT_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "apiserver_flowcontrol_request_wait_duration_seconds",
        "Length of time a request spent waiting in its queue",
        &[PL, FS, "execute"],
        vec![0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0]
    )
    .expect("metric")
});

pub static NOMINAL_LIMIT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_nominal_limit_seats",
        "Nominal number of execution seats configured for each priority level",
        &[PL]
    )
    .expect("metric")
});

pub static LOWER_LIMIT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_lower_limit_seats",
        "Configured lower bound on number of execution seats available to each priority level",
        &[PL]
    )
    .expect("metric")
});

pub static UPPER_LIMIT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_upper_limit_seats",
        "Configured upper bound on number of execution seats available to each priority level",
        &[PL]
    )
    .expect("metric")
});

pub static CURRENT_LIMIT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_current_limit_seats",
        "current derived number of execution seats available to each priority level",
        &[PL]
    )
    .expect("metric")
});

/// Registers every family, so /metrics lists them before the first request.
pub fn force() {
    Lazy::force(&DISPATCHED);
    Lazy::force(&REJECTED);
    Lazy::force(&INQUEUE);
    Lazy::force(&EXECUTING);
    Lazy::force(&EXECUTING_SEATS);
    Lazy::force(&WAIT_DURATION);
    Lazy::force(&NOMINAL_LIMIT);
    Lazy::force(&LOWER_LIMIT);
    Lazy::force(&UPPER_LIMIT);
    Lazy::force(&CURRENT_LIMIT);
}
