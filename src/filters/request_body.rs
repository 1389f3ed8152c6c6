//! Reading a request body that frontdoor serves itself, as kube's handlers do
//! (`limitedReadBody`): whole, bounded, 413 past the limit. Each chunk also feeds the
//! audit capture, so a local request gets its `requestObject` as a proxied one does.
#![allow(clippy::result_large_err)] // Status is the spine's error type

use crate::api::Status;
use crate::context::RequestContext;
use pingora::proxy::Session;

/// kube-apiserver's default limit on a request body (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Reads the whole request body, at most `limit` bytes.
pub async fn read(session: &mut Session, ctx: &mut RequestContext, limit: usize) -> Result<Vec<u8>, Status> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                crate::audit::request_body(ctx, &chunk);
                body.extend_from_slice(&chunk);
                if body.len() > limit {
                    return Err(too_large(limit));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(Status::bad_request(format!("error reading request body: {e}"))),
        }
    }
}

/// kube's 413 for a body over the limit.
pub fn too_large(limit: usize) -> Status {
    Status::failure(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {limit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_is_kubes_413() {
        let s = too_large(MAX_BODY);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["code"], 413);
        assert_eq!(v["reason"], "RequestEntityTooLarge");
        assert_eq!(v["message"], "Request entity too large: limit is 3145728");
    }
}
