//! Flow control: kube's API Priority and Fairness (`apf/`, the default) or, with
//! `--enable-priority-and-fairness=false`, its plain max-in-flight limits.

pub mod apf;
pub mod classified;
pub mod maxinflight;

use crate::context::RequestContext;
use crate::filters::Reply;
use maxinflight::{is_mutating, MaxInFlight, DROPPED_REQUESTS, REQUEST_TERMINATIONS};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

/// Flow-control flags (kube-apiserver's names, plus where the APF objects come from).
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
    /// If true, replace the max-in-flight handler with an enhanced one that queues and
    /// dispatches with priority and fairness.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_priority_and_fairness: bool,
    /// FlowSchema and PriorityLevelConfiguration (flowcontrol.apiserver.k8s.io/v1) files or
    /// directories, added to kube's bootstrap objects and reloaded on change. Defaults to
    /// `flowcontrol/` in --policy-dir when it exists.
    #[arg(long, value_name = "PATH")]
    pub flowcontrol_config: Vec<PathBuf>,
}

impl Default for FlowControlArgs {
    fn default() -> Self {
        FlowControlArgs {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            enable_priority_and_fairness: true,
            flowcontrol_config: Vec::new(),
        }
    }
}

/// The stage: a cheap clone (the local handlers hold one for the debug dumps).
#[derive(Clone)]
pub struct FlowControl {
    mode: Arc<Mode>,
}

enum Mode {
    MaxInFlight(MaxInFlight),
    /// APF, and unlimited seats that only count what executes for kube's
    /// `apiserver_current_inflight_requests` (its APF filter keeps that watermark too).
    Apf(Arc<apf::Apf>, MaxInFlight),
}

pub use maxinflight::Permit;

impl FlowControl {
    pub fn new(a: &FlowControlArgs) -> anyhow::Result<Self> {
        if !a.enable_priority_and_fairness {
            let mif = MaxInFlight::new(a.max_requests_inflight, a.max_mutating_requests_inflight);
            return Ok(FlowControl { mode: Arc::new(Mode::MaxInFlight(mif)) });
        }
        // kube: the two limits summed are the server's seats for APF
        let seats = a.max_requests_inflight + a.max_mutating_requests_inflight;
        if seats == 0 {
            anyhow::bail!(
                "invalid configuration: MaxRequestsInFlight={} and MaxMutatingRequestsInFlight={}; they must add up to something positive",
                a.max_requests_inflight,
                a.max_mutating_requests_inflight
            );
        }
        let seats = u32::try_from(seats).unwrap_or(u32::MAX);
        let apf = apf::Apf::new(seats, a.flowcontrol_config.clone())?;
        let weak = Arc::downgrade(&apf);
        crate::reload::watch("flowcontrol", apf.paths().to_vec(), move || match weak.upgrade() {
            Some(apf) => apf.reload(),
            None => Ok(()),
        });
        let executing = MaxInFlight::counting();
        Ok(FlowControl { mode: Arc::new(Mode::Apf(apf, executing)) })
    }

    /// Gives APF's width estimator the store's object counts (group, resource).
    pub fn set_object_count(&self, f: Box<apf::width::ObjectCount>) {
        if let Mode::Apf(apf, _) = &*self.mode {
            apf.set_object_count(f);
        }
    }

    /// The store's flowschemas or prioritylevelconfigurations changed (kubectl apply); they
    /// join the files' objects. Without APF they are kept in the store and unused, as kube's.
    pub fn set_stored(&self, resource: &str, objects: Vec<serde_json::Value>) -> anyhow::Result<()> {
        match &*self.mode {
            Mode::Apf(apf, _) => apf.set_stored(resource, objects),
            Mode::MaxInFlight(_) => Ok(()),
        }
    }

    /// A stored FlowSchema's status: kube's Dangling condition (only with APF on).
    pub fn flow_schema_status(&self, name: &str) -> Option<serde_json::Value> {
        let Mode::Apf(apf, _) = &*self.mode else { return None };
        apf.snapshot().flow_schema_status(name)
    }

