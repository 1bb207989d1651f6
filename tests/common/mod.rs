//! What several integration tests share: the `lpnc` binary as they start it.
//! With `LPN_TEST_RUNNER` set (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`
//! in `tests/cross_aarch64.sh`, where the binary is built for another CPU) it
//! runs through that command, as cargo runs the test binaries themselves;
//! otherwise directly.

use std::process::Command;

const LPNC: &str = env!("CARGO_BIN_EXE_lpnc");

fn runner() -> Option<String> {
    std::env::var("LPN_TEST_RUNNER").ok().filter(|r| !r.trim().is_empty())
}

/// A command that starts `lpnc`.
pub fn lpnc() -> Command {
    match runner() {
        Some(runner) => {
            let mut words = runner.split_whitespace();
            let mut command = Command::new(words.next().expect("a runner has a program"));
            command.args(words).arg(LPNC);
            command
        }
        None => Command::new(LPNC),
    }
}

/// `lpnc` as the start of a shell command line.
#[allow(dead_code)] // only the tests that go through a shell use it
pub fn lpnc_shell() -> String {
    match runner() {
        Some(runner) => format!("{runner} {LPNC}"),
        None => LPNC.to_string(),
    }
}
