//! UserInfo, as k8s.io/apiserver's `user.Info`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const ANONYMOUS: &str = "system:anonymous";
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
pub const SYSTEM_MASTERS: &str = "system:masters";

/// Who a request acts as. Serialised with authentication.k8s.io/v1 UserInfo's field names
/// so audit events and reviews can embed it directly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        UserInfo { username: name.into(), groups, ..Default::default() }
    }

    pub fn anonymous() -> Self {
        UserInfo::new(ANONYMOUS, vec![ALL_UNAUTHENTICATED.into()])
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    pub fn is_system_master(&self) -> bool {
        self.in_group(SYSTEM_MASTERS)
    }

    /// [`Self::with_authenticated_group`] of a shared user: the same user when it has nothing
    /// to add (a connection's certificate user, a cached token's), a copy only when it has.
    pub fn authenticated(user: Arc<Self>) -> Arc<Self> {
        if user.username == ANONYMOUS || user.in_group(ALL_AUTHENTICATED) {
            return user;
        }
        Arc::new((*user).clone().with_authenticated_group())
    }

    /// Adds `system:authenticated` unless present, as kube's authenticated-group adder does.
    pub fn with_authenticated_group(mut self) -> Self {
        if self.username != ANONYMOUS && !self.in_group(ALL_AUTHENTICATED) {
            // exactly: the groups are held for the request's life (an idle watch's)
            self.groups.reserve_exact(1);
            self.groups.push(ALL_AUTHENTICATED.into());
        }
        self
    }
}