    /// kube's `/debug/api_priority_and_fairness/dump_*` (only with APF on); dump_requests
    /// adds who and what with `includeRequestDetails`.
    pub fn debug(&self, path: &str, query: &crate::request_info::query::Query) -> Option<String> {
        let Mode::Apf(apf, _) = &*self.mode else { return None };
        let cfg = apf.snapshot();
        match path {
            "/debug/api_priority_and_fairness/dump_priority_levels" => Some(apf::dump::priority_levels(&cfg.levels)),
            "/debug/api_priority_and_fairness/dump_queues" => Some(apf::dump::queues(&cfg.levels)),
            "/debug/api_priority_and_fairness/dump_requests" => {
                let details = query.first("includeRequestDetails").is_some_and(|v| !v.is_empty());
                Some(apf::dump::requests(&cfg.levels, details))
            }
            _ => None,
        }
    }
}

/// The answer over the limit: kube's text, 429, `Retry-After: 1`, as a Status (kube writes
/// the text plain; every client-visible error here is a Status, which client-go reads the same).
use once_cell::sync::Lazy;

impl FlowControl {
    /// Admits the request (keeping its seats in the context), waiting in its queue when its
    /// priority level says so, or answers 429.
    /// `gone` makes what resolves if the client leaves while the request waits in its queue:
    /// made only for a queued request, it is no room in every request's future.
    pub async fn admit<G: Future<Output = ()>>(
        &self,
        ctx: &mut RequestContext,
        gone: impl FnOnce() -> G,
    ) -> Result<(), Reply> {
        match &*self.mode {
            Mode::MaxInFlight(mif) => admit_max_in_flight(mif, ctx),
            Mode::Apf(apf, executing) => admit_apf(apf, executing, ctx, gone).await,
        }
    }
}

/// kube's APF filter: long-running requests other than watches bypass it; a watch holds its
/// seats only while its initial events are sent (released by the handler or at response start).
async fn admit_apf<G: Future<Output = ()>>(
    apf: &apf::Apf,
    executing: &MaxInFlight,
    ctx: &mut RequestContext,
    gone: impl FnOnce() -> G,
) -> Result<(), Reply> {
    let info = ctx.request_info.clone();
    if info.is_long_running() && info.verb() != "watch" {
        return Ok(());
    }
    static ANONYMOUS: Lazy<crate::authn::UserInfo> = Lazy::new(crate::authn::UserInfo::anonymous);
    let user = ctx.effective_user().unwrap_or(&ANONYMOUS);
    let cfg = apf.snapshot();
    let Some(decision) = cfg.classify(user, &info) else { return Ok(()) };
    let schema = decision.schema;
    let width = apf.width(&info, &ctx.query);
    let fan_out = apf.fan_out(&decision, &info);
    let admission = decision.admit(width, fan_out, &user.username, &info);
    ctx.flow = Some(classified::Classified { headers: schema.uid_headers.clone(), watch: None });
    let limit = apf::wait_limit(ctx.deadline);
    let kind = executing.of(info.verb());
    let waiting = match admission {
        apf::level::Admission::Queued(_) => kind.and_then(|k| k.waiting()),
        _ => None,
    };
    let waited = apf::wait(admission, limit, &schema.metrics, gone).await;
    drop(waiting);
    match waited {
        Ok(mut seat) => {
            seat.watch = info.verb() == "watch";
            seat.linger = fan_out.latency;
            // kube registers a watch as it starts executing, for the whole watch
            if let Some(flow) = ctx.flow.as_mut() {
                flow.watch = apf.watches.register(&info).map(Arc::new);
            }
            let counted = kind.and_then(|k| k.try_acquire());
            ctx.inflight = Some(Permit::new((seat, counted)));
            Ok(())
        }
        Err(_) => {
            let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let retry_after = apf.dropped.record(&schema.level.name, unix as i64);
            Err(rejected(ctx, is_mutating(info.verb()), retry_after))
        }
    }
}

