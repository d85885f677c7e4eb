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
    // SAFETY: `helpers` is joined below, or dropped (and so joined) if `work` panics.
    let helpers = unsafe { helpers::start(workers - 1, &work) };
    work();
    helpers.join();
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .expect("every index was worked on")
        })
        .collect()
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

/// Helper threads that may borrow from the caller's frame: joined before `join` or the
/// guard's drop returns, so no borrow outlives its data. The standard library's scoped
/// threads would do, but give no handle to place a thread with (`placement`).
mod helpers {
    use std::thread::JoinHandle;

    pub(super) struct Helpers<'a> {
        handles: Vec<JoinHandle<()>>,
        _borrow: std::marker::PhantomData<&'a ()>,
    }

    /// `count` threads running `work`, each placed first on a processor other than
    /// this thread's. A thread the system refuses leaves its share to the others.
    ///
    /// # Safety
    /// The guard returned must be joined or dropped, never leaked or forgotten: the
    /// threads borrow `work` for as long as they run.
    pub(super) unsafe fn start<'a>(count: usize, work: &'a (dyn Fn() + Sync)) -> Helpers<'a> {
        let place = super::placement::Elsewhere::find();
        let handles = (0..count)
            .filter_map(|_| {
                let ticket = place.as_ref().map(|p| p.ticket());
                let child = ticket.clone();
                let run = move || {
                    if let Some(t) = &child {
                        t.started();
                    }
                    work()
                };
                // The main thread's stack size: work may walk user input as deep as
                // it does there.
                let builder = std::thread::Builder::new().stack_size(8 << 20);
                // SAFETY: `run` borrows only what lives for 'a, and every handle is
                // joined before the `Helpers<'a>` that holds it is gone (`join` or
                // `Drop`), which the caller does not leak (this function's contract).
                let h = unsafe { builder.spawn_unchecked(run) }.ok()?;
                if let (Some(p), Some(t)) = (&place, &ticket) {
                    p.pin(&h, t);
                }
                Some(h)
            })
            .collect();
        Helpers {
            handles,
            _borrow: std::marker::PhantomData,
        }
    }

    impl Helpers<'_> {
        /// Waits for every helper; a panic in one is a panic here, as it would be
        /// without threads.
        pub(super) fn join(mut self) {
            let mut panic = None;
            for h in self.handles.drain(..) {
                if let Err(p) = h.join() {
                    panic.get_or_insert(p);
                }
            }
            if let Some(p) = panic {
                std::panic::resume_unwind(p);
            }
        }
    }

    impl Drop for Helpers<'_> {
        /// Reached with handles left only while this thread unwinds: the helpers
        /// still borrow its frame, so they are waited for.
        fn drop(&mut self) {
            for h in self.handles.drain(..) {
                let _ = h.join();
            }
        }
    }
}

/// Where a new helper thread starts. On Linux a thread created while another processor
/// is idle can be queued behind its creator on the creator's busy processor, and runs
/// only when the creator's time slice ends (about 3 ms on the machine measured in
/// docs/benchmarks.md, longer than most of the work it was made for). So a helper is
/// first allowed only the processors other than its creator's current one, and gives
/// that restriction back as its first step: only where it starts changes.
#[cfg(target_os = "linux")]
mod placement {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    const SET: usize = std::mem::size_of::<libc::cpu_set_t>();
    // A ticket's states: the helper's first step and its creator's pinning race; the
    // first to move the ticket off FREE decides.
    const FREE: u8 = 0;
    const PINNING: u8 = 1;
    const PINNED: u8 = 2;
    const STARTED: u8 = 3;

    pub(super) struct Elsewhere {
        allowed: libc::cpu_set_t,
        others: libc::cpu_set_t,
    }

    #[derive(Clone)]
    pub(super) struct Ticket(Arc<(AtomicU8, libc::cpu_set_t)>);

    impl Elsewhere {
        /// The processors this process may use and those other than this thread's
        /// current one; `None` when there are no others or the system will not say.
        pub(super) fn find() -> Option<Elsewhere> {
            // SAFETY: a zeroed `cpu_set_t` is an empty set; both calls write at most
            // `SET` bytes into it.
            unsafe {
                let mut allowed: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(0, SET, &mut allowed) != 0 {
                    return None;
                }
                let cpu = usize::try_from(libc::sched_getcpu()).ok()?;
                if cpu >= 8 * SET {
                    return None;
                }
                let mut others = allowed;
                libc::CPU_CLR(cpu, &mut others);
                (libc::CPU_COUNT(&others) > 0).then_some(Elsewhere { allowed, others })
            }
        }

        pub(super) fn ticket(&self) -> Ticket {
            Ticket(Arc::new((AtomicU8::new(FREE), self.allowed)))
        }

        /// Moves the new thread `h` to the other processors, unless it already runs.
        pub(super) fn pin(&self, h: &JoinHandle<()>, t: &Ticket) {
            use std::os::unix::thread::JoinHandleExt;
            let state = &t.0 .0;
            if state
                .compare_exchange(FREE, PINNING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // SAFETY: `h` is a live thread (not joined); the set is `SET` bytes.
                // A refusal leaves the thread where the system put it.
                unsafe { libc::pthread_setaffinity_np(h.as_pthread_t(), SET, &self.others) };
                state.store(PINNED, Ordering::Release);
            }
        }
    }

    impl Ticket {
        /// The helper's first step: every allowed processor again, once its creator
        /// has pinned it (or never, if it got here first).
        pub(super) fn started(&self) {
            let (state, allowed) = &*self.0;
            if state
                .compare_exchange(FREE, STARTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
            // The creator is between its two steps, a system call apart.
            while state.load(Ordering::Acquire) != PINNED {
                std::thread::yield_now();
            }
            // SAFETY: this thread (0) and a set of `SET` bytes.
            unsafe { libc::sched_setaffinity(0, SET, allowed) };
        }
    }
}

/// Elsewhere the system places new threads as it sees fit.
#[cfg(not(target_os = "linux"))]
mod placement {
    use std::thread::JoinHandle;

    pub(super) struct Elsewhere;
    #[derive(Clone)]
    pub(super) struct Ticket;

    impl Elsewhere {
        pub(super) fn find() -> Option<Elsewhere> {
            None
        }
        pub(super) fn ticket(&self) -> Ticket {
            Ticket
        }
        pub(super) fn pin(&self, _: &JoinHandle<()>, _: &Ticket) {}
    }

    impl Ticket {
        pub(super) fn started(&self) {}
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
    fn both_gives_each_result_its_place() {
        let (a, b) = both(|| "a".repeat(3), || vec![1, 2]);
        assert_eq!((a.as_str(), b), ("aaa", vec![1, 2]));
    }

    /// A helper is placed away from its creator only until it starts: the work itself
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
        let seen = indexed(64, 4, |_| {
            std::thread::sleep(std::time::Duration::from_micros(200));
            (std::thread::current().id(), mask())
        });
        assert!(seen.iter().all(|(_, m)| *m == here));
        // With more than one processor the helpers took part (a sleeping main thread
        // leaves them indices), so their masks were the ones checked.
        let threads: std::collections::BTreeSet<_> =
            seen.iter().map(|(t, _)| format!("{t:?}")).collect();
        if cores() > 1 {
            assert!(threads.len() > 1, "only one thread worked");
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
