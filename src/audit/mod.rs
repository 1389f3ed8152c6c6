//! Audit, as kube-apiserver's WithAudit / WithFailedAuthenticationAudit: the policy picks a
//! level and omitted stages per request (from the authenticated user), events are emitted
//! at RequestReceived, ResponseStarted (long-running), ResponseComplete or Panic, and handed
//! to the log and webhook backends.
//!
//! The chain calls `request_received`, `response_started`, `response_complete`; body capture
//! for Request/RequestResponse levels goes through `request_body`, `response_header`,
//! `response_body` (proxied) and `local_reply` (frontdoor's own responses).

pub mod backend;
pub mod event;
mod json;
pub mod log;
pub mod metrics;
pub mod policy;
pub mod state;
pub mod webhook;

use crate::context::RequestContext;
use crate::filters::response::internal_error;
use crate::filters::Reply;
use arc_swap::ArcSwap;
use backend::{Backend, BatchConfig, Mode, Sink, Submitted};
use event::{Event, MicroTime, ObjectReference, ResponseStatus, Scrub};
use pingora::http::{RequestHeader, ResponseHeader};
use policy::{Attributes, Level, Policy, Stage};
pub use state::AuditState;
use state::Capture;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";
const TRUNCATED_ANNOTATION: &str = "audit.k8s.io/truncated";

/// Audit flags (kube-apiserver's names and defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct AuditArgs {
    /// Path to the file that defines the audit policy configuration (audit.k8s.io/v1 Policy).
    /// Defaults to audit-policy.yaml in --policy-dir when present. Reloaded on change.
    #[arg(long, value_name = "FILE")]
    pub audit_policy_file: Option<PathBuf>,

    /// If set, all requests coming to the apiserver will be logged to this file. '-' means
    /// standard out.
    #[arg(long, value_name = "PATH")]
    pub audit_log_path: Option<PathBuf>,
    /// The maximum size in megabytes of the audit log file before it gets rotated (0: 100).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u64,
    /// The maximum number of old audit log files to retain (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: usize,
    /// The maximum number of days to retain old audit log files based on the timestamp
    /// encoded in their filename (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxage: u64,
    /// Format of saved audits. Known formats are json.
    #[arg(long, default_value = "json", value_parser = ["json"])]
    pub audit_log_format: String,
    /// Strategy for sending audit events. Blocking indicates sending events should block
    /// server responses. Batch causes the backend to buffer and write events asynchronously.
    /// Known modes are batch,blocking,blocking-strict.
    #[arg(long, value_enum, default_value = "blocking")]
    pub audit_log_mode: Mode,
    /// The size of the buffer to store events before batching and writing. Only used in batch mode.
    #[arg(long, default_value_t = 10000)]
    pub audit_log_batch_buffer_size: usize,
    /// The maximum size of a batch. Only used in batch mode.
    #[arg(long, default_value_t = 1)]
    pub audit_log_batch_max_size: usize,
    /// The amount of time to wait before force writing the batch that hadn't reached the max
    /// size. Only used in batch mode.
    #[arg(long, default_value = "0", value_parser = crate::api::duration::parse_duration)]
    pub audit_log_batch_max_wait: Duration,
    /// Whether batching throttling is enabled. Only used in batch mode.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub audit_log_batch_throttle_enable: bool,
    /// Maximum average number of batches per second. Only used in batch mode.
    #[arg(long, default_value_t = 10.0)]
    pub audit_log_batch_throttle_qps: f32,
    /// Maximum number of requests sent at the same moment if ThrottleQPS was not utilized
    /// before. Only used in batch mode.
    #[arg(long, default_value_t = 15)]
    pub audit_log_batch_throttle_burst: usize,

    /// Path to a kubeconfig formatted file that defines the audit webhook configuration.
    #[arg(long, value_name = "FILE")]
    pub audit_webhook_config_file: Option<PathBuf>,
    /// The amount of time to wait before retrying the first failed request.
    #[arg(long, default_value = "10s", value_parser = crate::api::duration::parse_duration)]
    pub audit_webhook_initial_backoff: Duration,
    /// Strategy for sending audit events. Known modes are batch,blocking,blocking-strict.
    #[arg(long, value_enum, default_value = "batch")]
    pub audit_webhook_mode: Mode,
    /// The size of the buffer to store events before batching and writing. Only used in batch mode.
    #[arg(long, default_value_t = 10000)]
    pub audit_webhook_batch_buffer_size: usize,
    /// The maximum size of a batch. Only used in batch mode.
    #[arg(long, default_value_t = 400)]
    pub audit_webhook_batch_max_size: usize,
    /// The amount of time to wait before force writing the batch that hadn't reached the max
    /// size. Only used in batch mode.
    #[arg(long, default_value = "30s", value_parser = crate::api::duration::parse_duration)]
    pub audit_webhook_batch_max_wait: Duration,
    /// Whether batching throttling is enabled. Only used in batch mode.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub audit_webhook_batch_throttle_enable: bool,
    /// Maximum average number of batches per second. Only used in batch mode.
    #[arg(long, default_value_t = 10.0)]
    pub audit_webhook_batch_throttle_qps: f32,
    /// Maximum number of requests sent at the same moment if ThrottleQPS was not utilized
    /// before. Only used in batch mode.
    #[arg(long, default_value_t = 15)]
    pub audit_webhook_batch_throttle_burst: usize,

    /// frontdoor: the largest request or response body recorded as requestObject /
    /// responseObject; a larger one is left out and the event annotated
    /// audit.k8s.io/truncated. Bodies are never buffered beyond this.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub audit_object_max_bytes: usize,
}

