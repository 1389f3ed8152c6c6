//! kube's trace of a slow request (k8s.io/utils/trace, `LogIfLong`): a request that took longer
//! than `--request-trace-threshold` is logged with its attributes and how long each stage of the
//! chain took, in kube's `Trace[id]: ...` form, so the slow step is visible in the log.

use crate::context::RequestContext;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The chain's steps, each as when it finished: microseconds after the request was received,
/// 0 when not reached. Every request's context (an idle watch's too) holds it: 20 bytes, where
/// a time for each was 80.
#[derive(Debug, Default, Clone, Copy)]
pub struct Steps([u32; STEPS.len()]);

/// The chain's steps, in the order they run.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Authenticated,
    Audited,
    Admitted,
    Authorized,
    Routed,
}

/// Each step's name in the trace, in [`Step`]'s order (kube's trace step messages).
const STEPS: [&str; 5] =
    ["Authenticated", "Audited (RequestReceived)", "Admitted (flow control)", "Authorized", "Routed"];

impl Steps {
    /// Records that `step` has finished, for a request received at `received`.
    pub fn mark(&mut self, step: Step, received: Option<Instant>) {
        if let Some(received) = received {
            self.mark_at(step, received, Instant::now());
        }
    }

    fn mark_at(&mut self, step: Step, received: Instant, at: Instant) {
        let micros = at.saturating_duration_since(received).as_micros();
        self.0[step as usize] = u32::try_from(micros).unwrap_or(u32::MAX).max(1);
    }

    /// When each step reached finished, for a request received at `start`.
    fn reached(self, start: Instant) -> impl Iterator<Item = (&'static str, Instant)> {
        STEPS
            .into_iter()
            .zip(self.0)
            .filter(|&(_, us)| us > 0)
            .map(move |(what, us)| (what, start + Duration::from_micros(us.into())))
    }
}

/// The trace lines of a request that took `total`, or None when it was quick enough.
pub fn lines(ctx: &RequestContext, verb: &str, total: Duration, threshold: Duration) -> Option<String> {
    let start = ctx.received?;
    if threshold.is_zero() || total < threshold || ctx.request_info.is_long_running() {
        return None;
    }
    let incoming = &ctx.incoming;
    let id = incoming.audit_id().bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % 1_000_000_000;
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
        name(info.verb()),
        incoming.audit_id(),
        incoming.source_ips().last().unwrap_or(""),
        info.api_group(),
        info.api_version(),
        info.name(),
        info.subresource(),
        info.namespace(),
        info.resource(),
        info.scope(),
        info.path(),
        incoming.user_agent(),
        verb,
        at(start).unwrap_or_default(),
        total.as_millis(),
    );
    let mut last = start;
    for (what, t) in ctx.steps.reached(start) {
        let _ = write!(
            out,
            "\nTrace[{id}]: ---\"{what}\" {}ms ({})",
            t.saturating_duration_since(last).as_millis(),
            at(t).unwrap_or_default()
        );
        last = t;
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
            incoming: crate::filters::request_received::Incoming::new("abc", "", "", &[], None),
            request_info: Arc::new(RequestInfo::resolve("GET", "/api/v1/namespaces/d/configmaps", None).unwrap()),
            ..Default::default()
        };
        ctx.steps.mark_at(Step::Authenticated, t0, t0 + Duration::from_millis(2));
        ctx.steps.mark_at(Step::Authorized, t0, t0 + Duration::from_millis(700));
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
