//! kube's `apiserver_flowcontrol_*` metrics (k8s.io/apiserver/pkg/util/flowcontrol/metrics),
//! same names, labels and help, so APF dashboards work unchanged.

use once_cell::sync::Lazy;
use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, Histogram, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec,
};
use std::sync::{Arc, OnceLock};

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
        DURATION_BUCKETS.to_vec()
    )
    .expect("metric")
});

/// kube's `requestDurationSecondsBuckets`.
const DURATION_BUCKETS: [f64; 13] = [0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0];

pub static EXECUTION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "apiserver_flowcontrol_request_execution_seconds",
        "Duration of initial stage (for a WATCH) or any (for a non-WATCH) stage of request execution in the API Priority and Fairness subsystem",
        &[PL, FS, "type"],
        DURATION_BUCKETS.to_vec()
    )
    .expect("metric")
});

pub static QUEUE_LENGTH: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "apiserver_flowcontrol_request_queue_length_after_enqueue",
        "Length of queue in the API Priority and Fairness subsystem, as seen by each request after it is enqueued",
        &[PL, FS],
        vec![0.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]
    )
    .expect("metric")
});

pub static WATCH_COUNT: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "apiserver_flowcontrol_watch_count_samples",
        "count of watchers for mutating requests in API Priority and Fairness",
        &[PL, FS],
        vec![0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0]
    )
    .expect("metric")
});

use super::timing::{register as timing_ratio, TimingRatioVec};

pub static SEAT_UTILIZATION: Lazy<&'static TimingRatioVec> = Lazy::new(|| {
    timing_ratio(
        "apiserver_flowcontrol_priority_level_seat_utilization",
        "Observations, at the end of every nanosecond, of utilization of seats for any stage of execution (but only initial stage for WATCHes); denominator is current seat limit or max(1, round(server seat limit/10))",
        &[PL],
        Some(("phase", "executing")),
        &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0],
    )
});

pub static REQUEST_UTILIZATION: Lazy<&'static TimingRatioVec> = Lazy::new(|| {
    timing_ratio(
        "apiserver_flowcontrol_priority_level_request_utilization",
        "Observations, at the end of every nanosecond, of number of requests waiting or in any stage of execution (but only initial stage for WATCHes); denominator for waiting is max(1, QueueLengthLimit) X max(1, DesiredNumQueues), for executing is current seat limit if that is not zero otherwise max(1, round(server seat limit/10))",
        &["phase", PL],
        None,
        &[0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.25, 0.5, 0.75, 1.0],
    )
});

pub static DEMAND_SEATS: Lazy<&'static TimingRatioVec> = Lazy::new(|| {
    timing_ratio(
        "apiserver_flowcontrol_demand_seats",
        "Observations, at the end of every nanosecond, of (the number of seats each priority level could use) / (current seat limit for that level if that is not zero otherwise max(1, round(server seat limit/10.0)))",
        &[PL],
        None,
        &[0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.7, 2.0, 2.8, 4.0, 6.0],
    )
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

pub static INQUEUE_SEATS: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_current_inqueue_seats",
        "Number of seats currently pending in queues of the API Priority and Fairness subsystem",
        &[PL, FS]
    )
    .expect("metric")
});

pub static WORK_ESTIMATED_SEATS: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "apiserver_flowcontrol_work_estimated_seats",
        "Number of estimated seats (maximum of initial and final seats) associated with requests in API Priority and Fairness",
        &[PL, FS],
        vec![1.0, 2.0, 4.0, 10.0]
    )
    .expect("metric")
});

pub static NO_ACCOMMODATION: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_flowcontrol_request_dispatch_no_accommodation_total",
        "Number of times a dispatch attempt resulted in a non accommodation due to lack of available seats",
        &[PL, FS]
    )
    .expect("metric")
});

/// kube's deprecated twin of `current_executing_seats`, kept for dashboards that read it.
pub static CONCURRENCY_IN_USE: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_request_concurrency_in_use",
        "Concurrency (number of seats) occupied by the currently executing (initial stage for a WATCH, any stage otherwise) requests in the API Priority and Fairness subsystem",
        &[PL, FS]
    )
    .expect("metric")
});

/// kube's older name for a level's current seat limit (`UpdateSharedConcurrencyLimit`).
pub static CONCURRENCY_LIMIT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_flowcontrol_request_concurrency_limit",
        "Shared concurrency limit in the API Priority and Fairness subsystem",
        &[PL]
    )
    .expect("metric")
});

