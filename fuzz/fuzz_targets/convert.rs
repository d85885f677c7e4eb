#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(init: harness::ignore_caught_parser_panics(), |data: &[u8]| {
    harness::note_input(data);
    if let Err(e) = harness::convert(data) {
        panic!("invariant broken: {e}");
    }
});
