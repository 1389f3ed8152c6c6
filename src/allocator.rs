//! The tuning of mimalloc, the binary's global allocator (`main.rs`).
//!
//! mimalloc returns freed memory to the OS a second after it is freed (its `purge_delay`). A
//! large request (a 3 MiB body of 265k keys) builds and frees ~50 MB of scratch (the decoded
//! pairs, the managed fields, the serialized object), and the next one within a few seconds
//! took all of it from the OS again: each fresh page is a fault and a zeroing, ~20k of them
//! per request, a tenth of its CPU (bench/body_cpu.py). Kept ten seconds, the scratch of one
//! request serves the next; mimalloc gives it back on a later allocation or free past the delay
//! (it purges only then, whatever the delay).

/// How long freed memory stays with the process, unless `MIMALLOC_PURGE_DELAY` says otherwise.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (libmimalloc-sys names no constant
/// for it; the tests check it is the option that defaults to one second).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the purge delay, unless the environment set it (mimalloc reads its `MIMALLOC_*`
/// variables itself, before `main`, in any case and under legacy names too: a default set
/// here gives way to any of them).
pub fn tune() {
    // SAFETY: sets the default of one of mimalloc's options; any value is valid for this one
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_mimallocs_option_and_gives_way_to_the_environment() {
        // SAFETY: reads an option value
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let before = get();
        tune();
        let from_env = std::env::vars_os().any(|(k, _)| {
            let k = k.to_string_lossy().to_ascii_lowercase();
            k == "mimalloc_purge_delay" || k == "mimalloc_reset_delay"
        });
        if from_env {
            assert_eq!(get(), before, "the environment's value stays");
        } else {
            assert_eq!(before, 1000, "not mimalloc v3's purge_delay (1 s by default)");
            assert_eq!(get(), PURGE_DELAY_MS as std::ffi::c_long);
        }
    }
}
