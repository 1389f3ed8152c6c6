//! Prometheus metrics with kube-apiserver's names and labels. Each module registers its own
//! metrics in the default registry (lazily); `/metrics` gathers them all.

use once_cell::sync::Lazy;
use prometheus::{
    register_gauge_vec, register_histogram_vec, register_int_counter_vec, Encoder, GaugeVec, HistogramVec,
    IntCounterVec, TextEncoder,
};

/// kube-apiserver's buckets for `apiserver_request_duration_seconds`.
pub const REQUEST_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];

// Never reset and no series removed: `record_request`'s per-thread handles (`SERIES`) would
// count into series the registry no longer has.
pub static REQUEST_TOTAL: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_request_total",
        "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
        &["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component", "code"]
    )
    .expect("register apiserver_request_total")
});

pub static REQUEST_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "apiserver_request_duration_seconds",
        "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
        &["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"],
        REQUEST_DURATION_BUCKETS.to_vec()
    )
    .expect("register apiserver_request_duration_seconds")
});

/// kube's `kubernetes_build_info` for frontdoor's own build, under frontdoor's name (in front
/// of an upstream apiserver `/version` is the upstream's; this says what frontdoor is).
pub static BUILD_INFO: Lazy<prometheus::IntGaugeVec> = Lazy::new(|| {
    let g = prometheus::register_int_gauge_vec!(
        "frontdoor_build_info",
        "A metric with a constant '1' value labeled by major, minor, git version, git commit, git tree state, build date, Go version, and compiler from which frontdoor was built, and platform on which it is running.",
        &crate::router::availability::BUILD_INFO_LABELS
    )
    .expect("register frontdoor_build_info");
    let i = crate::endpoints::version::info();
    g.with_label_values(&[
        i.major,
        i.minor,
        &i.git_version,
        i.git_commit,
        i.git_tree_state,
        i.build_date,
        i.go_version,
        i.compiler,
        &i.platform,
    ])
    .set(1);
    g
});

pub static POLICY_RELOAD_TOTAL: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "frontdoor_policy_reload_total",
        "Reloads of policy and certificate files by policy and result (success, failure).",
        &["policy", "result"]
    )
    .expect("register frontdoor_policy_reload_total")
});

/// An attempts counter and a duration histogram labelled by the `result` alone (the
/// authentication and authorization filters'), with the usual result's series kept, made on
/// first use as `with_label_values` makes them: a lookup by label hashes and locks every time
/// (~580 instructions a request for the two).
pub struct ResultMetrics {
    attempts: &'static Lazy<IntCounterVec>,
    duration: &'static Lazy<HistogramVec>,
    usual: &'static str,
    kept: std::sync::OnceLock<(prometheus::IntCounter, prometheus::Histogram)>,
}

impl ResultMetrics {
    pub const fn new(
        attempts: &'static Lazy<IntCounterVec>,
        duration: &'static Lazy<HistogramVec>,
        usual: &'static str,
    ) -> Self {
        ResultMetrics { attempts, duration, usual, kept: std::sync::OnceLock::new() }
    }

    /// Counts one attempt with its `result` and duration.
    pub fn record(&self, result: &str, seconds: f64) {
        if result == self.usual {
            let (attempts, duration) = self.kept.get_or_init(|| {
                (self.attempts.with_label_values(&[self.usual]), self.duration.with_label_values(&[self.usual]))
            });
            attempts.inc();
            duration.observe(seconds);
        } else {
            self.attempts.with_label_values(&[result]).inc();
            self.duration.with_label_values(&[result]).observe(seconds);
        }
    }
}

/// kube's `apiserver_<what>_config_controller_automatic_reload*` pair, for a configuration
/// file kube reloads in place (authentication and authorization configuration).
pub struct ConfigReloadMetrics {
    total: IntCounterVec,
    last: GaugeVec,
}

impl ConfigReloadMetrics {
    /// `what` is kube's word in the name and help text (`authentication`, `authorization`).
    pub fn register(what: &str) -> Self {
        let prefix = format!("apiserver_{what}_config_controller");
        let total = register_int_counter_vec!(
            format!("{prefix}_automatic_reloads_total"),
            format!(
                "Total number of automatic reloads of {what} configuration split by status and apiserver identity."
            ),
            &["status", "apiserver_id_hash"]
        )
        .expect("register automatic_reloads_total");
        let last = register_gauge_vec!(
            format!("{prefix}_automatic_reload_last_timestamp_seconds"),
            format!("Timestamp of the last automatic reload of {what} configuration split by status and apiserver identity."),
            &["status", "apiserver_id_hash"]
        )
        .expect("register automatic_reload_last_timestamp_seconds");
        ConfigReloadMetrics { total, last }
    }