impl Default for AuditArgs {
    fn default() -> Self {
        <AuditArgs as clap::FromArgMatches>::from_arg_matches(
            &<AuditArgs as clap::Args>::augment_args(clap::Command::new("x")).get_matches_from(["x"]),
        )
        .expect("defaults parse")
    }
}

pub struct Audit {
    policy: Option<Arc<ArcSwap<Policy>>>,
    backends: Vec<Backend>,
    max_object: usize,
}

fn batch_config(
    buffer_size: usize,
    max_batch_size: usize,
    max_batch_wait: Duration,
    te: bool,
    qps: f32,
    burst: usize,
) -> BatchConfig {
    BatchConfig {
        buffer_size,
        max_batch_size,
        max_batch_wait,
        throttle_enable: te,
        throttle_qps: qps,
        throttle_burst: burst,
    }
}

impl Audit {
    /// Builds the backends and the policy (`audit_policy_file` already defaulted from
    /// --policy-dir by the server) and starts the policy's reload watcher.
    pub fn new(a: &AuditArgs) -> anyhow::Result<Self> {
        metrics::force();
        let mut backends = Vec::new();
        if let Some(path) = &a.audit_log_path {
            let writer = if path.as_os_str() == "-" {
                log::LogWriter::Stdout
            } else {
                log::LogWriter::File(
                    log::RotatingFile::open(path, a.audit_log_maxsize, a.audit_log_maxbackup, a.audit_log_maxage)
                        .map_err(|e| anyhow::anyhow!("--audit-log-path {}: {e}", path.display()))?,
                )
            };
            let batch = batch_config(
                a.audit_log_batch_buffer_size,
                a.audit_log_batch_max_size,
                a.audit_log_batch_max_wait,
                a.audit_log_batch_throttle_enable,
                a.audit_log_batch_throttle_qps,
                a.audit_log_batch_throttle_burst,
            );
            backends.push(Backend::new("log", a.audit_log_mode, Sink::Log(Mutex::new(writer)), batch));
        }
        if let Some(path) = &a.audit_webhook_config_file {
            let hook = webhook::Webhook::from_kubeconfig(path, a.audit_webhook_initial_backoff)?;
            let batch = batch_config(
                a.audit_webhook_batch_buffer_size,
                a.audit_webhook_batch_max_size,
                a.audit_webhook_batch_max_wait,
                a.audit_webhook_batch_throttle_enable,
                a.audit_webhook_batch_throttle_qps,
                a.audit_webhook_batch_throttle_burst,
            );
            backends.push(Backend::new("webhook", a.audit_webhook_mode, Sink::Webhook(hook), batch));
        }
        let file = a.audit_policy_file.clone();
        let policy = match file {
            Some(f) if !backends.is_empty() => {
                let cell = Arc::new(ArcSwap::from_pointee(Policy::load(&f)?));
                let c = cell.clone();
                let f2 = f.clone();
                crate::reload::watch("audit-policy", vec![f], move || {
                    c.store(Arc::new(Policy::load(&f2)?));
                    Ok(())
                });
                Some(cell)
            }
            Some(f) => {
                // as kube: a policy without a backend records nothing; still refuse a bad file
                Policy::load(&f)?;
                None
            }
            None => {
                if !backends.is_empty() {
                    tracing::warn!("no audit policy file provided, no events will be recorded");
                }
                None
            }
        };
        Ok(Audit { policy, backends, max_object: a.audit_object_max_bytes })
    }