/// A level's virtual clock and the virtual start times fair queuing dispatches by, in
/// seat-seconds (kube's `current_r`, `dispatch_r`, `latest_s`, `next_s_bounds`,
/// `next_discounted_s_bounds`): how far each level's fair-queuing clock has run.
pub static CURRENT_R: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    prometheus::register_gauge_vec!("apiserver_flowcontrol_current_r", "R(time of last change)", &[PL]).expect("metric")
});
pub static DISPATCH_R: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    prometheus::register_gauge_vec!("apiserver_flowcontrol_dispatch_r", "R(time of last dispatch)", &[PL])
        .expect("metric")
});
pub static LATEST_S: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    prometheus::register_gauge_vec!("apiserver_flowcontrol_latest_s", "S(most recently dispatched request)", &[PL])
        .expect("metric")
});
pub static NEXT_S_BOUNDS: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    prometheus::register_gauge_vec!(
        "apiserver_flowcontrol_next_s_bounds",
        "min and max, over queues, of S(oldest waiting request in queue)",
        &[PL, "bound"]
    )
    .expect("metric")
});
pub static NEXT_DISCOUNTED_S_BOUNDS: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    prometheus::register_gauge_vec!(
        "apiserver_flowcontrol_next_discounted_s_bounds",
        "min and max, over queues, of S(oldest waiting request in queue) - estimated work in progress",
        &[PL, "bound"]
    )
    .expect("metric")
});

/// Requests waiting and executing, read-only apart from mutating, over their limit (1 under
/// APF, whose limit is shared): kube's watermarks of both max-in-flight and APF filters.
pub static READ_VS_WRITE: Lazy<&'static TimingRatioVec> = Lazy::new(|| {
    timing_ratio(
        "apiserver_flowcontrol_read_vs_write_current_requests",
        "Observations, at the end of every nanosecond, of the number of requests (as a fraction of the relevant limit) waiting or in regular stage of execution",
        &["phase", "request_kind"],
        None,
        &[0.0, 0.001, 0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0],
    )
});

fn demand_gauge(name: &str, help: &str) -> prometheus::GaugeVec {
    prometheus::register_gauge_vec!(name, help, &[PL]).expect("metric")
}

pub static DEMAND_HIGH_WATERMARK: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    demand_gauge(
        "apiserver_flowcontrol_demand_seats_high_watermark",
        "High watermark, over last adjustment period, of demand_seats",
    )
});
pub static DEMAND_AVERAGE: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    demand_gauge(
        "apiserver_flowcontrol_demand_seats_average",
        "Time-weighted average, over last adjustment period, of demand_seats",
    )
});
pub static DEMAND_STDEV: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    demand_gauge(
        "apiserver_flowcontrol_demand_seats_stdev",
        "Time-weighted standard deviation, over last adjustment period, of demand_seats",
    )
});
pub static DEMAND_SMOOTHED: Lazy<prometheus::GaugeVec> =
    Lazy::new(|| demand_gauge("apiserver_flowcontrol_demand_seats_smoothed", "Smoothed seat demands"));

pub static TARGET: Lazy<prometheus::GaugeVec> = Lazy::new(|| {
    prometheus::register_gauge_vec!("apiserver_flowcontrol_target_seats", "Seat allocation targets", &[PL])
        .expect("metric")
});

