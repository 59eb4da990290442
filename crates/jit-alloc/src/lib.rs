//! Process-wide allocator tuning, for the `jit` and `jit-bench` binaries only.
//!
//! A library must not change how its host process allocates, so the crates
//! that sync (jit-sync, jit-corps, ...) leave this alone; the binaries that
//! run large syncs opt in first thing in `main`.
//!
//! **What an embedding host must set** to get the peak memory BENCHMARKS.md
//! quotes for large syncs (glibc on Linux; other allocators and platforms
//! are unaffected): at most two malloc arenas, either by starting the
//! process with `MALLOC_ARENA_MAX=2` in its environment or by calling
//! `mallopt(M_ARENA_MAX, 2)` — what [`limit_malloc_arenas`] does — before
//! its first threads start (a host outside this workspace calls `mallopt`
//! itself; this crate is only a dependency of the two binaries). Without
//! it, glibc gives each tokio worker thread its own arena, and memory a
//! sync freed in one arena stays resident while the next phase allocates in
//! another; `jit-bench --default-malloc-arenas sync ...` measures that case.
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
