//! `lpnc`: the command-line front of lpn.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};
use cli::train::TrainArgs;

// Training allocates and frees megabyte-sized tensors every step; glibc's
// malloc hands such blocks back to the kernel and takes them again, a page
// fault per 4 KiB each time. mimalloc keeps them: ~13 % less step time on the
// 2-D reference net (benches/compare_pytorch.sh), at a higher but still small
// peak memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's `mi_option_set(option, value)` (in the library the
    /// allocator above links).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// mimalloc returns freed memory to the kernel 10 ms after the free
/// (`purge_delay`); a training step frees its megabyte tensors and takes them
/// again the next step, so each step faulted (and the kernel zeroed) them
/// afresh: 9 % of the CPU time of an FCN step, 17,000 faults in 20 steps,
/// 300 with no purging. Memory freed stays with the process instead (its peak
/// is unchanged). `mi_option_purge_delay` is 15 in the `mi_option_e` of the
/// mimalloc v2 that libmimalloc-sys 0.1.49 builds (Cargo.lock pins it).
fn keep_freed_memory() {
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    // SAFETY: setting an option is allowed at any time; an out-of-range
    // option would be ignored by mimalloc, not undefined.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Explain { .. }) {
        cli::warn_oversubscribed(cli.threads);
    }
    // SAFETY: nothing else runs yet (no thread has been started), as
    // `configure` requires.
    if let Err(e) = unsafe { lpn::threads::configure(cli.threads) } {
        eprintln!("error: {e}");
        return ExitCode::from(cli::USAGE_OR_IO);
    }
    match cli.command {
        Command::Check { files, message_format } => cli::check::check(&files, message_format),
        Command::Explain { what } => cli::explain::explain(&what),
        Command::Fmt { files, check } => cli::fmt::fmt(&files, check),
        Command::Inspect { file } => cli::check::inspect_file(&file),
        Command::Train { file, out, epochs, seed, quiet, resume, force, set } => {
            cli::train::train(&file, TrainArgs { out, epochs, seed, quiet, resume, force, overrides: set })
        }
        Command::Eval { file, weights } => cli::train::eval(file.as_deref(), &weights),
        Command::Response { file, weights, out } => cli::response::response(file.as_deref(), &weights, &out),
        Command::Predict { file, weights, input, out, quiet } => {
            cli::predict::predict(cli::predict::PredictArgs { file, weights, input, out, quiet })
        }
        Command::Lsp => cli::lsp::serve(),
        Command::Export { file, weights, format, out } => cli::export::export(file.as_deref(), &weights, format, &out),
    }
}
