//! Audit: policy, events at each stage, log and webhook backends. This is the slot the
//! chain calls; until audit lands it records nothing.

use crate::context::RequestContext;
use crate::server::Gateway;

/// Audit flags (kube-apiserver's names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AuditArgs {}

pub struct Audit {}

/// Per-request audit state kept in the request context (level, stages, event so far).
#[derive(Debug, Default)]
pub struct AuditState {}

impl Audit {
    pub fn new(_args: &crate::config::ServeArgs) -> anyhow::Result<Self> {
        Ok(Audit {})
    }
}

/// After authentication (or its failure): decide the level, emit RequestReceived.
pub fn request_received(_gw: &Gateway, _ctx: &mut RequestContext) {}

/// A long-running response has started streaming.
pub fn response_started(_gw: &Gateway, _ctx: &mut RequestContext, _code: u16) {}

/// The response is complete (or the handler panicked, with `panicked`).
pub fn response_complete(_gw: &Gateway, _ctx: &mut RequestContext, _code: u16, _panicked: bool) {}
