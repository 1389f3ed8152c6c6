//! `/debug/pprof/` as kube-apiserver serves Go's net/http/pprof (`--profiling`, default true):
//! a CPU profile over `?seconds=N` in pprof's protobuf format, which `go tool pprof` and
//! `pprof` read. Behind authorization like every `/debug/*` path (kube's RBAC grants it to
//! cluster-admin only). There is no heap profile: mimalloc keeps no allocation samples (see
//! `named`).

use crate::filters::Reply;
use crate::request_info::query::Query;
use pprof::protos::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Go's default and a bound of our own (the whole request waits the profile out).
const DEFAULT_SECONDS: u64 = 30;
const MAX_SECONDS: u64 = 300;
/// Samples per second, Go's rate.
const FREQUENCY: i32 = 100;

/// One CPU profile at a time, as Go's runtime allows.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The index page: what can be fetched.
pub fn index() -> Reply {
    Reply::text(
        200,
        "/debug/pprof/\n\nprofile: CPU profile (?seconds=N, default 30), pprof protobuf\n\
         heap, allocs: not served (frontdoor's allocator, mimalloc, records no allocation samples)\n",
    )
}

/// Any other profile under `/debug/pprof/`: Go's answer for a profile its runtime does not
/// have (`pprof.Index` -> `Unknown profile`, 404, `X-Go-Pprof: 1`), which `go tool pprof`
/// prints as the server's error. Go always has `heap` and `allocs`; frontdoor cannot: mimalloc
/// keeps no sampled allocation stacks to build one from (its statistics count bytes, not
/// sites), and an allocator that does (jemalloc's `prof`) would replace the one the memory
/// goals were met with (README "Tracing and profiling"). The body says so after Go's line.
pub fn named(name: &str) -> Reply {
    let why = match name {
        "heap" | "allocs" => "frontdoor: no heap profile: its allocator (mimalloc) records no allocation samples\n",
        _ => "",
    };
    Reply::text(404, format!("Unknown profile\n{why}")).header("X-Go-Pprof", "1")
}

/// A CPU profile of the whole process for `?seconds=` (first value, Go's parsing: a bad
/// number is a 400), taken off the request threads.
pub async fn profile(query: &Query) -> Reply {
    let seconds = match query.first("seconds") {
        None | Some("") => DEFAULT_SECONDS,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n > 0 => n.min(MAX_SECONDS),
            _ => return Reply::text(400, "Bad Request: invalid value for \"seconds\"\n"),
        },
    };
    if RUNNING.swap(true, Ordering::AcqRel) {
        return Reply::text(500, "Could not enable CPU profiling: cpu profiling already in use\n");
    }
    let taken = tokio::task::spawn_blocking(move || take(Duration::from_secs(seconds))).await;
    RUNNING.store(false, Ordering::Release);
    match taken {
        Ok(Ok(bytes)) => {
            let mut r = Reply::new(200, "application/octet-stream", bytes);
            r.headers.push(("Content-Disposition", "attachment; filename=\"profile\"".into()));
            r
        }
        Ok(Err(e)) => Reply::text(500, format!("Could not enable CPU profiling: {e}\n")),
        Err(e) => Reply::text(500, format!("Could not enable CPU profiling: {e}\n")),
    }
}

fn take(duration: Duration) -> Result<Vec<u8>, pprof::Error> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()?;
    std::thread::sleep(duration);
    let profile = guard.report().build()?.pprof()?;
    Ok(profile.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_profiles_answer_as_go() {
        let r = named("goroutine");
        assert_eq!((r.code, String::from_utf8_lossy(&r.body).as_ref()), (404, "Unknown profile\n"));
        assert!(r.headers.iter().any(|(k, v)| *k == "X-Go-Pprof" && v == "1"));
        let heap = named("heap");
        assert_eq!(heap.code, 404);
        assert!(String::from_utf8_lossy(&heap.body).starts_with("Unknown profile\nfrontdoor: no heap profile"));
    }
}