    pub fn record(&self, result: &anyhow::Result<()>) {
        let status = if result.is_ok() { "success" } else { "failure" };
        let id = apiserver_id_hash();
        self.total.with_label_values(&[status, id]).inc();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.last.with_label_values(&[status, id]).set(now.as_secs_f64());
    }
}

/// kube's `apiserver_id_hash` label: `sha256:<hex>` of this server's identity, which is
/// derived from the host name as kube's `apiserver-<hash of hostname>` identity is.
pub fn apiserver_id_hash() -> &'static str {
    static HASH: Lazy<String> = Lazy::new(|| {
        use sha2::Digest;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let digest = sha2::Sha256::digest(format!("frontdoor-{}", host.trim()).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    });
    &HASH
}

/// kube's reported verb: the HTTP method upper-cased, with GET split into LIST and WATCH,
/// and server-side apply reported as APPLY.
pub fn reported_verb(method: &str, k8s_verb: &str, is_resource: bool, is_apply: bool) -> &'static str {
    if is_resource {
        match k8s_verb {
            "list" => return "LIST",
            "watch" => return "WATCH",
            "proxy" | "connect" => return "CONNECT",
            _ => {}
        }
        if is_apply && method == "PATCH" {
            return "APPLY";
        }
    }
    // kube's cleanVerb: a method outside its list is `other` (a client picks the method; the
    // label must stay bounded)
    const VALID: [&str; 14] = [
        "APPLY",
        "CONNECT",
        "CREATE",
        "DELETE",
        "DELETECOLLECTION",
        "GET",
        "LIST",
        "PATCH",
        "POST",
        "PROXY",
        "PUT",
        "UPDATE",
        "WATCH",
        "WATCHLIST",
    ];
    VALID.into_iter().find(|v| v.eq_ignore_ascii_case(method)).unwrap_or("other")
}

/// kube's `cleanDryRun` of a request's `dryRun` values, as one byte (an idle watch's
/// response keeps it for its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    None,
    All,
    Invalid,
}

impl DryRun {
    pub fn of(query: &crate::request_info::query::Query) -> DryRun {
        let mut dry = DryRun::None;
        for v in query.all("dryRun") {
            if v != "All" {
                return DryRun::Invalid;
            }
            dry = DryRun::All;
        }
        dry
    }

    /// The `dry_run` label.
    pub fn label(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::All => "All",
            DryRun::Invalid => "invalid",
        }
    }
}

/// Records one finished request.
pub struct RequestOutcome<'a> {
    pub verb: &'a str,
    /// kube's `cleanDryRun` label: "", "All", or "invalid".
    pub dry_run: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub scope: &'a str,
    pub code: u16,
    pub seconds: f64,
    pub long_running: bool,
}

pub fn record_request(o: &RequestOutcome<'_>) {
    // on the stack: `to_string` allocates and runs the formatter on every request
    let mut code = itoa::Buffer::new();
    let code = code.format(o.code);
    let labels = [o.verb, o.dry_run, o.group, o.version, o.resource, o.subresource, o.scope, "apiserver", code];
    SERIES.with_borrow_mut(|Seen { key, series }| {
        // each value after its length: no two label sets make one key
        key.clear();
        for l in labels {
            key.extend_from_slice(&(l.len() as u32).to_le_bytes());
            key.extend_from_slice(l.as_bytes());
        }
        let record = |s: &mut Series| {
            s.total.inc();
            if !o.long_running {
                // made when first observed: a long-running request's labels have no duration series
                s.duration.get_or_insert_with(|| REQUEST_DURATION.with_label_values(&labels[..8])).observe(o.seconds);
            }
        };
        match series.get_mut(key.as_slice()) {
            Some(s) => record(s),
            None => {
                let mut s = Series { total: REQUEST_TOTAL.with_label_values(&labels), duration: None };
                record(&mut s);
                series.insert(key.clone(), s);
            }
        }
    });
}

/// One label set's series: its `apiserver_request_total` (the code is a label) and its
/// `apiserver_request_duration_seconds` (the same for every code), once observed.
struct Series {
    total: prometheus::IntCounter,
    duration: Option<prometheus::Histogram>,
}

