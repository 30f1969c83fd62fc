//! What the memory budget counts: the process's resident memory, a model's expected size
//! before it loads, and handing freed memory back to the system after an unload.

use crate::worker::WorkerState;
use std::path::Path;

/// The process's resident memory in bytes (Linux `VmRSS`); 0 where it cannot be read.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// How much memory loading `model` will take: what its last load took, or else the size of its
/// files on disk (0 for a hub reference not yet known).
pub fn expected_size(model: &WorkerState) -> u64 {
    match model.last_size() {
        0 => size_on_disk(Path::new(&model.config.model)),
        known => known,
    }
}

fn size_on_disk(path: &Path) -> u64 {
    let Ok(metadata) = std::fs::metadata(path) else {
        return 0;
    };
    if metadata.is_file() {
        return metadata.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| size_on_disk(&entry.path()))
            .sum()
    })
}

/// Allocations from this size up get pages of their own, returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const OWN_PAGES_FROM: libc::c_int = 1 << 20;

/// Makes glibc give large allocations (weights, caches, activations) pages of their own, so
/// that an unloaded worker's memory goes back to the system. By default glibc raises that
/// threshold as large blocks are freed and then keeps them in per-thread pools: measured on
/// SmolLM2, each load and unload left 40-50 MiB more resident; with a fixed 1 MiB threshold the
/// process returns to the same size every time. Call before any thread starts.
pub fn prefer_returning_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; it is called on the main thread
    // before the runtime, the plugins' threads or any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_PAGES_FROM);
    }
}

/// Asks the allocator to return the memory an unloaded worker freed to the system. glibc keeps
/// freed heap memory for reuse otherwise, so the process would not shrink.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its own locks; it
    // takes no pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
