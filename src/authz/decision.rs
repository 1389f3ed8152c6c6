//! An authorizer's answer. A leaf module: the request context holds one.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    NoOpinion,
}

impl Decision {
    /// The audit annotation value kube writes for `authorization.k8s.io/decision`.
    pub fn audit_value(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            _ => "forbid",
        }
    }

    /// The `result` label of `authorization_attempts_total`.
    pub fn metric_value(self) -> &'static str {
        match self {
            Decision::Allow => "allowed",
            Decision::Deny => "denied",
            Decision::NoOpinion => "no-opinion",
        }
    }
}
