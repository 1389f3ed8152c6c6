//! Reading a request body that frontdoor serves itself, as kube's handlers do
//! (`limitedReadBody`): whole, bounded, 413 past the limit. Each chunk also feeds the
//! audit capture, so a local request gets its `requestObject` as a proxied one does.
#![allow(clippy::result_large_err)] // Status is the spine's error type

use crate::api::Status;
use crate::context::RequestContext;
use pingora::proxy::Session;

/// kube-apiserver's default limit on a request body (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How much of an unread request body is read after an error reply: Go's server's bound
/// (`maxPostHandlerReadBytes`), past which it closes the connection instead.
pub const DISCARD_LIMIT: usize = 256 * 1024;

/// Reads and drops what is left of a request body, up to `limit` bytes, once a reply sent
/// before the body was read is out (a 405 of the route, a 403 of the chain): over HTTP/1.1
/// the connection can then be kept, as Go's server keeps it; over HTTP/2 the stream ends
/// without a RST_STREAM under a client still sending (RFC 9113 allows one with NO_ERROR, Go
/// sends it, and curl drops the reply it came after). A body longer than `limit`, or not
/// ended within [`DISCARD_TIME`], is left: the connection is closed instead of read on, so no
/// client holds the request by sending nothing.
pub async fn discard(session: &mut Session, limit: usize) {
    let read_to_end = async {
        let mut read = 0;
        while read <= limit {
            match session.read_request_body().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
        false
    };
    let ended = tokio::time::timeout(DISCARD_TIME, read_to_end).await.unwrap_or(false);
    if !ended {
        session.set_keepalive(None);
    }
}

/// How long [`discard`] waits for the rest of a body.
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the whole request body, at most `limit` bytes.
pub async fn read(session: &mut Session, ctx: &mut RequestContext, limit: usize) -> Result<Vec<u8>, Status> {
    // room for what the client announced (within the limit), not grown by doubling
    let mut body = Vec::with_capacity(ctx.content_length.unwrap_or(0).min(limit + 1));
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
            Err(e) => return Err(read_failed(&e)),
        }
    }
}

/// Why a body could not be read: a client that stopped sending is kube's timeout (its handler
/// waits on the body until the request's deadline, a 504), anything else a 400.
fn read_failed(e: &pingora::Error) -> Status {
    match e.etype {
        pingora::ErrorType::ReadTimedout => Status::timeout(),
        _ => Status::bad_request(format!("error reading request body: {e}")),
    }
}

/// Bodies larger than this (and every YAML body: libyaml is slow) are decoded on tokio's
/// blocking pool: each worker thread runs one single-threaded runtime, so a long decode there
/// would stall every other connection it serves, TLS handshakes included.
pub const OFFLOAD_BYTES: usize = 64 * 1024;

/// Whether decoding `len` bytes of `content_type` belongs off the worker thread.
pub fn heavy(len: usize, content_type: &str) -> bool {
    len > OFFLOAD_BYTES || (len > 0 && content_type.split(';').next().unwrap_or("").trim().ends_with("yaml"))
}

/// How many decodes of large bodies run at once, process-wide: a flood of them takes at most
/// this many cores, whatever the blocking pool's size, and waits its turn.
fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new((cores / 2).max(1))
    })
}

/// How many store writes run at once on the blocking pool, process-wide: the store commits one
/// at a time, so more would only park threads the pool shares with other work (name
/// resolution for the proxy's dials); the rest wait here, off any thread.
pub fn write_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(16))
}

/// Runs CPU-heavy work (decoding a body of `len` bytes, and what follows from it) on the
/// blocking pool; a large body waits for one of `permits()`, a small one (YAML) does not.
pub async fn offload<T: Send + 'static>(len: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = match len > OFFLOAD_BYTES {
        true => Some(permits().acquire().await.expect("never closed")),
        false => None,
    };
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Decodes a JSON body within api::decode's bounds, off the worker thread when large.
pub async fn json(body: Vec<u8>) -> Result<serde_json::Value, String> {
    if heavy(body.len(), "application/json") {
        offload(body.len(), move || crate::api::decode::json(&body)).await
    } else {
        crate::api::decode::json(&body)
    }
}

/// Decodes a JSON or YAML body within api::decode's bounds, off the worker thread unless
/// under 1 KiB.
pub async fn json_or_yaml(body: Vec<u8>) -> Result<serde_json::Value, String> {
    if body.len() > 1024 {
        offload(body.len(), move || crate::api::decode::yaml(&body)).await
    } else {
        crate::api::decode::yaml(&body)
    }
}

/// kube's 413 for a body over the limit.
pub fn too_large(limit: usize) -> Status {
    Status::failure(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {limit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that stopped coming is kube's 504, as a chunked one that stops is; a broken
    /// one a 400.
    #[test]
    fn a_stalled_body_is_a_timeout() {
        let stalled = pingora::Error::explain(pingora::ErrorType::ReadTimedout, "while reading body");
        let s = read_failed(&stalled);
        assert_eq!((s.code, s.reason.as_str()), (504, "Timeout"));
        assert_eq!(s.message, "Timeout: request did not complete within requested timeout - context deadline exceeded");
        let broken = pingora::Error::explain(pingora::ErrorType::ReadError, "while reading body");
        assert_eq!(read_failed(&broken).code, 400);
    }

    #[test]
    fn large_and_yaml_bodies_are_heavy() {
        assert!(!heavy(100, "application/json"));
        assert!(heavy(OFFLOAD_BYTES + 1, "application/json"));
        assert!(heavy(100, "application/yaml; charset=utf-8"));
        assert!(heavy(100, "application/apply-patch+yaml"));
        assert!(!heavy(0, "application/yaml"));
    }

    /// The worker thread's runtime is single-threaded: offloaded work runs elsewhere, and the
    /// runtime stays free to serve meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn offloaded_work_leaves_the_runtime_thread_free() {
        let here = std::thread::current().id();
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t2 = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        let there = offload(OFFLOAD_BYTES + 1, || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            std::thread::current().id()
        })
        .await;
        ticker.abort();
        assert_ne!(here, there);
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 5, "the runtime kept running");
    }

    #[test]
    fn too_large_is_kubes_413() {
        let s = too_large(MAX_BODY);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["code"], 413);
        assert_eq!(v["reason"], "RequestEntityTooLarge");
        assert_eq!(v["message"], "Request entity too large: limit is 3145728");
    }
}
