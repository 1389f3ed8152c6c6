//! The end of every request: `apiserver_request_*` metrics, the in-flight seat given back,
//! audit ResponseComplete and the access log line. Run by pingora's `logging` phase, or by a
//! detached response's task when its stream ends (`filters::detach`).

use crate::audit::Audit;
use crate::context::RequestContext;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// Whether a request's group, version and resource are ones frontdoor serves or routes (its
/// discovery lists them). Only those are metric labels: the rest are whatever a client wrote,
/// and each would be a new series (kube records a request under its route's labels).
pub type KnownResource = Arc<dyn Fn(&crate::request_info::RequestInfo) -> bool + Send + Sync>;

/// What the request log reads of a request's session and query: its status, and its verb and
/// dryRun as metrics report them.
pub struct Outcome {
    code: u16,
    verb: &'static str,
    dry_run: crate::metrics::DryRun,
}

impl Outcome {
    pub fn of(session: &ServerSession, ctx: &RequestContext) -> Outcome {
        let code = session.response_written().map(|h| h.status.as_u16()).unwrap_or(ctx.response_code);
        let req = session.req_header();
        let is_apply = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/apply-patch"));
        let info = &ctx.request_info;
        let verb = crate::metrics::reported_verb(req.method.as_str(), info.verb(), info.is_resource_request, is_apply);
        Outcome { code, verb, dry_run: crate::metrics::DryRun::of(&ctx.query) }
    }
}

pub struct RequestLog {
    audit: Arc<Audit>,
    /// Requests slower than this are traced (`filters::trace`); zero: never.
    trace_threshold: std::time::Duration,
    known: Option<KnownResource>,
}

impl RequestLog {
    pub fn new(audit: Arc<Audit>, trace_threshold: std::time::Duration) -> Self {
        RequestLog { audit, trace_threshold, known: None }
    }

    /// Labels requests with their resource only where `known` says it is one.
    pub fn with_known_resources(mut self, known: KnownResource) -> Self {
        self.known = Some(known);
        self
    }

    /// Records a finished request.
    pub async fn finish(&self, session: &ServerSession, ctx: &mut RequestContext) {
        self.finish_with(Outcome::of(session, ctx), ctx).await
    }

    /// Records a finished request whose session is gone (a response written to its
    /// connection itself, `filters::detach`), from what was read of it before.
    pub async fn finish_with(&self, outcome: Outcome, ctx: &mut RequestContext) {
        let Outcome { code, verb, dry_run } = outcome;
        let info = ctx.request_info.clone();
        let seconds = ctx.received.map(|t| t.elapsed().as_secs_f64()).unwrap_or_default();
        let known = !info.is_resource_request || self.known.as_ref().is_none_or(|k| k(&info));
        let (group, version, resource, subresource) = match known {
            true => (info.api_group(), info.api_version(), info.resource(), info.subresource()),
            false => ("", "", "", ""),
        };
        crate::metrics::record_request(&crate::metrics::RequestOutcome {
            verb,
            dry_run: dry_run.label(),
            group,
            version,
            resource,
            subresource,
            scope: info.scope(),
            code,
            seconds,
            long_running: info.is_long_running(),
        });
        if let Some(trace) =
            super::trace::lines(ctx, verb, std::time::Duration::from_secs_f64(seconds), self.trace_threshold)
        {
            tracing::info!("{trace}");
        }
        crate::otel::span::finish(ctx, code);
        // the seat is free once the response is written (kube's max-in-flight sits inside audit)
        ctx.inflight = None;
        self.audit.response_complete(ctx, code, false).await;
        tracing::debug!(
            audit_id = %ctx.incoming.audit_id(),
            verb = %verb,
            uri = %ctx.incoming.request_uri(),
            user = ctx.effective_user().map(|u| u.username.as_str()).unwrap_or(""),
            code,
            latency_ms = seconds * 1000.0,
            "request"
        );
    }
}
