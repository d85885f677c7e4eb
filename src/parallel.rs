//! Work split over a few threads, with results in a fixed order (outputs must not
//! depend on timing).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

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
    let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    // This thread takes indices too, so a helper that starts late costs nothing.
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return;
        }
        let r = f(i);
        *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
    };
    pool::run(workers - 1, &work);
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .expect("every index was worked on")
        })
        .collect()
}

/// `f` on every item of `items`, on up to `max` threads, each item changed by one
/// thread only.
pub fn each_mut<T: Send>(items: &mut [T], max: usize, f: impl Fn(&mut T) + Sync) {
    if max <= 1 || items.len() <= 1 {
        items.iter_mut().for_each(f);
        return;
    }
    // Each item behind its own (uncontended) lock: the threads share the list, not
    // the items.
    let items: Vec<Mutex<&mut T>> = items.iter_mut().map(Mutex::new).collect();
    indexed(items.len(), max, |i| {
        f(&mut items[i].lock().unwrap_or_else(PoisonError::into_inner))
    });
}

/// `a()` and `b()` at the same time, on this thread and a helper: each thread takes the
/// next one not yet started, `a` first, so a helper that starts late leaves both here.
pub fn both<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    enum Either<A, B> {
        A(A),
        B(B),
    }
    let a = Mutex::new(Some(a));
    let b = Mutex::new(Some(b));
    fn take<F>(m: &Mutex<Option<F>>) -> F {
        let f = m.lock().unwrap_or_else(PoisonError::into_inner).take();
        f.expect("each index is taken once")
    }
    let mut out = indexed(2, 2, |i| {
        if i == 0 {
            Either::A(take(&a)())
        } else {
            Either::B(take(&b)())
        }
    })
    .into_iter();
    match (out.next(), out.next()) {
        (Some(Either::A(a)), Some(Either::B(b))) => (a, b),
        _ => unreachable!("index 0 is `a`, index 1 is `b`"),
    }
}

/// A few helper threads started once per process and parked between jobs. Starting a
/// thread costs its creator tens of microseconds and the thread a wait before it first
/// runs (docs/benchmarks.md); a convert has a dozen short parallel phases, so each
/// would lose most of its helper's share to that. A job borrows from its caller's
/// frame: the caller takes part in its own job and returns only once every helper
/// that joined it has left.
mod pool {
    use std::any::Any;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

    /// The most helpers a job may have (with its caller, four threads).
    const MAX_HELPERS: usize = 3;

