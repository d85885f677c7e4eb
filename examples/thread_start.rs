//! How soon a second piece of work starts while its creator is busy and the other
//! processors have been idle: a thread from the standard library against
//! `nb2pipe::parallel`, whose parked helpers are woken away from the caller's processor.
//! `cargo run --release --example thread_start` (docs/benchmarks.md, seventh and ninth
//! rounds).

use std::time::{Duration, Instant};

const BUSY: Duration = Duration::from_millis(5);

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn summary(name: &str, mut waits: Vec<Duration>) {
    waits.sort();
    let late = waits
        .iter()
        .filter(|w| **w > Duration::from_millis(1))
        .count();
    println!(
        "{name}: median {:.3} ms, max {:.3} ms, later than 1 ms in {late} of {}",
        waits[waits.len() / 2].as_secs_f64() * 1e3,
        waits[waits.len() - 1].as_secs_f64() * 1e3,
        waits.len()
    );
}

fn main() {
    let trials = 100;
    let (mut plain, mut placed) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        // Idle long enough for the other processors to go to sleep.
        std::thread::sleep(Duration::from_millis(5));
        let t0 = Instant::now();
        plain.push(std::thread::scope(|s| {
            let h = s.spawn(|| t0.elapsed());
            spin(BUSY);
            h.join().expect("no panic")
        }));
        std::thread::sleep(Duration::from_millis(5));
        let t0 = Instant::now();
        // The creator takes index 0 and stays busy; index 1's start is the helper's,
        // or the creator's own after index 0 when the helper never got to run.
        let starts = nb2pipe::parallel::indexed(2, 2, |i| {
            let at = t0.elapsed();
            if i == 0 {
                spin(BUSY);
            }
            at
        });
        placed.push(starts[1]);
    }
    println!(
        "{} processors; the creator stays busy {} ms",
        nb2pipe::parallel::cores(),
        BUSY.as_millis()
    );
    summary("std::thread::scope spawn", plain);
    summary("nb2pipe::parallel::indexed", placed);
}
