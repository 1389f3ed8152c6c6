//! Authentication metrics, with k8s.io/apiserver's names, labels and buckets.

use once_cell::sync::Lazy;
use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounter, IntCounterVec};

pub static ATTEMPTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!("authentication_attempts", "Counter of authenticated attempts.", &["result"])
        .expect("register authentication_attempts")
});

pub static DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "authentication_duration_seconds",
        "Authentication duration in seconds broken out by result.",
        &["result"],
        prometheus::exponential_buckets(0.001, 2.0, 15).expect("valid buckets")
    )
    .expect("register authentication_duration_seconds")
});

/// kube registers this one without the `apiserver_` prefix.
pub static AUTHENTICATED_USER_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "authenticated_user_requests",
        "Counter of authenticated requests broken out by username.",
        &["username"]
    )
    .expect("register authenticated_user_requests")
});

/// Registers the metrics so they appear on /metrics before the first request.
pub fn register() {
    Lazy::force(&ATTEMPTS);
    Lazy::force(&DURATION);
    Lazy::force(&AUTHENTICATED_USER_REQUESTS);
}

/// The usual outcome's series (a success; a user compressed to `other`) kept, made on first use
/// as `with_label_values` makes them: a lookup by label hashes and locks every time (~850
/// instructions a request for the three).
static RESULTS: crate::metrics::ResultMetrics = crate::metrics::ResultMetrics::new(&ATTEMPTS, &DURATION, "success");
static OTHER_USER: Lazy<IntCounter> = Lazy::new(|| AUTHENTICATED_USER_REQUESTS.with_label_values(&["other"]));

/// One authentication outcome: `success`, `failure` (nothing recognised) or `error`.
pub fn record(result: &str, username: Option<&str>, seconds: f64) {
    if let Some(u) = username {
        match compress_username(u) {
            "other" => OTHER_USER.inc(),
            u => AUTHENTICATED_USER_REQUESTS.with_label_values(&[u]).inc(),
        }
    }
    RESULTS.record(result, seconds);
}

/// kube's `compressUsername`: known internal identities as is, emails as `email_id`,
/// everything else `other` (bounded cardinality, no user names in metrics).
pub fn compress_username(username: &str) -> &str {
    match username {
        "admin" | "client" | "kube_proxy" | "kubelet" | "system:serviceaccount:kube-system:default" => username,
        u if u.contains('@') => "email_id",
        _ => "other",
    }
}

/// kube's reload metrics for `--authentication-config`.
pub static CONFIG_RELOADS: Lazy<crate::metrics::ConfigReloadMetrics> =
    Lazy::new(|| crate::metrics::ConfigReloadMetrics::register("authentication"));

#[cfg(test)]
mod tests {
    #[test]
    fn compress() {
        assert_eq!(super::compress_username("admin"), "admin");
        assert_eq!(super::compress_username("j@example.com"), "email_id");
        assert_eq!(super::compress_username("alice"), "other");
        assert_eq!(super::compress_username("system:anonymous"), "other");
    }
}