    /// Delivers what the batch backends still hold; called once the server has stopped.
    pub fn shutdown(&self) {
        self.backends.iter().for_each(Backend::shutdown);
    }

    pub fn enabled(&self) -> bool {
        self.policy.is_some()
    }

    /// Serialises the event once, into this thread's reused buffer, and hands it to every
    /// backend. Waiting (blocking modes) happens in `Emitted::wait`, after the borrowed event
    /// is gone.
    fn emit(&self, ev: &Event<'_>, omit: policy::Stages) -> Emitted {
        let mut out = Emitted { ok: true, pending: Vec::new() };
        if omit.contains(ev.stage) {
            return out;
        }
        LINE.with(|cell| {
            let mut line = cell.borrow_mut();
            line.clear();
            json::write_event(&mut line, ev);
            line.push(b'\n');
            metrics::EVENT_TOTAL.inc();
            for b in &self.backends {
                match b.submit(&line) {
                    Submitted::Done(stored) => out.ok &= stored || !b.strict(),
                    Submitted::Pending(p) => out.pending.push((p, b.strict())),
                }
            }
            if line.capacity() > LINE_KEEP {
                *line = Vec::with_capacity(LINE_START);
            }
        });
        out
    }
}

/// The reused serialisation buffer: its usual size, and the most it keeps between events
/// (an event with a large object does not pin its memory).
const LINE_START: usize = 2048;
const LINE_KEEP: usize = 64 * 1024;

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(LINE_START));
}

/// An event handed to the backends; `wait` for those that answer later.
struct Emitted {
    ok: bool,
    pending: Vec<(backend::Pending, bool)>,
}

impl Emitted {
    /// False when a blocking-strict backend could not store the event.
    async fn wait(self) -> bool {
        let mut ok = self.ok;
        for (p, strict) in self.pending {
            if !p.wait().await && strict {
                ok = false;
            }
        }
        ok
    }
}

/// kube's getAuthMethods: what a failed request attempted.
fn attempted_methods(req: &RequestHeader, ctx: &RequestContext) -> String {
    let mut m: Vec<&str> = Vec::new();
    let auth = req.headers.get("Authorization").and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let scheme = auth.split(' ').next().unwrap_or("").to_ascii_lowercase();
    if scheme == "basic" {
        m.push("basic");
    }
    if scheme == "bearer" && auth.split(' ').count() > 1 {
        m.push("bearer");
    }
    if ctx.query.all("access_token").any(|v| !v.trim().is_empty()) {
        m.push("access_token");
    }
    if ctx.peer.is_some() {
        m.push("x509");
    }
    if m.is_empty() {
        "Authentication failed, no credentials provided".into()
    } else {
        format!("Authentication failed, attempted: {}", m.join(", "))
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        let c = c.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        c == "application/json" || c.ends_with("+json")
    })
}

/// Whether a request body of this type is recorded: JSON, YAML (apply patches included) and
/// protobuf, the bodies the API takes, each decoded to JSON for the event.
fn is_recorded(content_type: Option<&str>) -> bool {
    let c = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    is_json(content_type) || c.ends_with("yaml") || c == "application/vnd.kubernetes.protobuf"
}

impl Audit {
    /// After authentication (or its failure): picks the level and emits RequestReceived.
    /// Err carries kube's 500 for a blocking-strict backend that could not store the event.
    pub async fn request_received(&self, req: &RequestHeader, ctx: &mut RequestContext) -> Result<(), Reply> {
        let Some(policy) = &self.policy else { return Ok(()) };
        let config = policy.load().evaluate(&Attributes { user: ctx.user.as_deref(), info: &ctx.request_info });
        metrics::count_level(config.level);
        if config.level == Level::None {
            return Ok(());
        }
        let ctype = req.headers.get("Content-Type").and_then(|v| v.to_str().ok());
        let capture_request = config.level >= Level::Request && is_recorded(ctype);
        let mut state = AuditState {
            config,
            cap: self.max_object,
            request_body: capture_request.then(Capture::default),
            request_type: match capture_request {
                true => ctype.unwrap_or_default().to_string(),
                false => String::new(),
            },
            response_body: None,
            response_status: None,
            failed_authn: None,
            started: false,
            finished: false,
        };
        if ctx.user.is_none() {
            state.failed_authn = Some(attempted_methods(req, ctx));
            ctx.audit = Some(Box::new(state));
            return Ok(());
        }
        ctx.audit = Some(Box::new(state));
        let emitted = self.emit(&build_event(ctx, Stage::RequestReceived, None), config.omit_stages);
        if !emitted.wait().await {
            metrics::REQUESTS_REJECTED_TOTAL.inc();
            return Err(internal_error(ctx.incoming.request_uri(), "failed to store audit event").into());
        }
        Ok(())
    }

