//! Authentication: every request leaves this stage with a UserInfo or a 401 Status.
//!
//! Until the full authenticator union lands, a verified client certificate (signed by
//! `--client-ca-file`) is the user (CN, groups from O), and no credential is anonymous.

pub mod user;

pub use user::UserInfo;

use crate::api::Status;
use crate::context::RequestContext;
use crate::server::Gateway;
use crate::tls::CaRole;
use pingora::http::RequestHeader;

/// Authentication flags (kube-apiserver's names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AuthnArgs {
    /// Enables anonymous requests to the secure port. Anonymous requests get the username
    /// system:anonymous and the group system:unauthenticated.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
}

/// The compiled authenticators.
pub struct Authentication {
    anonymous: bool,
}

impl Authentication {
    pub fn new(args: &crate::config::ServeArgs) -> anyhow::Result<Self> {
        Ok(Authentication { anonymous: args.authn.anonymous_auth })
    }
}

/// The authentication filter.
pub async fn authenticate(gw: &Gateway, _req: &mut RequestHeader, ctx: &mut RequestContext) -> Result<(), Status> {
    if let Some(peer) = ctx.peer.as_ref().filter(|p| p.verified_by.contains(&CaRole::ClientCa)) {
        ctx.user = Some(UserInfo::new(peer.common_name.clone(), peer.organizations.clone()).with_authenticated_group());
        ctx.authenticator = "x509";
        return Ok(());
    }
    if gw.authn.anonymous {
        ctx.user = Some(UserInfo::anonymous());
        ctx.authenticator = "anonymous";
        return Ok(());
    }
    Err(Status::unauthorized())
}
