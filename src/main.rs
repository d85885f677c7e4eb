//! The `nb2pipe` binary: everything lives in the library; this is the only `process::exit`.
fn main() {
    let code = nb2pipe::run::run(std::env::args_os());
    std::process::exit(code);
}
