//! What priority & fairness decided for a request, as the response headers carry it (a leaf
//! type: the request context holds one, for the whole request).

/// kube's `X-Kubernetes-PF-FlowSchema-UID` and `X-Kubernetes-PF-PriorityLevel-UID`.
#[derive(Debug, Clone, Default)]
pub struct Classified {
    pub flow_schema_uid: String,
    pub priority_level_uid: String,
    /// An admitted watch, counted for the writes it follows while the request lives.
    pub watch: Option<std::sync::Arc<crate::flowcontrol::apf::watches::Registration>>,
}

pub const FLOW_SCHEMA_UID: &str = "X-Kubernetes-PF-FlowSchema-UID";
pub const PRIORITY_LEVEL_UID: &str = "X-Kubernetes-PF-PriorityLevel-UID";

impl Classified {
    /// Sets both headers on a response.
    pub fn add_headers(&self, h: &mut pingora::http::ResponseHeader) {
        let _ = h.insert_header(FLOW_SCHEMA_UID, self.flow_schema_uid.as_str());
        let _ = h.insert_header(PRIORITY_LEVEL_UID, self.priority_level_uid.as_str());
    }
}
