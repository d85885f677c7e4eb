//! Work split over a few threads, with results in a fixed order (outputs must not
//! depend on timing).

/// The threads this process may run at once, found once: the standard library reads
/// the cgroup's CPU quota from files on every call.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |w| w.get()))
}

/// `f(0..n)` on up to `max` threads (no more than the machine has), the results in
/// index order.
pub fn indexed<T: Send>(n: usize, max: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    // `cores()` reads the cgroup's quota once per process: not for work that runs on
    // one thread anyway.
    let workers = if max <= 1 || n <= 1 {
        1
    } else {
        cores().min(n).min(max)
    };
    if workers <= 1 {
        return (0..n).map(f).collect();
    }
    // Each result goes straight into its slot: no per-thread lists that grow, no sort
    // (results can be large: a cell's facts), one move into the returned vector.
    // A slot is a mutex only to be shared (`T` need not be `Sync`); none is contended.
    let slots: Vec<std::sync::Mutex<Option<T>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if i >= n {
            return;
        }
        let r = f(i);
        *slots[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
    };
    std::thread::scope(|s| {
        // The main thread's stack size: work may walk user input as deep as it does there.
        let helpers: Vec<_> = (1..workers)
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(8 << 20)
                    .spawn_scoped(s, work)
            })
            // A thread the system refuses leaves its share to the others.
            .filter_map(Result::ok)
            .collect();
        work();
        for h in helpers {
            // A panic in a helper is a panic here, as it would be without threads.
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .expect("every index was worked on")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_index_order_whatever_finishes_first() {
        // Early indices take longest, so later ones finish first on other threads.
        let out = indexed(64, 4, |i| {
            std::thread::sleep(std::time::Duration::from_micros(((64 - i) * 20) as u64));
            format!("r{i}")
        });
        let want: Vec<String> = (0..64).map(|i| format!("r{i}")).collect();
        assert_eq!(out, want);
        assert!(indexed(0, 4, |i| i).is_empty());
        assert_eq!(indexed(3, 1, |i| i * 2), vec![0, 2, 4]);
    }

    #[test]
    fn a_panic_in_any_worker_is_a_panic_of_the_caller() {
        // Whichever thread takes index 11, the caller sees that panic itself.
        let r = std::panic::catch_unwind(|| {
            indexed(16, 4, |i| {
                if i == 11 {
                    panic!("task 11");
                }
                i
            })
        });
        let payload = r.expect_err("the panic reaches the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task 11"));
    }
}
