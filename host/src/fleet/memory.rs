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
    match model.memory_bytes() {
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
