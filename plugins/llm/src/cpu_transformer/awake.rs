//! Keeping a pass's helper threads awake: a forward pass runs some 150 parallel products and
//! attention steps per token, and a rayon worker that finds no work soon sleeps, to be woken
//! by a system call when the next product starts. Workers that spin for the whole pass instead
//! pick up each product's work as it appears, as llama.cpp's thread pool does.

use std::sync::atomic::{AtomicBool, Ordering};

/// Rows of a pass up to which keeping the helpers awake pays: a decoding step of a few
/// sequences. In longer passes (prompts) the products are long enough that waking costs little,
/// and spinning helpers measured 12 % slower on a 780-token prompt.
pub const FEW_ROWS: usize = 16;

/// Spin-loop hints between two looks for work: about a microsecond.
const PAUSES: usize = 32;

/// Runs `pass` on the current rayon worker while every other worker of its pool takes work as
/// soon as there is some instead of sleeping; they go back to rayon's usual idling when `pass`
/// returns or panics. Outside a pool, or with one thread, it just runs `pass`.
pub fn with_helpers_awake<T: Send>(pass: impl FnOnce() -> T + Send) -> T {
    let Some(here) = rayon::current_thread_index() else {
        return pass();
    };
    let done = AtomicBool::new(false);
    rayon::scope(|scope| {
        for _ in 1..rayon::current_num_threads() {
            scope.spawn(|_| {
                // Work pushed for the pass may come back to its own thread, which must not
                // spin: the pass could not go on, so it would never end.
                if rayon::current_thread_index() == Some(here) {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        // Looking for work touches the other workers' queues: look again
                        // only after a pause, so as not to slow them down, and let any other
                        // thread waiting for this core (another model's, say) run first.
                        for _ in 0..PAUSES {
                            std::hint::spin_loop();
                        }
                        std::thread::yield_now();
                    }
                }
            });
        }
        let _finished = Finished(&done);
        pass()
    })
}

/// Tells the spinning helpers that the pass is over, even when it unwinds.
struct Finished<'a>(&'a AtomicBool);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// The helpers run the pass's parallel work, and return when it is done.
    #[test]
    fn helpers_take_the_pass_s_work_and_stop_with_it() {
        for threads in [1, 2, 3] {
            let sum = pool(threads).install(|| {
                with_helpers_awake(|| {
                    (0..50)
                        .map(|_| (0..10_000u64).into_par_iter().sum::<u64>())
                        .sum::<u64>()
                })
            });
            assert_eq!(sum, 50 * 49_995_000, "{threads} threads");
        }
    }

    /// A pass that panics still releases the helpers, so the panic reaches the caller instead
    /// of the pool hanging.
    #[test]
    fn a_panicking_pass_releases_the_helpers() {
        let pool = pool(2);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| with_helpers_awake(|| panic!("the pass failed")))
        }));
        assert!(outcome.is_err());
        assert_eq!(pool.install(|| with_helpers_awake(|| 7)), 7);
    }

    /// Outside a pool there are no helpers to keep awake.
    #[test]
    fn outside_a_pool_the_pass_just_runs() {
        assert_eq!(with_helpers_awake(|| 5), 5);
    }
}