    /// A long-running response has started streaming (its header is written).
    pub async fn response_started(&self, ctx: &mut RequestContext, code: u16) {
        let Some(st) = ctx.audit.as_mut() else { return };
        if st.started || st.finished || st.failed_authn.is_some() {
            return;
        }
        st.started = true;
        let omit = st.config.omit_stages;
        let mut ev = build_event(ctx, Stage::ResponseStarted, None);
        ev.response_status = Some(event::status_code_only(code));
        let emitted = self.emit(&ev, omit);
        drop(ev);
        emitted.wait().await;
    }

    /// The response is complete (or the handler panicked, with `panicked`).
    pub async fn response_complete(&self, ctx: &mut RequestContext, code: u16, panicked: bool) {
        let Some(st) = ctx.audit.as_mut() else { return };
        if st.finished {
            return;
        }
        st.finished = true;
        let omit = st.config.omit_stages;
        let emitted = if let Some(msg) = st.failed_authn.take() {
            // kube's failed-authentication event: one event, at ResponseStarted
            let mut ev = build_event(ctx, Stage::ResponseStarted, None);
            ev.response_status =
                Some(ResponseStatus::Status(serde_json::json!({"metadata": {}, "message": msg, "code": code})));
            self.emit(&ev, omit)
        } else if panicked {
            let mut ev = build_event(ctx, Stage::Panic, None);
            ev.response_status = Some(ResponseStatus::Status(serde_json::json!({
                "metadata": {}, "status": "Failure", "message": "APIServer panic'd", "reason": "InternalError", "code": 500
            })));
            self.emit(&ev, omit)
        } else {
            let mut truncated = false;
            let request_object = request_object(st, &mut truncated).await;
            let objects = take_objects(st, &ctx.request_info, code, request_object, truncated);
            self.emit(&build_event(ctx, Stage::ResponseComplete, Some(objects)), omit)
        };
        emitted.wait().await;
    }
}

/// A chunk of the request body (proxied requests, or a local handler that reads the body).
pub fn request_body(ctx: &mut RequestContext, chunk: &[u8]) {
    capture(ctx, chunk, |st| &mut st.request_body);
}

/// Adds a chunk to the capture `which` picks, when that body is being captured.
fn capture(ctx: &mut RequestContext, chunk: &[u8], which: fn(&mut AuditState) -> &mut Option<Capture>) {
    if let Some(st) = ctx.audit.as_mut() {
        let cap = st.cap;
        if let Some(c) = which(st).as_mut() {
            c.push(chunk, cap);
        }
    }
}

/// The response header of a proxied response: decides whether its body is captured.
pub fn response_header(ctx: &mut RequestContext, h: &ResponseHeader) {
    let long_running = ctx.request_info.is_long_running();
    if let Some(st) = ctx.audit.as_mut() {
        let ctype = h.headers.get("Content-Type").and_then(|v| v.to_str().ok());
        if st.config.level == Level::RequestResponse && !long_running && is_json(ctype) {
            st.response_body = Some(Capture::default());
        }
    }
}

/// A chunk of a proxied response body.
pub fn response_body(ctx: &mut RequestContext, chunk: &[u8]) {
    capture(ctx, chunk, |st| &mut st.response_body);
}