/// The request series a thread has recorded, by label values, and a buffer for the key:
/// prometheus hashes every label value with SipHash and takes its lock on each
/// `with_label_values` (~580 instructions a call, two a request). A series, once made, is never
/// removed, so a handle stays the registry's series; there are as many as the registry has.
#[derive(Default)]
struct Seen {
    key: Vec<u8>,
    series: rustc_hash::FxHashMap<Vec<u8>, Series>,
}

thread_local! {
    static SERIES: std::cell::RefCell<Seen> = Default::default();
}

/// The Prometheus text exposition of every registered metric.
pub fn render() -> Vec<u8> {
    Lazy::force(&REQUEST_TOTAL);
    Lazy::force(&REQUEST_DURATION);
    Lazy::force(&POLICY_RELOAD_TOTAL);
    Lazy::force(&BUILD_INFO);
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    out
}

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_info::query::Query;

    /// kube's `cleanVerb`: LIST, WATCH, CONNECT and APPLY from what the request is, else the
    /// method upper-cased when it is one of kube's, else `other` (the label stays bounded).
    #[test]
    fn a_reported_verb_is_one_of_kubes_or_other() {
        assert_eq!(reported_verb("GET", "list", true, false), "LIST");
        assert_eq!(reported_verb("GET", "watch", true, false), "WATCH");
        assert_eq!(reported_verb("POST", "proxy", true, false), "CONNECT");
        assert_eq!(reported_verb("PATCH", "patch", true, true), "APPLY");
        assert_eq!(reported_verb("PATCH", "patch", false, true), "PATCH");
        assert_eq!(reported_verb("GET", "get", true, false), "GET");
        assert_eq!(reported_verb("delete", "delete", true, false), "DELETE");
        assert_eq!(reported_verb("GET", "list", false, false), "GET");
        for odd in ["BREW", "GETX", "", "GE"] {
            assert_eq!(reported_verb(odd, "", false, false), "other", "{odd:?}");
        }
    }

    /// kube's `cleanDryRun`: no value is "", only `All` values (deduplicated) are "All", any
    /// other value makes the label "invalid".
    #[test]
    fn the_dry_run_label_is_kubes() {
        let label = |q: &str| DryRun::of(&Query::parse(q)).label();
        assert_eq!(label(""), "");
        assert_eq!(label("dryRun=All"), "All");
        assert_eq!(label("dryRun=All&dryRun=All&watch=1"), "All");
        assert_eq!(label("dryRun=All&dryRun=Yes"), "invalid");
        assert_eq!(label("dryRun="), "invalid");
    }

    fn outcome<'a>(resource: &'a str, subresource: &'a str, code: u16, long_running: bool) -> RequestOutcome<'a> {
        RequestOutcome {
            verb: "get",
            dry_run: "",
            group: "g",
            version: "v1",
            resource,
            subresource,
            scope: "resource",
            code,
            seconds: 0.5,
            long_running,
        }
    }

    /// Each request counts in its own label set's series, as `with_label_values` finds them; a
    /// long-running request's labels get no duration series.
    #[test]
    fn requests_count_in_their_label_sets_series() {
        let total = |r: &str, sub: &str, code: &str| {
            REQUEST_TOTAL.with_label_values(&["get", "", "g", "v1", r, sub, "resource", "apiserver", code]).get()
        };
        let observed = |r: &str| {
            REQUEST_DURATION
                .with_label_values(&["get", "", "g", "v1", r, "", "resource", "apiserver"])
                .get_sample_count()
        };
        for _ in 0..3 {
            record_request(&outcome("metrics-test-a", "", 200, false));
        }
        record_request(&outcome("metrics-test-a", "", 404, false));
        record_request(&outcome("metrics-test-b", "status", 200, false));
        assert_eq!((total("metrics-test-a", "", "200"), total("metrics-test-a", "", "404")), (3, 1));
        assert_eq!((total("metrics-test-b", "status", "200"), observed("metrics-test-a")), (1, 4));
        record_request(&outcome("metrics-test-watch", "", 200, true));
        assert_eq!(total("metrics-test-watch", "", "200"), 1);
        let families = prometheus::gather();
        let durations = families.iter().find(|f| f.get_name() == "apiserver_request_duration_seconds").unwrap();
        let watch =
            durations.get_metric().iter().any(|m| m.get_label().iter().any(|l| l.get_value() == "metrics-test-watch"));
        assert!(!watch, "a duration series for a long-running request");
    }
}
