//! One parallel map for sweeps over thousands of files or jobs.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items a thread takes from the shared counter at a time.
const BATCH: usize = 8;

/// Maps `f` over `items` on all cores, results in input order. Inputs
/// shorter than `2 * min_per_thread` stay on the calling thread.
///
/// The threads take batches from a shared counter rather than a fixed
/// share each: on a machine whose other work (or hypervisor) takes a core
/// for a few milliseconds, the other threads take over its share instead of
/// waiting for it at the end. The calling thread works too.
///
/// # Panics
/// The one panic policy: a panic in `f` is a bug, and it is resumed on the
/// caller once every thread has stopped (as if `f` had run on the calling
/// thread). No item is dropped or answered with an invented value: either
/// every item has its result, or the call panics.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    min_per_thread: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    par_map_with(items, min_per_thread, || (), |(), item| f(item))
}

/// [`par_map`] with per-thread scratch state made by `init` (a read
/// buffer reused across files, say).
pub fn par_map_with<T: Sync, S, R: Send>(
    items: &[T],
    min_per_thread: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R> {
    let min_per_thread = min_per_thread.max(1);
    // Asked only when it matters: `available_parallelism` reads the cgroup
    // files under /proc, a tenth of an empty root's start-up.
    let threads = if items.len() < 2 * min_per_thread {
        1
    } else {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.min(items.len() / min_per_thread).max(1)
    };
    if threads == 1 {
        let mut state = init();
        return items.iter().map(|i| f(&mut state, i)).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut state = init();
        let mut batches: Vec<(usize, Vec<R>)> = Vec::new();
        loop {
            let start = next.fetch_add(BATCH, Ordering::Relaxed);
            let Some(batch) = items.get(start..(start + BATCH).min(items.len())) else {
                break;
            };
            if batch.is_empty() {
                break;
            }
            batches.push((start, batch.iter().map(|i| f(&mut state, i)).collect()));
        }
        batches
    };
    let work = &work;
    let mut batches = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let mut all = Vec::new();
        let mut panic = None;
        for joined in std::iter::once(mine).chain(handles.into_iter().map(|h| h.join())) {
            match joined {
                Ok(b) => all.extend(b),
                Err(p) => panic = panic.or(Some(p)),
            }
        }
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        all
    });
    batches.sort_unstable_by_key(|(start, _)| *start);
    let mut out = Vec::with_capacity(items.len());
    for (_, b) in batches {
        out.extend(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_input_order_small_and_large() {
        for n in [0, 1, 7, 100, 10_000] {
            let items: Vec<u64> = (0..n).collect();
            let out = par_map(&items, 16, |x| x * 2);
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>(), "{n}");
        }
    }

    #[test]
    fn state_is_per_thread() {
        let items: Vec<u32> = (0..5_000).collect();
        let out = par_map_with(&items, 8, Vec::<u32>::new, |seen, x| {
            seen.push(*x);
            // A state shared between threads would see items of others
            // interleaved out of order; per thread, they only grow.
            seen.windows(2).all(|w| w[0] < w[1])
        });
        assert!(out.into_iter().all(|ok| ok));
    }

    #[test]
    fn a_panic_in_a_worker_is_resumed_on_the_caller() {
        let items: Vec<u32> = (0..4_000).collect();
        let caught = std::panic::catch_unwind(|| {
            par_map(&items, 8, |x| {
                assert!(*x != 3_999, "bug on the last item");
                *x
            })
        });
        let p = caught.expect_err("the panic must reach the caller");
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains("bug on the last item"), "{msg}");
        // On the calling thread too (small input).
        let caught = std::panic::catch_unwind(|| par_map(&[1u8], 8, |_| panic!("small")));
        assert!(caught.is_err());
    }
}
