//! The tuning of mimalloc, the binary's global allocator (`main.rs`).
//!
//! mimalloc returns freed memory to the OS a second after it is freed (its `purge_delay`). A
//! large request (a 3 MiB body of 265k keys) builds and frees ~50 MB of scratch (the decoded
//! pairs, the managed fields, the serialized object), and the next one within a few seconds
//! took all of it from the OS again: each fresh page is a fault and a zeroing, ~20k of them
//! per request, a tenth of its CPU (bench/body_cpu.py). Kept ten seconds, the scratch of one
//! request serves the next; an idle process still gives it back.

/// How long freed memory stays with the process, unless `MIMALLOC_PURGE_DELAY` says otherwise.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (libmimalloc-sys names no constant
/// for it; the tests check it is the option that defaults to one second).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the purge delay, unless the environment set it (mimalloc reads its `MIMALLOC_*`
/// variables itself, before `main`).
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's option values; any value is valid for this option
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_mimallocs_option_and_is_set() {
        // SAFETY: reads and sets an option value
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), 1000, "not mimalloc v3's purge_delay (1 s by default)");
        }
        tune();
        let want: std::ffi::c_long =
            std::env::var("MIMALLOC_PURGE_DELAY").ok().and_then(|v| v.parse().ok()).unwrap_or(PURGE_DELAY_MS as _);
        assert_eq!(get(), want);
    }
}