    /// A job's work with its lifetime erased: valid while its entry is listed, and the
    /// caller removes the entry only when no helper is inside (`run`).
    #[derive(Clone, Copy)]
    struct Work(*const (dyn Fn() + Sync + 'static));
    // SAFETY: the work is `Sync` (shared by reference between threads), and a helper
    // calls it only while its caller waits in `run`.
    unsafe impl Send for Work {}

    struct Entry {
        id: u64,
        work: Work,
        /// Helpers that may still join.
        seats: usize,
        /// Helpers running the work now.
        inside: usize,
        panic: Option<Box<dyn Any + Send>>,
    }

    #[derive(Default)]
    struct State {
        /// Jobs in the order they were posted; a job posted from inside another's work
        /// (nested) comes later and is joined first.
        jobs: Vec<Entry>,
        next_id: u64,
        /// Which helpers are inside a job now, by number.
        busy: Vec<bool>,
    }

    struct Pool {
        state: Mutex<State>,
        /// Helpers wait here for a job.
        posted: Condvar,
        /// Callers wait here for their helpers to leave.
        left: Condvar,
        /// The helpers that were started.
        helpers: AtomicUsize,
        /// Set once the helpers are started, before any job is posted.
        placement: OnceLock<Option<super::placement::Placement>>,
    }

    fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
        // No code that holds the lock can panic (the work runs outside it).
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pool() -> &'static Pool {
        static POOL: OnceLock<&'static Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let want = super::cores().saturating_sub(1).min(MAX_HELPERS);
            let pool: &'static Pool = Box::leak(Box::new(Pool {
                state: Mutex::new(State {
                    busy: vec![false; want],
                    ..State::default()
                }),
                posted: Condvar::new(),
                left: Condvar::new(),
                helpers: AtomicUsize::new(0),
                placement: OnceLock::new(),
            }));
            let mut threads = Vec::new();
            for n in 0..want {
                // The main thread's stack size: work may walk user input as deep as it
                // does there.
                let spawned = std::thread::Builder::new()
                    .name("nb2pipe-helper".into())
                    .stack_size(8 << 20)
                    .spawn(move || helper(pool, n));
                // A thread the system refuses leaves its share to the others.
                let Ok(h) = spawned else { break };
                threads.push(h);
            }
            let started = threads.len();
            let _ = pool
                .placement
                .set(super::placement::Placement::of(&threads));
            // The helpers live as long as the process; their handles are not needed.
            drop(threads);
            pool.helpers.store(started, Ordering::Relaxed);
            pool
        })
    }

    /// A helper's life: join the latest job with a free seat, or wait for one.
    fn helper(pool: &'static Pool, n: usize) {
        let mut state = lock(&pool.state);
        loop {
            let Some(e) = state.jobs.iter_mut().rev().find(|e| e.seats > 0) else {
                state = pool
                    .posted
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            e.seats -= 1;
            e.inside += 1;
            let (id, work) = (e.id, e.work);
            state.busy[n] = true;
            drop(state);
            if let Some(Some(p)) = pool.placement.get() {
                p.everywhere();
            }
            // SAFETY: the entry is listed and this helper is counted inside it, so its
            // caller is still waiting in `run` and the work is alive.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*work.0)() }));
            state = lock(&pool.state);
            let e = state
                .jobs
                .iter_mut()
                .find(|e| e.id == id)
                .expect("a job stays listed while a helper is inside");
            if let Err(p) = result {
                e.panic.get_or_insert(p);
            }
            e.inside -= 1;
            if e.inside == 0 {
                pool.left.notify_all();
            }
            state.busy[n] = false;
        }
    }

    /// Runs `work` on this thread and on up to `helpers` helpers at once, returning when
    /// every one of them has finished it. `work` must itself share out what there is to
    /// do (each call takes what is left), and return at once when nothing is.
    pub(super) fn run(helpers: usize, work: &(dyn Fn() + Sync)) {
        let pool = pool();
        let helpers = helpers.min(pool.helpers.load(Ordering::Relaxed));
        if helpers == 0 {
            return work();
        }
        // SAFETY: only the lifetime is erased; the entry is removed below before this
        // function returns or unwinds, and never while a helper is inside.
        let erased: &'static (dyn Fn() + Sync + 'static) = unsafe { std::mem::transmute(work) };
        let id = {
            let mut state = lock(&pool.state);
            // The helpers not inside a job (parked, or between two) are placed before
            // the job is posted, so each one's `everywhere` comes after; one at work
            // for another job keeps its place.
            if let Some(Some(p)) = pool.placement.get() {
                let free = (0..state.busy.len()).filter(|&n| !state.busy[n]);
                p.away_from_here(free.take(helpers));
            }
            let id = state.next_id;
            state.next_id += 1;
            state.jobs.push(Entry {
                id,
                work: Work(erased),
                seats: helpers,
                inside: 0,
                panic: None,
            });
            id
        };
        pool.posted.notify_all();
        let mine = catch_unwind(AssertUnwindSafe(work));
        let theirs = {
            let mut state = lock(&pool.state);
            let at = |s: &State| s.jobs.iter().position(|e| e.id == id).expect("listed");
            let i = at(&state);
            state.jobs[i].seats = 0;
            while state.jobs[at(&state)].inside > 0 {
                state = pool
                    .left
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let i = at(&state);
            state.jobs.remove(i).panic
        };
        // This thread's own panic first, as it would be without helpers.
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }

    /// The threads of the pool (started if they were not).
    #[cfg(test)]
    pub(super) fn helpers() -> usize {
        pool().helpers.load(Ordering::Relaxed)
    }
}