/// A whole local reply: its Status (at any level) and its body (at RequestResponse).
pub fn local_reply(ctx: &mut RequestContext, reply: &Reply) {
    let Some(st) = ctx.audit.as_mut() else { return };
    let ctype = reply.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("Content-Type")).map(|(_, v)| v.as_str());
    if !is_json(ctype) {
        return;
    }
    if reply.code >= 300 || st.config.level == Level::RequestResponse {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&reply.body) {
            st.response_status = event::status_from_body(&v).map(ResponseStatus::Status);
        }
    }
    if st.config.level == Level::RequestResponse {
        let mut c = Capture::default();
        c.push(&reply.body, st.cap);
        st.response_body = Some(c);
    }
}

/// The captured request body as the event records it: decoded as the store decodes a body of
/// its type, a YAML or protobuf one of some size off this worker thread (a YAML body costs up
/// to ~100 ms of CPU). None when there is none, or it does not decode, or it was over the cap
/// (`truncated`).
async fn request_object(st: &mut AuditState, truncated: &mut bool) -> Option<serde_json::Value> {
    let c = st.request_body.take().filter(|c| holds_object(c, truncated))?;
    let (len, ctype) = (c.buf.len(), std::mem::take(&mut st.request_type));
    if is_json(Some(&ctype)) {
        return crate::api::decode::json(&c.buf).ok();
    }
    let decode = move || crate::store::rest::decode(&c.buf, &ctype, "").ok();
    match len > 1024 {
        true => crate::filters::request_body::offload(len, decode).await,
        false => decode(),
    }
}

/// Whether a capture holds a body to record: not empty, and within the cap (else `truncated`).
fn holds_object(c: &Capture, truncated: &mut bool) -> bool {
    *truncated |= c.overflow;
    !c.overflow && !c.buf.is_empty()
}

/// A captured JSON response body, as the event records it.
fn parse_object(c: &Capture, scrub: Scrub, truncated: &mut bool) -> Option<serde_json::Value> {
    if !holds_object(c, truncated) {
        return None;
    }
    let mut v: serde_json::Value = crate::api::decode::json(&c.buf).ok()?;
    event::scrub(&mut v, scrub);
    Some(v)
}

/// What a ResponseComplete event records of the response: its status and the captured
/// objects, taken out of the request's audit state.
struct Objects {
    response_status: ResponseStatus,
    request_object: Option<serde_json::Value>,
    response_object: Option<serde_json::Value>,
    truncated: bool,
}

fn take_objects(
    st: &mut AuditState,
    info: &crate::request_info::RequestInfo,
    code: u16,
    request_object: Option<serde_json::Value>,
    mut truncated: bool,
) -> Objects {
    let scrub = Scrub {
        omit_managed_fields: st.config.omit_managed_fields,
        keep_secret_data: st.config.secrets_explicit,
        target: event::Target::of(info),
    };
    let request_object = request_object.map(|mut v| {
        event::scrub(&mut v, scrub);
        v
    });
    let response_object = st.response_body.take().and_then(|c| parse_object(&c, scrub, &mut truncated));
    Objects {
        response_status: st.response_status.take().unwrap_or(ResponseStatus::Code(code)),
        request_object,
        response_object,
        truncated,
    }
}

