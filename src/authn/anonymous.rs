//! Anonymous requests (`--anonymous-auth`): `system:anonymous` in `system:unauthenticated`,
//! only when no credential was presented at all.

use super::user::UserInfo;

pub fn user() -> UserInfo {
    UserInfo::anonymous()
}