/// Where a helper runs when a job wakes it. On Linux a thread woken (or created) while
/// another processor is idle can be queued behind the thread that woke it, on that
/// thread's busy processor, and runs only when its time slice ends (about 3 ms on the
/// machine measured in docs/benchmarks.md, longer than most jobs). So before a job is
/// posted its helpers are allowed only the processors other than the caller's current
/// one, and each gives that restriction back as it joins: only where it wakes changes.
#[cfg(target_os = "linux")]
mod placement {
    use std::os::unix::thread::JoinHandleExt;
    use std::thread::JoinHandle;

    const SET: usize = std::mem::size_of::<libc::cpu_set_t>();

    pub(super) struct Placement {
        allowed: libc::cpu_set_t,
        threads: Vec<libc::pthread_t>,
    }

    impl Placement {
        /// For `threads`, among the processors this process may use; `None` when it
        /// may use only one or the system will not say.
        pub(super) fn of(threads: &[JoinHandle<()>]) -> Option<Placement> {
            // SAFETY: a zeroed `cpu_set_t` is an empty set; the call writes at most
            // `SET` bytes into it.
            unsafe {
                let mut allowed: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(0, SET, &mut allowed) != 0
                    || libc::CPU_COUNT(&allowed) < 2
                {
                    return None;
                }
                Some(Placement {
                    allowed,
                    threads: threads.iter().map(|h| h.as_pthread_t()).collect(),
                })
            }
        }

        /// Allows the threads numbered `which` only the processors other than this
        /// thread's current one. A refusal leaves a thread where it is.
        pub(super) fn away_from_here(&self, which: impl Iterator<Item = usize>) {
            // SAFETY: `sched_getcpu` takes nothing; the sets are `SET` bytes, and the
            // threads live as long as the process (the pool never ends them).
            unsafe {
                let Ok(cpu) = usize::try_from(libc::sched_getcpu()) else {
                    return;
                };
                if cpu >= 8 * SET {
                    return;
                }
                let mut others = self.allowed;
                libc::CPU_CLR(cpu, &mut others);
                if libc::CPU_COUNT(&others) == 0 {
                    return;
                }
                for t in which.filter_map(|n| self.threads.get(n)) {
                    libc::pthread_setaffinity_np(*t, SET, &others);
                }
            }
        }

        /// This thread may run on every allowed processor again.
        pub(super) fn everywhere(&self) {
            // SAFETY: this thread (0) and a set of `SET` bytes.
            unsafe { libc::sched_setaffinity(0, SET, &self.allowed) };
        }
    }
}

/// Elsewhere the system places woken threads as it sees fit.
#[cfg(not(target_os = "linux"))]
mod placement {
    use std::thread::JoinHandle;

    pub(super) struct Placement;

    impl Placement {
        pub(super) fn of(_: &[JoinHandle<()>]) -> Option<Placement> {
            None
        }
        pub(super) fn away_from_here(&self, _: impl Iterator<Item = usize>) {}
        pub(super) fn everywhere(&self) {}
    }
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
    fn each_mut_changes_every_item_once() {
        for max in [1, 4] {
            let mut items: Vec<(usize, u32)> = (0..50).map(|i| (i, 0)).collect();
            each_mut(&mut items, max, |(i, n)| {
                std::thread::sleep(std::time::Duration::from_micros(((50 - *i) * 10) as u64));
                *n += 1 + *i as u32;
            });
            let want: Vec<(usize, u32)> = (0..50).map(|i| (i, 1 + i as u32)).collect();
            assert_eq!(items, want, "max {max}");
        }
    }

    #[test]
    fn both_gives_each_result_its_place() {
        let (a, b) = both(|| "a".repeat(3), || vec![1, 2]);
        assert_eq!((a.as_str(), b), ("aaa", vec![1, 2]));
    }

