//! libFuzzer target over the whole front end: `cargo fuzz run frontend`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `lpnc` reads files as UTF-8 and refuses anything else before parsing.
    if let Ok(source) = std::str::from_utf8(data) {
        if let Err(broken) = lpn_fuzz::run_frontend(source) {
            panic!("invariant broken: {broken}");
        }
    }
});
