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
pub fn reported_verb(method: &str, k8s_verb: &str, is_resource: bool, is_apply: bool) -> String {
    if is_resource {
        match k8s_verb {
            "list" => return "LIST".into(),
            "watch" => return "WATCH".into(),
            "proxy" | "connect" => return "CONNECT".into(),
            _ => {}
        }
        if is_apply && method == "PATCH" {
            return "APPLY".into();
        }
    }
    // kube's cleanVerb: a method outside its list is `other` (a client picks the method; the
    // label must stay bounded)
    let verb = method.to_ascii_uppercase();
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
    if VALID.contains(&verb.as_str()) {
        verb
    } else {
        "other".into()
    }
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
    let dry = o.dry_run;
    // on the stack: `to_string` allocates and runs the formatter on every request
    let mut code = itoa::Buffer::new();
    let code = code.format(o.code);
    REQUEST_TOTAL
        .with_label_values(&[o.verb, dry, o.group, o.version, o.resource, o.subresource, o.scope, "apiserver", code])
        .inc();
    if !o.long_running {
        REQUEST_DURATION
            .with_label_values(&[o.verb, dry, o.group, o.version, o.resource, o.subresource, o.scope, "apiserver"])
            .observe(o.seconds);
    }
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
    use super::DryRun;
    use crate::request_info::query::Query;

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
}
