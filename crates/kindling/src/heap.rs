//! How the server's heap is set up (glibc's allocator), before any thread exists.
//!
//! glibc gives each thread that allocates under contention an arena of its own (up to
//! eight per CPU), and lets blocks of up to 32 MB come from the heap once one that size
//! has been freed. Both suit programs that allocate a lot from many threads; Kindling
//! allocates little per request but keeps a long-lived boot timeline, filled by one
//! thread from events that the runtime's threads made. Per-thread arenas then hold the
//! freed events' memory scattered between live blocks, and a batch of queued events,
//! once freed from the heap, leaves a hole that the timeline's small blocks pin. Measured
//! at 10,000 groups and 10,000 machines under load (bench/memory): the default settings
//! held ~3 MB more resident memory than one arena with large blocks kept out of the heap,
//! at the same `/ipxe` throughput.
//!
//! An operator's own `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` (glibc's tunables by
//! environment) wins: each setting is made only when its variable is not set.

/// Arenas: one. The runtime's threads allocate small blocks from their thread caches
/// without taking the arena's lock.
const ARENA_MAX: i32 = 1;
/// Blocks of 64 KiB and more are mapped on their own and given back when freed (glibc's
/// default starts at 128 KiB and rises to the largest block freed, up to 32 MiB).
const MMAP_THRESHOLD: i32 = 64 * 1024;

/// Sets the allocator up for the server. Call first thing in `serve`, before threads.
pub fn tune_for_server() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        if unset("MALLOC_ARENA_MAX") {
            // SAFETY: mallopt takes two integers and changes only glibc's own settings;
            // called before the runtime starts any thread.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
            }
        }
        if unset("MALLOC_MMAP_THRESHOLD_") {
            // SAFETY: as above.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}
