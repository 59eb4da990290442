//! Process-wide allocator tuning, for the `jit` and `jit-bench` binaries only.
//!
//! A library must not change how its host process allocates, so the crates
//! that sync (jit-sync, jit-corps, ...) leave this alone; the binaries that
//! run large syncs opt in first thing in `main`. A host that embeds the
//! crates and wants the same peak memory calls [`limit_malloc_arenas`] (or
//! sets `MALLOC_ARENA_MAX=2` in its environment) itself.
//!
//! ```
//! // First thing in main, before any other thread exists.
//! jit_alloc::limit_malloc_arenas();
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
