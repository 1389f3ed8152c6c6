//! kube's trace of a slow request (k8s.io/utils/trace, `LogIfLong`): a request that took longer
//! than `--request-trace-threshold` is logged with its attributes and how long each stage of the
//! chain took, in kube's `Trace[id]: ...` form, so the slow step is visible in the log.

use crate::context::RequestContext;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The chain's steps: when each finished.
#[derive(Debug, Default, Clone, Copy)]
pub struct Steps {
    pub authenticated: Option<Instant>,
    pub audited: Option<Instant>,
    pub admitted: Option<Instant>,
    pub authorized: Option<Instant>,
    pub routed: Option<Instant>,
}

/// The trace lines of a request that took `total`, or None when it was quick enough.
pub fn lines(ctx: &RequestContext, verb: &str, total: Duration, threshold: Duration) -> Option<String> {
    let start = ctx.received?;
    if threshold.is_zero() || total < threshold || ctx.request_info.is_long_running() {
        return None;
    }
    let id = ctx.audit_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % 1_000_000_000;
    let info = &ctx.request_info;
    let at = |t: Instant| {
        let since = t.saturating_duration_since(start);
        ctx.received_at.map(|r| chrono::DateTime::<chrono::Utc>::from(r + since).format("%H:%M:%S%.3f").to_string())
    };
    let name = |s: &str| s.chars().next().map(|c| c.to_ascii_uppercase().to_string() + &s[1..]).unwrap_or_default();
    let mut out = String::new();
    let _ = write!(
        out,
        "Trace[{id}]: \"{}\" audit-id:{},client:{},api-group:{},api-version:{},name:{},subresource:{},namespace:{},resource:{},scope:{},url:{},user-agent:{},verb:{} ({}) (total time: {}ms):",
        name(&info.verb),
        ctx.audit_id,
        ctx.source_ips.last().map(String::as_str).unwrap_or(""),
        info.api_group,
        info.api_version,
        info.name,
        info.subresource,
        info.namespace,
        info.resource,
        info.scope(),
        info.path,
        ctx.user_agent,
        verb,
        at(start).unwrap_or_default(),
        total.as_millis(),
    );
    let s = ctx.steps;
    let mut last = start;
    for (what, t) in [
        ("Authenticated", s.authenticated),
        ("Audited (RequestReceived)", s.audited),
        ("Admitted (flow control)", s.admitted),
        ("Authorized", s.authorized),
        ("Routed", s.routed),
    ] {
        if let Some(t) = t {
            let _ = write!(
                out,
                "\nTrace[{id}]: ---\"{what}\" {}ms ({})",
                t.saturating_duration_since(last).as_millis(),
                at(t).unwrap_or_default()
            );
            last = t;
        }
    }
    let end = start + total;
    let _ = write!(
        out,
        "\nTrace[{id}]: ---\"Served\" {}ms ({})\nTrace[{id}]: [{}ms] [{}ms] END",
        end.saturating_duration_since(last).as_millis(),
        at(end).unwrap_or_default(),
        total.as_millis(),
        total.as_millis()
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_info::RequestInfo;
    use std::sync::Arc;

    #[test]
    fn slow_requests_are_traced_with_their_steps() {
        let t0 = Instant::now();
        let mut ctx = RequestContext {
            received: Some(t0),
            received_at: Some(std::time::SystemTime::now()),
            audit_id: "abc".into(),
            request_info: Arc::new(RequestInfo::resolve("GET", "/api/v1/namespaces/d/configmaps", None).unwrap()),
            ..Default::default()
        };
        ctx.steps.authenticated = Some(t0 + Duration::from_millis(2));
        ctx.steps.authorized = Some(t0 + Duration::from_millis(700));
        let threshold = Duration::from_millis(500);
        assert!(lines(&ctx, "LIST", Duration::from_millis(100), threshold).is_none(), "quick enough");
        let t = lines(&ctx, "LIST", Duration::from_millis(900), threshold).unwrap();
        assert!(t.starts_with("Trace["), "{t}");
        assert!(
            t.contains("\"List\" audit-id:abc,")
                && t.contains("resource:configmaps")
                && t.contains("(total time: 900ms):"),
            "{t}"
        );
        assert!(
            t.contains("---\"Authenticated\" 2ms")
                && t.contains("---\"Authorized\" 698ms")
                && t.contains("---\"Served\" 200ms"),
            "{t}"
        );
        assert!(lines(&ctx, "LIST", Duration::from_millis(900), Duration::ZERO).is_none(), "0 turns it off");
    }
}
