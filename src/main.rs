//! The `nb2pipe` binary: everything lives in the library; this is the only `process::exit`.

// A convert of a large notebook makes and frees hundreds of thousands of small strings on
// several threads; glibc's malloc spent a quarter of its instructions on them
// (docs/benchmarks.md). Transparent huge pages stay off: with them the peak RSS doubled.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`nb2pipe inspect NB | head`) instead of failing on every later write.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // ruff's parser panics on a few inputs; nb2pipe catches that and reports the cell,
    // so the panic's own message would only be noise.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !nb2pipe::analysis::in_parser() {
            hook(info)
        }
    }));
    let code = nb2pipe::run::run(std::env::args_os());
    std::process::exit(code);
}
