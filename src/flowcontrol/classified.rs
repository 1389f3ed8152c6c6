//! What priority & fairness decided for a request, as the response headers carry it (a leaf
//! type: the request context holds one, for the whole request).

use http::HeaderValue;

/// kube's `X-Kubernetes-PF-FlowSchema-UID` and `X-Kubernetes-PF-PriorityLevel-UID`.
#[derive(Debug, Clone, Default)]
pub struct Classified {
    /// The header values the FlowSchema and its level built once (a clone is a reference
    /// count, where a `&str` would be copied and checked again on every response); None: a
    /// uid that is no valid header value, which gets no header.
    pub flow_schema_uid: Option<HeaderValue>,
    pub priority_level_uid: Option<HeaderValue>,
    /// An admitted watch, counted for the writes it follows while the request lives.
    pub watch: Option<std::sync::Arc<crate::flowcontrol::apf::watches::Registration>>,
}

pub const FLOW_SCHEMA_UID: &str = "X-Kubernetes-PF-FlowSchema-UID";
pub const PRIORITY_LEVEL_UID: &str = "X-Kubernetes-PF-PriorityLevel-UID";

impl Classified {
    /// Sets both headers on a response.
    pub fn add_headers(&self, h: &mut pingora::http::ResponseHeader) {
        if let Some(uid) = &self.flow_schema_uid {
            let _ = h.insert_header(FLOW_SCHEMA_UID, uid.clone());
        }
        if let Some(uid) = &self.priority_level_uid {
            let _ = h.insert_header(PRIORITY_LEVEL_UID, uid.clone());
        }
    }
}
