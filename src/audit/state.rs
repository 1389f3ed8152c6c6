//! What the audit stage keeps per request, in the request context: the level and stages
//! chosen for it, the bodies captured so far, what was already emitted. A leaf module, so the
//! context can hold it without depending on the stage.

use super::event::ResponseStatus;
use super::policy::{Level, RequestAuditConfig};

/// A body being captured for the event, up to the cap.
#[derive(Debug, Default)]
pub(super) struct Capture {
    pub(super) buf: Vec<u8>,
    pub(super) overflow: bool,
}

impl Capture {
    pub(super) fn push(&mut self, chunk: &[u8], cap: usize) {
        if self.overflow {
            return;
        }
        if self.buf.len() + chunk.len() > cap {
            self.overflow = true;
            self.buf = Vec::new();
            return;
        }
        self.buf.extend_from_slice(chunk);
    }
}

/// Per-request audit state kept in the request context.
#[derive(Debug)]
pub struct AuditState {
    pub(super) config: RequestAuditConfig,
    pub(super) cap: usize,
    pub(super) request_body: Option<Capture>,
    /// The request body's Content-Type, when it is captured: JSON, YAML or protobuf, each
    /// recorded as JSON, as kube records a request object whatever its serializer.
    pub(super) request_type: String,
    pub(super) response_body: Option<Capture>,
    pub(super) response_status: Option<ResponseStatus>,
    /// Set when authentication failed: the message of kube's failed-authentication event.
    pub(super) failed_authn: Option<String>,
    pub(super) started: bool,
    pub(super) finished: bool,
}

impl AuditState {
    pub fn level(&self) -> Level {
        self.config.level
    }
}