/// The event of this request at `stage`, borrowing what the chain has resolved so far.
fn build_event(ctx: &RequestContext, stage: Stage, objects: Option<Objects>) -> Event<'_> {
    let info = &ctx.request_info;
    let level = ctx.audit.as_ref().map(|s| s.config.level).unwrap_or(Level::None);
    let mut annotations = BTreeMap::new();
    if stage != Stage::RequestReceived {
        if let Some((d, reason)) = &ctx.decision {
            annotations.insert(DECISION_ANNOTATION, d.audit_value());
            annotations.insert(REASON_ANNOTATION, &**reason);
        }
    }
    let mut ev = Event {
        kind: "Event",
        api_version: "audit.k8s.io/v1",
        level,
        audit_id: ctx.incoming.audit_id(),
        stage,
        request_uri: ctx.incoming.request_uri(),
        verb: info.verb(),
        user: ctx.user.as_deref().unwrap_or(&event::NO_USER),
        impersonated_user: if stage == Stage::RequestReceived { None } else { ctx.impersonated.as_deref() },
        source_ips: ctx.incoming.source_ips(),
        user_agent: ctx.incoming.user_agent(),
        object_ref: info.is_resource_request.then(|| ObjectReference {
            resource: info.resource(),
            namespace: info.namespace(),
            name: info.name(),
            api_group: info.api_group(),
            api_version: info.api_version(),
            subresource: info.subresource(),
        }),
        response_status: None,
        request_object: None,
        response_object: None,
        request_received_timestamp: MicroTime(ctx.received_at.unwrap_or_else(SystemTime::now)),
        stage_timestamp: MicroTime(SystemTime::now()),
        annotations,
    };
    if let Some(o) = objects {
        ev.response_status = Some(o.response_status);
        ev.request_object = o.request_object;
        ev.response_object = o.response_object;
        if o.truncated {
            ev.annotations.insert(TRUNCATED_ANNOTATION, "true");
        }
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;
    use crate::request_info::RequestInfo;

    /// The audit stage alone, logging to a file with `policy`, and the log's path.
    fn audit_to_file(policy: &str) -> (Audit, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
        let args = AuditArgs {
            audit_policy_file: Some(dir.path().join("policy.yaml")),
            audit_log_path: Some(dir.path().join("audit.log")),
            ..Default::default()
        };
        (Audit::new(&args).unwrap(), dir.path().join("audit.log"), dir)
    }

    fn events(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn request(method: &str, path: &str, query: Option<&str>, ctype: Option<&str>) -> (RequestHeader, RequestContext) {
        let uri = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let mut req = RequestHeader::build(method, uri.as_bytes(), None).unwrap();
        if let Some(c) = ctype {
            req.insert_header("Content-Type", c).unwrap();
        }
        let mut ctx = RequestContext::default();
        crate::filters::request_received::run(&req, Some([10, 0, 0, 9].into()), &mut ctx);
        ctx.request_info = Arc::new(RequestInfo::resolve(method, path, query).unwrap());
        ctx.user = Some(Arc::new(UserInfo::new("alice", vec!["devs".into()])));
        (req, ctx)
    }

    #[tokio::test]
    async fn watch_emits_response_started_and_impersonation_shows_after_request_received() {
        let (audit, log, _dir) =
            audit_to_file("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n");
        let (req, mut ctx) = request("GET", "/api/v1/namespaces", Some("watch=true"), None);
        audit.request_received(&req, &mut ctx).await.unwrap();
        ctx.impersonated = Some(Box::new(UserInfo::new("bob", vec![])));
        ctx.decision = Some((crate::authz::Decision::Allow, "RBAC: allowed".into()));
        audit.response_started(&mut ctx, 200).await;
        audit.response_started(&mut ctx, 200).await; // once only
        audit.response_complete(&mut ctx, 200, false).await;
        audit.response_complete(&mut ctx, 200, false).await; // once only
        let evs = events(&log);
        let stages: Vec<&str> = evs.iter().map(|e| e["stage"].as_str().unwrap()).collect();
        assert_eq!(stages, ["RequestReceived", "ResponseStarted", "ResponseComplete"]);
        assert_eq!(evs[0]["verb"], "watch");
        assert!(evs[0].get("impersonatedUser").is_none());
        assert_eq!(evs[1]["impersonatedUser"]["username"], "bob");
        assert_eq!(evs[1]["user"]["username"], "alice");
        assert_eq!(evs[1]["responseStatus"]["code"], 200);
        assert_eq!(evs[2]["annotations"]["authorization.k8s.io/reason"], "RBAC: allowed");
        assert_eq!(evs[2]["objectRef"]["resource"], "namespaces");
    }

    #[tokio::test]
    async fn request_and_response_objects_with_cap_and_secret_scrubbing() {
        let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: RequestResponse\n  resources: [{group: '', resources: [configmaps]}]\n- level: Request\n";
        let (audit, log, _dir) = audit_to_file(policy);

        // RequestResponse: both objects (a proxied request's chunks, then its response)
        let (req, mut ctx) = request("POST", "/api/v1/namespaces/a/configmaps", None, Some("application/json"));
        audit.request_received(&req, &mut ctx).await.unwrap();
        request_body(&mut ctx, br#"{"kind":"ConfigMap","apiVersion":"v1","#);
        request_body(&mut ctx, br#""metadata":{"name":"c"},"data":{"k":"v"}}"#);
        let mut h = ResponseHeader::build(201, None).unwrap();
        h.insert_header("Content-Type", "application/json").unwrap();
        response_header(&mut ctx, &h);
        response_body(&mut ctx, br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","uid":"u"}}"#);
        audit.response_complete(&mut ctx, 201, false).await;

        // Request level on a Secret: requestObject without its data (the rule does not name secrets)
        let (req, mut ctx) = request("POST", "/api/v1/namespaces/a/secrets", None, Some("application/json"));
        audit.request_received(&req, &mut ctx).await.unwrap();
        request_body(
            &mut ctx,
            br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"password":"aHVudGVyMg=="}}"#,
        );
        local_reply(
            &mut ctx,
            &Reply::json(
                201,
                &serde_json::json!({"kind": "Secret", "apiVersion": "v1", "data": {"password": "aHVudGVyMg=="}}),
            ),
        );
        audit.response_complete(&mut ctx, 201, false).await;

        // over the cap: left out, annotated
        let (req, mut ctx) = request("POST", "/api/v1/namespaces/a/pods", None, Some("application/json"));
        audit.request_received(&req, &mut ctx).await.unwrap();
        let big = vec![b' '; audit.max_object + 1];
        request_body(&mut ctx, &big);
        audit.response_complete(&mut ctx, 201, false).await;

        // a protobuf body that does not decode: no object
        let (req, mut ctx) =
            request("POST", "/api/v1/namespaces/a/pods", None, Some("application/vnd.kubernetes.protobuf"));
        audit.request_received(&req, &mut ctx).await.unwrap();
        request_body(&mut ctx, b"k8s\0...");
        audit.response_complete(&mut ctx, 201, false).await;

        // YAML, and an apply patch in YAML: recorded as JSON, as kube records any body (one
        // past 1 KiB, decoded off the worker thread)
        let padded = format!("{}\n", "#".repeat(2048));
        for (ctype, pad) in
            [("application/yaml", ""), ("application/apply-patch+yaml", ""), ("application/yaml", &*padded)]
        {
            let (req, mut ctx) =
                request("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x", None, Some(ctype));
            audit.request_received(&req, &mut ctx).await.unwrap();
            let body = format!("{pad}kind: ClusterRoleBinding\nroleRef: {{kind: ClusterRole, name: cluster-admin}}\n");
            request_body(&mut ctx, body.as_bytes());
            audit.response_complete(&mut ctx, 200, false).await;
        }
        // a large YAML Secret, decoded off the thread, is scrubbed as any
        let (req, mut ctx) = request("POST", "/api/v1/namespaces/a/secrets", None, Some("application/yaml"));
        audit.request_received(&req, &mut ctx).await.unwrap();
        request_body(&mut ctx, format!("{padded}metadata: {{name: big}}\nstringData: {{k: hunter3}}\n").as_bytes());
        audit.response_complete(&mut ctx, 201, false).await;

        let evs = events(&log);
        assert_eq!(evs.len(), 8, "RequestReceived omitted");
        for e in &evs[4..7] {
            assert_eq!(e["requestObject"]["roleRef"]["name"], "cluster-admin", "{e}");
        }
        assert_eq!(evs[7]["requestObject"], serde_json::json!({"metadata": {"name": "big"}}));
        assert!(!std::fs::read_to_string(&log).unwrap().contains("hunter3"));
        assert_eq!(evs[0]["requestObject"]["data"]["k"], "v");
        assert_eq!(evs[0]["responseObject"]["metadata"]["uid"], "u");
        assert_eq!(evs[0]["responseStatus"], serde_json::json!({"metadata": {}, "code": 201}));
        assert_eq!(evs[1]["level"], "Request");
        assert_eq!(
            evs[1]["requestObject"],
            serde_json::json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}})
        );
        assert!(evs[1].get("responseObject").is_none());
        assert!(!std::fs::read_to_string(&log).unwrap().contains("aHVudGVyMg=="));
        assert!(evs[2].get("requestObject").is_none());
        assert_eq!(evs[2]["annotations"]["audit.k8s.io/truncated"], "true");
        assert!(evs[3].get("requestObject").is_none());
    }

    #[tokio::test]
    async fn panic_stage_replaces_response_complete() {
        let (audit, log, _dir) =
            audit_to_file("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n");
        let (req, mut ctx) = request("GET", "/version", None, None);
        audit.request_received(&req, &mut ctx).await.unwrap();
        audit.response_complete(&mut ctx, 500, true).await;
        audit.response_complete(&mut ctx, 500, false).await;
        let evs = events(&log);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1]["stage"], "Panic");
        assert_eq!(evs[1]["responseStatus"]["code"], 500);
        assert!(evs[1].get("objectRef").is_none(), "non-resource request");
    }
}
