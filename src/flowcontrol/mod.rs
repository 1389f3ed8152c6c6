//! Flow control: kube's max-in-flight limits (priority & fairness may replace them later,
//! as `--enable-priority-and-fairness` does in kube).

pub mod maxinflight;

use crate::context::RequestContext;
use crate::filters::Reply;
use crate::server::Gateway;
use maxinflight::{is_mutating, MaxInFlight, Seat, DROPPED_REQUESTS, REQUEST_TERMINATIONS};

/// In-flight flags (kube-apiserver's names).
#[derive(clap::Args, Debug, Clone)]
pub struct FlowControlArgs {
    /// This and --max-mutating-requests-inflight are summed to determine the server's total
    /// concurrency limit. The maximum number of non-mutating requests in flight at a given
    /// time. When the server exceeds this, it rejects requests. Zero for no limit.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// The maximum number of mutating requests in flight at a given time. When the server
    /// exceeds this, it rejects requests. Zero for no limit.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
}

impl Default for FlowControlArgs {
    fn default() -> Self {
        FlowControlArgs { max_requests_inflight: 400, max_mutating_requests_inflight: 200 }
    }
}

pub struct FlowControl {
    max_in_flight: MaxInFlight,
}

/// A seat held by a request; released on drop.
#[derive(Debug)]
pub struct Permit {
    _seat: Seat,
}

impl FlowControl {
    pub fn new(args: &crate::config::ServeArgs) -> anyhow::Result<Self> {
        let a = &args.flowcontrol;
        Ok(FlowControl { max_in_flight: MaxInFlight::new(a.max_requests_inflight, a.max_mutating_requests_inflight) })
    }
}

/// kube's answer over the limit: plain text (http.Error), 429, `Retry-After: 1`.
pub fn too_many_requests() -> Reply {
    Reply::text(429, "Too many requests, please try again later.\n").header("Retry-After", "1")
}

/// Admits the request (keeping its permit in the context) or answers 429.
pub fn admit(gw: &Gateway, ctx: &mut RequestContext) -> Result<(), Reply> {
    let info = ctx.request_info.clone();
    if info.is_long_running() {
        return Ok(());
    }
    let mutating = is_mutating(&info.verb);
    let mif = &gw.flowcontrol.max_in_flight;
    let Some(seats) = (if mutating { &mif.mutating } else { &mif.read_only }) else {
        return Ok(());
    };
    if let Some(seat) = seats.try_acquire() {
        ctx.inflight = Some(Permit { _seat: seat });
        return Ok(());
    }
    // a system:master is so powerful that it should always get an answer (kube's words)
    if ctx.effective_user().is_some_and(|u| u.is_system_master()) {
        return Ok(());
    }
    DROPPED_REQUESTS.with_label_values(&[seats.kind()]).inc();
    let verb = crate::metrics::reported_verb(&method_of(&info), &info.verb, info.is_resource_request, false);
    REQUEST_TERMINATIONS
        .with_label_values(&[
            &verb,
            &info.api_group,
            &info.api_version,
            &info.resource,
            &info.subresource,
            info.scope(),
            "apiserver",
            "429",
        ])
        .inc();
    Err(too_many_requests())
}

/// The HTTP method behind a RequestInfo verb, for the metrics' verb label.
fn method_of(info: &crate::request_info::RequestInfo) -> String {
    if !info.is_resource_request {
        return info.verb.to_ascii_uppercase();
    }
    match info.verb.as_str() {
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        _ => "GET",
    }
    .to_string()
}
