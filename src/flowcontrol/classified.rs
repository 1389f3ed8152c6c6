//! What priority & fairness decided for a request, as the response headers carry it (a leaf
//! type: the request context holds one, for the whole request).

use http::HeaderValue;
use std::sync::Arc;

/// What priority & fairness decided for a request.
#[derive(Debug, Clone, Default)]
pub struct Classified {
    /// The FlowSchema's and its level's uid headers, built once with the configuration: every
    /// request's context (an idle watch's too) holds one reference, where the two values were
    /// 80 bytes.
    pub headers: Arc<UidHeaders>,
    /// An admitted watch, counted for the writes it follows while the request lives.
    pub watch: Option<Arc<crate::flowcontrol::apf::watches::Registration>>,
}

/// kube's `X-Kubernetes-PF-FlowSchema-UID` and `X-Kubernetes-PF-PriorityLevel-UID`.
#[derive(Debug, Default)]
pub struct UidHeaders {
    /// The header values (a clone is a reference count, where a `&str` would be copied and
    /// checked again on every response); None: a uid that is no valid header value, which
    /// gets no header.
    pub flow_schema_uid: Option<HeaderValue>,
    pub priority_level_uid: Option<HeaderValue>,
}

pub const FLOW_SCHEMA_UID: &str = "X-Kubernetes-PF-FlowSchema-UID";
pub const PRIORITY_LEVEL_UID: &str = "X-Kubernetes-PF-PriorityLevel-UID";

impl Classified {
    /// Sets both headers on a response.
    pub fn add_headers(&self, h: &mut pingora::http::ResponseHeader) {
        if let Some(uid) = &self.headers.flow_schema_uid {
            let _ = h.insert_header(FLOW_SCHEMA_UID, uid.clone());
        }
        if let Some(uid) = &self.headers.priority_level_uid {
            let _ = h.insert_header(PRIORITY_LEVEL_UID, uid.clone());
        }
    }
}