    /// A helper is placed away from its caller only until it joins: the work itself
    /// runs with every processor the process may use.
    #[cfg(target_os = "linux")]
    #[test]
    fn helpers_do_their_work_with_every_allowed_processor() {
        fn mask() -> Vec<bool> {
            const SET: usize = std::mem::size_of::<libc::cpu_set_t>();
            // SAFETY: a zeroed set, filled with at most `SET` bytes.
            unsafe {
                let mut s: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(libc::sched_getaffinity(0, SET, &mut s), 0);
                (0..8 * SET).map(|c| libc::CPU_ISSET(c, &s)).collect()
            }
        }
        let here = mask();
        let this = std::thread::current().id();
        // Other tests' jobs share the pool and may keep its helpers busy; jobs are
        // run until helpers have taken part in some.
        let mut helped = 0;
        for _ in 0..200 {
            let seen = indexed(64, 4, |_| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                (std::thread::current().id(), mask())
            });
            assert!(seen.iter().all(|(_, m)| *m == here));
            if seen.iter().any(|(t, _)| *t != this) {
                helped += 1;
                if helped == 5 {
                    break;
                }
            }
        }
        // With more than one processor the helpers took part (a sleeping caller
        // leaves them indices), so their masks were among those checked.
        if pool::helpers() > 0 {
            assert_eq!(helped, 5, "helpers took part in too few jobs");
        }
    }

    /// The helper threads that took part in 200 short jobs from this thread. Other
    /// tests' jobs share the pool and may keep its helpers busy for a while.
    fn helpers_seen() -> std::collections::BTreeSet<String> {
        let here = std::thread::current().id();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let threads = indexed(16, 4, |_| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                let t = std::thread::current();
                (t.id(), t.name().map(str::to_owned))
            });
            for (id, name) in threads.into_iter().filter(|(id, _)| *id != here) {
                assert_eq!(name.as_deref(), Some("nb2pipe-helper"));
                seen.insert(format!("{id:?}"));
            }
        }
        seen
    }

    #[test]
    fn the_same_helpers_serve_every_job() {
        if pool::helpers() == 0 {
            return;
        }
        // A helper thread made per job would show as a new thread every time.
        let seen = helpers_seen();
        assert!(!seen.is_empty(), "no helper took part in 200 jobs");
        assert!(
            seen.len() <= pool::helpers(),
            "{} threads for {} helpers",
            seen.len(),
            pool::helpers()
        );
    }

    #[test]
    fn jobs_nest_and_run_side_by_side_without_waiting_on_each_other() {
        // Callers on several threads at once, each job's work posting jobs of its own.
        let outer: Vec<Vec<usize>> = std::thread::scope(|s| {
            let callers: Vec<_> = (0..3)
                .map(|c| {
                    s.spawn(move || {
                        indexed(8, 4, |i| {
                            indexed(5, 4, |j| c * 100 + i * 10 + j).iter().sum()
                        })
                    })
                })
                .collect();
            callers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (c, sums) in outer.iter().enumerate() {
            let want: Vec<usize> = (0..8)
                .map(|i| (0..5).map(|j| c * 100 + i * 10 + j).sum())
                .collect();
            assert_eq!(sums, &want);
        }
    }

    #[test]
    fn a_helper_that_panicked_serves_the_next_job() {
        for _ in 0..4 {
            let r = std::panic::catch_unwind(|| {
                indexed(8, 4, |i| {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                    assert!(i % 2 == 0, "odd {i}");
                })
            });
            assert!(r.is_err());
        }
        assert_eq!(indexed(40, 4, |i| i + 1), (1..=40).collect::<Vec<_>>());
        // The helpers are still there, and still take jobs.
        if pool::helpers() > 0 {
            assert!(
                !helpers_seen().is_empty(),
                "no helper took part after the panics"
            );
        }
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
