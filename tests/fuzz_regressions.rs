//! Every input a fuzz target once failed on (fuzz/regressions/<target>/), replayed through
//! the same harness as the fuzzer: no panic, no broken invariant, and for inputs the
//! reader or the planner refuses, a diagnostic.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

/// Counts the bytes each thread has allocated and not freed, so a replay can tell that an
/// input leaves nothing behind (a fuzzer runs millions of inputs in one process).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes an input may leave allocated on a second run (caches filled on the first).
const LEAK_ALLOWANCE: isize = 64 * 1024;

fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    v.sort();
    v
}

fn replay(target: &str) {
    // As in the fuzzer: the parser panics nb2pipe catches print nothing (a backtrace's
    // symbol cache would count as a leak).
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(harness::ignore_caught_parser_panics);
    for p in inputs(target) {
        let data = std::fs::read(&p).unwrap();
        let mut grown = 0;
        for _ in 0..2 {
            let before = LIVE.with(Cell::get);
            let outcome = std::panic::catch_unwind(|| harness::run(target, &data));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("{}: invariant broken: {e}", p.display()),
                Err(_) => panic!("{}: panicked", p.display()),
            }
            grown = LIVE.with(Cell::get) - before;
        }
        assert!(
            grown < LEAK_ALLOWANCE,
            "{}: a run left {grown} bytes allocated",
            p.display()
        );
    }
}

#[test]
fn notebook_reader() {
    replay("notebook");
}

#[test]
fn tags_and_settings() {
    replay("settings");
}

#[test]
fn python_analysis() {
    replay("analysis");
}

#[test]
fn convert() {
    replay("convert");
}

#[test]
fn every_target_has_a_regression_folder() {
    for t in harness::TARGETS {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/regressions")
                .join(t)
                .is_dir(),
            "fuzz/regressions/{t} is missing"
        );
    }
}

/// The seeds hold the invariants too: every fixture notebook, read and converted, either
/// stops at a diagnostic or gives every target's files, the same twice.
#[test]
fn fixture_notebooks_hold_the_invariants() {
    let mut todo = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")];
    let mut n = 0;
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "ipynb") {
                let data = std::fs::read(&p).unwrap();
                for target in ["notebook", "convert"] {
                    if let Err(e) = harness::run(target, &data) {
                        panic!("{target} {}: {e}", p.display());
                    }
                }
                n += 1;
            }
        }
    }
    assert!(n >= 50, "only {n} fixture notebooks");
}

/// The cells that crashed ruff's parser (an `unreachable!` on IPython escapes in
/// expression position) are reported as cells nb2pipe cannot read.
#[test]
fn parser_crashes_are_syntax_problems() {
    for p in inputs("analysis") {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        let facts = nb2pipe::analysis::analyse_cell(&text);
        assert!(facts.syntax_error.is_some(), "{}", p.display());
    }
}

/// pep508_rs panics on a distribution name ending in `-` (found by the convert fuzzer in
/// `%pip install numpy-=1.26.4`): nb2pipe refuses such a name as a requirement.
#[test]
fn a_name_ending_in_a_dash_is_not_a_requirement() {
    for bad in ["numpy-=1.26.4", "numpy_>=1", "numpy.==2"] {
        assert!(nb2pipe::deps::parse_requirement(bad).is_none(), "{bad}");
    }
    assert!(nb2pipe::deps::parse_requirement("numpy==1.26.4").is_some());
}

/// pep508_rs also panics on an extra ending in `.` (found by the convert fuzzer in
/// `!pip install scikit-learn[alldeps.]==1.5`): any panic of its parser is caught, and
/// the line is not a requirement.
#[test]
fn an_extra_the_pep508_parser_panics_on_is_not_a_requirement() {
    for bad in ["scikit-learn[alldeps.]==1.5", "x[a-]", "x[a_]>=1"] {
        assert!(nb2pipe::deps::parse_requirement(bad).is_none(), "{bad}");
    }
    let ok = nb2pipe::deps::parse_requirement("scikit-learn[alldeps]==1.5").unwrap();
    assert_eq!(ok.line(), "scikit-learn[alldeps]==1.5");
}
