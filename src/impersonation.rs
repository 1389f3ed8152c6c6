//! Impersonation: `Impersonate-*` headers, checked with the `impersonate` verb. Until it
//! lands, impersonation headers are refused rather than silently ignored.

use crate::api::Status;
use crate::context::RequestContext;
use crate::server::Gateway;
use pingora::http::RequestHeader;

pub async fn impersonate(_gw: &Gateway, req: &mut RequestHeader, _ctx: &mut RequestContext) -> Result<(), Status> {
    let asks = req.headers.keys().any(|k| k.as_str().to_ascii_lowercase().starts_with("impersonate-"));
    if asks {
        return Err(Status::forbidden("", "", "", "impersonation is not supported yet"));
    }
    Ok(())
}
