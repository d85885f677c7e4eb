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
    let workers = cores().min(n).min(max);
    if workers <= 1 {
        return (0..n).map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return done;
            }
            done.push((i, f(i)));
        }
    };
    let mut all: Vec<(usize, T)> = std::thread::scope(|s| {
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
        let mut all = work();
        for h in helpers {
            // A panic in a helper is a panic here, as it would be without threads.
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, t)| t).collect()
}
