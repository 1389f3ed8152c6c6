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
    /// to add (a connection's certificate user, a cached token's) or is not shared (a user just
    /// built), a copy only when another holds it.
    pub fn authenticated(mut user: Arc<Self>) -> Arc<Self> {
        if user.lacks_authenticated_group() {
            Arc::make_mut(&mut user).add_authenticated_group();
        }
        user
    }

    /// Adds `system:authenticated` unless present, as kube's authenticated-group adder does.
    pub fn with_authenticated_group(mut self) -> Self {
        if self.lacks_authenticated_group() {
            self.add_authenticated_group();
        }
        self
    }

    fn lacks_authenticated_group(&self) -> bool {
        self.username != ANONYMOUS && !self.in_group(ALL_AUTHENTICATED)
    }

    fn add_authenticated_group(&mut self) {
        // exactly: the groups are held for the request's life (an idle watch's)
        self.groups.reserve_exact(1);
        self.groups.push(ALL_AUTHENTICATED.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The group is added in place to a user no one else holds (one just built), to a copy of
    /// a shared one (the shared one unchanged), and never twice.
    #[test]
    fn authenticated_copies_only_a_shared_user() {
        let fresh = Arc::new(UserInfo::new("a", vec![]));
        let at = Arc::as_ptr(&fresh);
        let u = UserInfo::authenticated(fresh);
        assert_eq!((Arc::as_ptr(&u), u.groups.as_slice()), (at, [ALL_AUTHENTICATED.to_string()].as_slice()));
        let shared = Arc::new(UserInfo::new("b", vec![]));
        let u = UserInfo::authenticated(shared.clone());
        assert!(!Arc::ptr_eq(&u, &shared) && shared.groups.is_empty());
        assert!(Arc::ptr_eq(&UserInfo::authenticated(u.clone()), &u), "nothing to add: the same user");
        let anonymous = Arc::new(UserInfo::anonymous());
        assert_eq!(UserInfo::authenticated(anonymous).groups, ["system:unauthenticated"]);
    }
}
