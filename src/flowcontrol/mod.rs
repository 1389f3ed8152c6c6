//! Flow control: kube's max-in-flight limits (priority & fairness may replace them later,
//! as `--enable-priority-and-fairness` does in kube).

pub mod maxinflight;

use crate::context::RequestContext;
use crate::filters::Reply;
use maxinflight::{is_mutating, MaxInFlight, DROPPED_REQUESTS, REQUEST_TERMINATIONS};

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

pub use maxinflight::Permit;

impl FlowControl {
    pub fn new(a: &FlowControlArgs) -> anyhow::Result<Self> {
        Ok(FlowControl { max_in_flight: MaxInFlight::new(a.max_requests_inflight, a.max_mutating_requests_inflight) })
    }
}

/// The answer over the limit: kube's text, 429, `Retry-After: 1`, as a Status (kube writes
/// the text plain; every client-visible error here is a Status, which client-go reads the same).
pub fn too_many_requests() -> Reply {
    Reply::status(&crate::api::Status::too_many_requests())
}

impl FlowControl {
    /// Admits the request (keeping its permit in the context) or answers 429.
    pub fn admit(&self, ctx: &mut RequestContext) -> Result<(), Reply> {
        let info = ctx.request_info.clone();
        if info.is_long_running() {
            return Ok(());
        }
        let mutating = is_mutating(&info.verb);
        let mif = &self.max_in_flight;
        let Some(seats) = (if mutating { &mif.mutating } else { &mif.read_only }) else {
            return Ok(());
        };
        if let Some(seat) = seats.try_acquire() {
            ctx.inflight = Some(Permit::new(seat));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;
    use crate::request_info::RequestInfo;
    use std::sync::Arc;

    /// The flow-control stage alone, from its own flags.
    fn flowcontrol(extra: &[&str]) -> FlowControl {
        FlowControl::new(&crate::config::parse_args::<FlowControlArgs>(extra).unwrap()).unwrap()
    }

    fn ctx(method: &str, path: &str, query: Option<&str>, user: UserInfo) -> RequestContext {
        RequestContext {
            request_info: Arc::new(RequestInfo::resolve(method, path, query).unwrap()),
            user: Some(user),
            ..Default::default()
        }
    }

    #[test]
    fn limits_per_kind_exemptions_and_release() {
        let fc = flowcontrol(&["--max-mutating-requests-inflight", "2", "--max-requests-inflight", "1"]);
        let alice = || UserInfo::new("alice", vec!["system:authenticated".into()]);
        let post = |u| ctx("POST", "/api/v1/namespaces/a/configmaps", None, u);
        let mut held: Vec<RequestContext> = Vec::new();
        for _ in 0..2 {
            let mut c = post(alice());
            fc.admit(&mut c).unwrap();
            assert!(c.inflight.is_some());
            held.push(c);
        }
        let reply = fc.admit(&mut post(alice())).unwrap_err();
        assert_eq!(reply.code, 429);
        assert!(reply.headers.iter().any(|(k, v)| *k == "Retry-After" && v == "1"));
        let status: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["message"], "Too many requests, please try again later.");

        // system:masters: the impersonated user counts (impersonation runs before the limit)
        let mut c = post(alice());
        c.impersonated = Some(UserInfo::new("root", vec!["system:masters".into()]));
        assert!(fc.admit(&mut c).is_ok());
        let mut c = post(UserInfo::new("root", vec!["system:masters".into()]));
        c.impersonated = Some(alice());
        assert!(fc.admit(&mut c).is_err(), "acts as alice");

        // read-only has its own seats; long-running requests take none
        let mut get = ctx("GET", "/api/v1/namespaces/a/configmaps", None, alice());
        fc.admit(&mut get).unwrap();
        assert!(fc.admit(&mut ctx("GET", "/api/v1/pods", None, alice())).is_err());
        for (m, p, q) in [
            ("GET", "/api/v1/pods", Some("watch=true")),
            ("GET", "/api/v1/namespaces/a/pods/p/log", None),
            ("POST", "/api/v1/namespaces/a/pods/p/exec", None),
        ] {
            let mut c = ctx(m, p, q, alice());
            fc.admit(&mut c).unwrap();
            assert!(c.inflight.is_none(), "{m} {p} is long-running");
        }

        // dropping the context releases the seat
        held.pop();
        fc.admit(&mut post(alice())).unwrap();
    }

    #[test]
    fn zero_is_unlimited() {
        let fc = flowcontrol(&["--max-mutating-requests-inflight", "0", "--max-requests-inflight", "0"]);
        let held: Vec<RequestContext> = (0..50)
            .map(|_| {
                let mut c = ctx("POST", "/api/v1/namespaces/a/configmaps", None, UserInfo::new("a", vec![]));
                fc.admit(&mut c).unwrap();
                c
            })
            .collect();
        assert_eq!(held.len(), 50);
    }
}
