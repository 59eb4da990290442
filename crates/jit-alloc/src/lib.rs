//! Allocator help for large syncs (glibc on Linux; elsewhere both functions
//! do nothing).
//!
//! [`release_free_memory`] changes no setting: it hands memory the process
//! has already freed back to the system. The sync engine (jit-sync) calls
//! it itself where a full sync has just freed a whole organization (when it
//! starts, before the apply, after it; not for event batches), so an embedding host gets it
//! without doing anything, whatever its arena setting: BENCHMARKS.md's
//! peaks for large syncs hold with glibc's default arenas
//! (`jit-bench --default-malloc-arenas sync ...` measures that case).
//!
//! [`limit_malloc_arenas`] does change how the process allocates, so only
//! the `jit` and `jit-bench` binaries call it, first thing in `main`; a
//! library must not. It caps glibc's malloc arenas at two (what
//! `MALLOC_ARENA_MAX=2` in the environment does), which keeps fewer free
//! lists between syncs; a host that wants the same calls
//! `mallopt(M_ARENA_MAX, 2)` itself before its first threads start. It is
//! not needed for the peak.
//!
//! ```
//! // First thing in main, before any other thread exists.
//! jit_alloc::limit_malloc_arenas();
//! // Between phases of a large job that freed a lot.
//! jit_alloc::release_free_memory();
//! ```

/// Caps glibc's malloc arenas at two for this process.
///
/// glibc gives each thread that allocates its own arena; a sync allocates on
/// every tokio worker, and the arenas' free lists keep tens of MB resident
/// after a large sync. Binaries that run syncs (`jit`, `jit-bench`) call this
/// first thing in `main`, before any other thread exists. A no-op elsewhere.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::raw::c_int;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        const M_ARENA_MAX: c_int = -8;
        // SAFETY: mallopt only changes allocator tuning; it is called before
        // other threads start, and a failure (0) leaves the defaults in place.
        unsafe {
            mallopt(M_ARENA_MAX, 2);
        }
    }
}

/// Returns the memory this process has freed to the system (glibc
/// `malloc_trim(0)`); a no-op on other allocators and platforms.
///
/// glibc keeps freed memory resident in its arenas' free lists, and memory
/// freed in one arena serves only the threads attached to it: after a large
/// sync frees an organization (hundreds of MB for 300,000 members), the
/// process keeps it, and the next phase, running on another thread, may
/// allocate fresh pages beside it. Trimming at those points makes the peak
/// what is live rather than what was ever freed. It changes no allocator
/// setting, so a library may call it. It walks the free lists: a few hundred
/// milliseconds after a 300,000-member org was freed, nothing when little
/// was, so it belongs between phases, not in loops.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::raw::c_int;
        extern "C" {
            fn malloc_trim(pad: usize) -> c_int;
        }
        // SAFETY: malloc_trim only returns free pages to the system, under
        // each arena's own lock; it is safe to call from any thread at any
        // time, and its result (whether anything was released) is not needed.
        unsafe {
            malloc_trim(0);
        }
    }
}
