//! Crashing the whole process on purpose, in ways no panic handler catches, so that tests can
//! check what the host does when a plugin dies (`--isolate`).

use crate::params::Crash;

/// Ends the process as `how` says.
pub fn crash(how: Crash) -> ! {
    match how {
        Crash::Segfault => {
            // SAFETY: none; this is the point. Address 8 lies in the never-mapped first page,
            // so the write faults and the kernel ends the process with SIGSEGV. Volatile keeps
            // the compiler from removing or reordering it.
            unsafe { std::ptr::without_provenance_mut::<u64>(8).write_volatile(1) };
            std::process::abort()
        }
        Crash::Abort => std::process::abort(),
        Crash::StackOverflow => {
            let depth = recurse(0);
            panic!("the stack held {depth} frames")
        }
    }
}

/// Recurses without end: each frame keeps a buffer alive across the call, so the compiler
/// cannot turn the recursion into a loop.
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 512]);
    match frame[0] {
        u64::MAX => 0,
        _ => recurse(frame[1] + 1) + frame[2],
    }
}