pub static FAIR_FRAC: Lazy<prometheus::Gauge> = Lazy::new(|| {
    prometheus::register_gauge!(
        "apiserver_flowcontrol_seat_fair_frac",
        "Fair fraction of server's concurrency to allocate to each priority level that can use it"
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
    Lazy::force(&EXECUTION);
    Lazy::force(&QUEUE_LENGTH);
    Lazy::force(&WATCH_COUNT);
    Lazy::force(&SEAT_UTILIZATION);
    Lazy::force(&REQUEST_UTILIZATION);
    Lazy::force(&DEMAND_SEATS);
    Lazy::force(&NOMINAL_LIMIT);
    Lazy::force(&LOWER_LIMIT);
    Lazy::force(&UPPER_LIMIT);
    Lazy::force(&CURRENT_LIMIT);
    Lazy::force(&TARGET);
    Lazy::force(&INQUEUE_SEATS);
    Lazy::force(&WORK_ESTIMATED_SEATS);
    Lazy::force(&NO_ACCOMMODATION);
    Lazy::force(&DEMAND_HIGH_WATERMARK);
    Lazy::force(&DEMAND_AVERAGE);
    Lazy::force(&DEMAND_STDEV);
    Lazy::force(&DEMAND_SMOOTHED);
    Lazy::force(&FAIR_FRAC);
    Lazy::force(&CONCURRENCY_IN_USE);
    Lazy::force(&CONCURRENCY_LIMIT);
    Lazy::force(&CURRENT_R);
    Lazy::force(&DISPATCH_R);
    Lazy::force(&LATEST_S);
    Lazy::force(&NEXT_S_BOUNDS);
    Lazy::force(&NEXT_DISCOUNTED_S_BOUNDS);
    Lazy::force(&READ_VS_WRITE);
}

/// One flow schema's series at its level, resolved on first use and kept with the schema:
/// a label lookup costs a hash and a lock, several times per request otherwise.
pub struct FlowMetrics {
    pub level: String,
    pub schema: String,
    dispatched: OnceLock<IntCounter>,
    inqueue: OnceLock<IntGauge>,
    inqueue_seats: OnceLock<IntGauge>,
    seats: OnceLock<Histogram>,
    executing: OnceLock<IntGauge>,
    executing_seats: OnceLock<IntGauge>,
    in_use: OnceLock<IntGauge>,
    waited: [OnceLock<Histogram>; 2],
    /// Execution time of a regular request and of a watch's initial stage.
    executed: [OnceLock<Histogram>; 2],
    queue_length: OnceLock<Histogram>,
    watch_count: OnceLock<Histogram>,
}

impl FlowMetrics {
    pub fn new(level: &str, schema: &str) -> Arc<FlowMetrics> {
        Arc::new(FlowMetrics {
            level: level.to_string(),
            schema: schema.to_string(),
            dispatched: OnceLock::new(),
            inqueue: OnceLock::new(),
            inqueue_seats: OnceLock::new(),
            seats: OnceLock::new(),
            executing: OnceLock::new(),
            executing_seats: OnceLock::new(),
            in_use: OnceLock::new(),
            waited: [OnceLock::new(), OnceLock::new()],
            executed: [OnceLock::new(), OnceLock::new()],
            queue_length: OnceLock::new(),
            watch_count: OnceLock::new(),
        })
    }

    fn labels(&self) -> [&str; 2] {
        [&self.level, &self.schema]
    }

    pub fn dispatched(&self) -> &IntCounter {
        self.dispatched.get_or_init(|| DISPATCHED.with_label_values(&self.labels()))
    }

    pub fn inqueue(&self) -> &IntGauge {
        self.inqueue.get_or_init(|| INQUEUE.with_label_values(&self.labels()))
    }

    pub fn inqueue_seats(&self) -> &IntGauge {
        self.inqueue_seats.get_or_init(|| INQUEUE_SEATS.with_label_values(&self.labels()))
    }

    /// The work estimator's seats for one request.
    pub fn estimated_seats(&self) -> &Histogram {
        self.seats.get_or_init(|| WORK_ESTIMATED_SEATS.with_label_values(&self.labels()))
    }

    /// A head of queue that did not fit in the free seats (rare enough to look up).
    pub fn no_accommodation(&self) {
        NO_ACCOMMODATION.with_label_values(&self.labels()).inc();
    }

    pub fn executing(&self) -> &IntGauge {
        self.executing.get_or_init(|| EXECUTING.with_label_values(&self.labels()))
    }

    pub fn executing_seats(&self) -> &IntGauge {
        self.executing_seats.get_or_init(|| EXECUTING_SEATS.with_label_values(&self.labels()))
    }

    /// Seats taken (`delta` > 0) or given back, in both the current and the deprecated gauge.
    pub fn seats_in_use(&self, delta: i64) {
        self.executing_seats().add(delta);
        self.in_use.get_or_init(|| CONCURRENCY_IN_USE.with_label_values(&self.labels())).add(delta);
    }

    /// The wait-duration histogram for requests that did (`execute="true"`) or did not run.
    pub fn waited(&self, executed: bool) -> &Histogram {
        let label = if executed { "true" } else { "false" };
        self.waited[executed as usize]
            .get_or_init(|| WAIT_DURATION.with_label_values(&[&self.level, &self.schema, label]))
    }

    /// kube's `ObserveExecutionDuration`: `type` is "watch" for a watch, else "regular".
    pub fn executed(&self, watch: bool) -> &Histogram {
        let label = if watch { "watch" } else { "regular" };
        self.executed[watch as usize].get_or_init(|| EXECUTION.with_label_values(&[&self.level, &self.schema, label]))
    }

    /// The length of the queue a request just joined.
    pub fn queue_length(&self) -> &Histogram {
        self.queue_length.get_or_init(|| QUEUE_LENGTH.with_label_values(&self.labels()))
    }

    /// The watches a write notifies (kube's `ObserveWatchCount`).
    pub fn watch_count(&self) -> &Histogram {
        self.watch_count.get_or_init(|| WATCH_COUNT.with_label_values(&self.labels()))
    }

    /// A refusal (rare: looked up each time).
    pub fn rejected(&self, reason: &str) {
        REJECTED.with_label_values(&[&self.level, &self.schema, reason]).inc();
    }
}