fn admit_max_in_flight(mif: &MaxInFlight, ctx: &mut RequestContext) -> Result<(), Reply> {
    let info = ctx.request_info.clone();
    if info.is_long_running() {
        return Ok(());
    }
    let Some(seats) = mif.of(info.verb()) else {
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
    Err(rejected(ctx, is_mutating(info.verb()), 1))
}

/// kube's bookkeeping of a request refused in self-defense, and the 429.
/// kube's 429 for a dropped request, with the Retry-After its priority level has grown to
/// (max-in-flight's is always 1).
fn rejected(ctx: &RequestContext, mutating: bool, retry_after: u32) -> Reply {
    let info = &ctx.request_info;
    let kind = if mutating { maxinflight::MUTATING } else { maxinflight::READ_ONLY };
    DROPPED_REQUESTS.with_label_values(&[kind]).inc();
    let verb = crate::metrics::reported_verb(&method_of(info), info.verb(), info.is_resource_request, false);
    REQUEST_TERMINATIONS
        .with_label_values(&[
            verb,
            info.api_group(),
            info.api_version(),
            info.resource(),
            info.subresource(),
            info.scope(),
            "apiserver",
            "429",
        ])
        .inc();
    Reply::status(&crate::api::Status::too_many_requests(retry_after))
}

/// The HTTP method behind a RequestInfo verb, for the metrics' verb label.
fn method_of(info: &crate::request_info::RequestInfo) -> String {
    if !info.is_resource_request {
        return info.verb().to_ascii_uppercase();
    }
    match info.verb() {
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

    /// Plain max-in-flight never waits: its admission is ready at once.
    fn admit_now(fc: &FlowControl, ctx: &mut RequestContext) -> Result<(), Reply> {
        futures::executor::block_on(fc.admit(ctx, std::future::pending))
    }

    fn ctx(method: &str, path: &str, query: Option<&str>, user: UserInfo) -> RequestContext {
        RequestContext {
            request_info: Arc::new(RequestInfo::resolve(method, path, query).unwrap()),
            user: Some(Arc::new(user)),
            ..Default::default()
        }
    }

    #[test]
    fn limits_per_kind_exemptions_and_release() {
        let fc = flowcontrol(&[
            "--enable-priority-and-fairness=false",
            "--max-mutating-requests-inflight",
            "2",
            "--max-requests-inflight",
            "1",
        ]);
        let alice = || UserInfo::new("alice", vec!["system:authenticated".into()]);
        let post = |u| ctx("POST", "/api/v1/namespaces/a/configmaps", None, u);
        let mut held: Vec<RequestContext> = Vec::new();
        for _ in 0..2 {
            let mut c = post(alice());
            admit_now(&fc, &mut c).unwrap();
            assert!(c.inflight.is_some());
            held.push(c);
        }
        let reply = admit_now(&fc, &mut post(alice())).unwrap_err();
        assert_eq!(reply.code, 429);
        assert!(reply.headers.iter().any(|(k, v)| *k == "Retry-After" && v == "1"));
        let status: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["message"], "Too many requests, please try again later.");

        // system:masters: the impersonated user counts (impersonation runs before the limit)
        let mut c = post(alice());
        c.impersonated = Some(Box::new(UserInfo::new("root", vec!["system:masters".into()])));
        assert!(admit_now(&fc, &mut c).is_ok());
        let mut c = post(UserInfo::new("root", vec!["system:masters".into()]));
        c.impersonated = Some(Box::new(alice()));
        assert!(admit_now(&fc, &mut c).is_err(), "acts as alice");

        // read-only has its own seats; long-running requests take none
        let mut get = ctx("GET", "/api/v1/namespaces/a/configmaps", None, alice());
        admit_now(&fc, &mut get).unwrap();
        assert!(admit_now(&fc, &mut ctx("GET", "/api/v1/pods", None, alice())).is_err());
        for (m, p, q) in [
            ("GET", "/api/v1/pods", Some("watch=true")),
            ("GET", "/api/v1/namespaces/a/pods/p/log", None),
            ("POST", "/api/v1/namespaces/a/pods/p/exec", None),
        ] {
            let mut c = ctx(m, p, q, alice());
            admit_now(&fc, &mut c).unwrap();
            assert!(c.inflight.is_none(), "{m} {p} is long-running");
        }

        // dropping the context releases the seat
        held.pop();
        admit_now(&fc, &mut post(alice())).unwrap();
    }

    #[test]
    fn zero_is_unlimited() {
        let fc = flowcontrol(&[
            "--enable-priority-and-fairness",
            "false",
            "--max-mutating-requests-inflight",
            "0",
            "--max-requests-inflight",
            "0",
        ]);
        let held: Vec<RequestContext> = (0..50)
            .map(|_| {
                let mut c = ctx("POST", "/api/v1/namespaces/a/configmaps", None, UserInfo::new("a", vec![]));
                admit_now(&fc, &mut c).unwrap();
                c
            })
            .collect();
        assert_eq!(held.len(), 50);
        // priority & fairness needs seats to share (kube refuses to start without)
        let args = crate::config::parse_args::<FlowControlArgs>(&[
            "--max-mutating-requests-inflight",
            "0",
            "--max-requests-inflight",
            "0",
        ])
        .unwrap();
        let err = FlowControl::new(&args).err().expect("refused").to_string();
        assert!(err.contains("they must add up to something positive"), "{err}");
    }

    #[tokio::test]
    async fn apf_classifies_queues_rejects_and_exempts_masters() {
        // 2 seats in all: catch-all (5 shares of 245) gets 1 seat and rejects beyond it
        let fc = flowcontrol(&["--max-mutating-requests-inflight", "1", "--max-requests-inflight", "1"]);
        let nobody = || UserInfo::new("nobody", vec![]);
        let mut first = ctx("GET", "/api/v1/namespaces/a/configmaps", None, nobody());
        fc.admit(&mut first, std::future::pending).await.unwrap();
        let flow = first.flow.clone().expect("classified");
        assert_eq!(flow.headers.flow_schema_uid.clone().unwrap(), apf_uid("FlowSchema", "catch-all"));
        assert_eq!(
            flow.headers.priority_level_uid.clone().unwrap(),
            apf_uid("PriorityLevelConfiguration", "catch-all")
        );
        let mut second = ctx("GET", "/api/v1/namespaces/a/configmaps", None, nobody());
        let reply = fc.admit(&mut second, std::future::pending).await.unwrap_err();
        assert_eq!(reply.code, 429);
        assert!(second.flow.is_some(), "a rejected request is classified too (its headers)");

        let mut root = ctx("GET", "/api/v1/pods", None, UserInfo::new("root", vec!["system:masters".into()]));
        fc.admit(&mut root, std::future::pending).await.unwrap();
        assert_eq!(
            root.flow.unwrap().headers.priority_level_uid.clone().unwrap(),
            apf_uid("PriorityLevelConfiguration", "exempt")
        );

        // a queuing level: the second waits for the first's seat
        let alice = || UserInfo::new("alice", vec!["system:authenticated".into()]);
        let mut held = Vec::new();
        loop {
            let mut c = ctx("GET", "/api/v1/namespaces/a/configmaps", None, alice());
            c.deadline = Some(std::time::Duration::from_millis(200));
            match fc.admit(&mut c, std::future::pending).await {
                Ok(()) => held.push(c),
                Err(r) => {
                    assert_eq!(r.code, 429, "timed out after a quarter of the deadline");
                    break;
                }
            }
            assert!(held.len() < 10);
        }
        let fc2 = fc.clone();
        let waiter = tokio::spawn(async move {
            let mut c = ctx("GET", "/api/v1/namespaces/a/configmaps", None, alice());
            c.deadline = Some(std::time::Duration::from_secs(20));
            fc2.admit(&mut c, std::future::pending).await.map(|_| c.inflight.is_some())
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        held.clear();
        assert_eq!(waiter.await.unwrap().ok(), Some(true), "dispatched when a seat came free");

        // watches take a seat; other long-running requests bypass APF
        let mut w = ctx("GET", "/api/v1/pods", Some("watch=true"), alice());
        fc.admit(&mut w, std::future::pending).await.unwrap();
        assert!(w.inflight.is_some() && w.flow.is_some());
        let mut exec = ctx("POST", "/api/v1/namespaces/a/pods/p/exec", None, alice());
        fc.admit(&mut exec, std::future::pending).await.unwrap();
        assert!(exec.inflight.is_none() && exec.flow.is_none());
    }

    fn apf_uid(kind: &str, name: &str) -> String {
        apf::derived_uid_for_tests(kind, name)
    }
}
