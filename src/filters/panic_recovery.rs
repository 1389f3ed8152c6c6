//! Panic recovery: a panicking handler answers a 500 Status and the process lives on.

use crate::api::Status;
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// kube's text for a request that panicked the server.
pub const PANIC_MESSAGE: &str = "This request caused apiserver to panic. Look in the logs for details.";

/// Runs `fut`, turning a panic into `Err` with the 500 Status to send.
pub async fn recover<F, T>(what: &str, fut: F) -> Result<T, Status>
where
    F: Future<Output = T>,
{
    catch(fut).await.map_err(|msg| panicked(what, &msg))
}

/// Runs `fut`, turning a panic into `Err` with the panic message. For callers that name
/// the request only once it panicked (naming it costs an allocation per request).
/// A plain fn, not an `async fn`: an async fn would keep `fut` twice in its state (the
/// argument and the running copy), doubling what every request in flight holds.
pub fn catch<F, T>(fut: F) -> impl Future<Output = Result<T, String>>
where
    F: Future<Output = T>,
{
    AssertUnwindSafe(fut).catch_unwind().map(|r| {
        r.map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        })
    })
}

/// Logs a panic of request `what` and gives the 500 Status to send.
pub fn panicked(what: &str, msg: &str) -> Status {
    tracing::error!(request = what, panic = %msg, "apiserver panic'd");
    Status::failure(500, "InternalError", PANIC_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panic_becomes_500_status() {
        let r: Result<(), Status> = recover("GET /x", async { panic!("boom") }).await;
        let s = r.unwrap_err();
        assert_eq!(s.code, 500);
        assert_eq!(s.message, PANIC_MESSAGE);
        assert_eq!(recover("GET /y", async { 7 }).await.unwrap(), 7);
    }
}
