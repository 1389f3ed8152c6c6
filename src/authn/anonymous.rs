//! Anonymous requests (`--anonymous-auth`): `system:anonymous` in `system:unauthenticated`,
//! only when no credential was presented at all.

use super::user::UserInfo;
use std::sync::{Arc, LazyLock};

/// One user shared by every anonymous request.
static ANONYMOUS: LazyLock<Arc<UserInfo>> = LazyLock::new(|| Arc::new(UserInfo::anonymous()));

pub fn user() -> Arc<UserInfo> {
    ANONYMOUS.clone()
}
