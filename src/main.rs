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
/// is unchanged).
///
/// mimalloc also asks for transparent huge pages (`MADV_HUGEPAGE`) for its
/// memory, so each 2 MiB page the heap grows into is zeroed whole when first
/// touched: on a Zen 5 VM nine tenths of the CPU time of a training's first
/// 0.15 s was that zeroing, the first epoch took 2 to 6 times as long per
/// step as the later ones, and the peak memory was a fifth to a third
/// higher, where the later epochs ran no faster measurably (README, "The
/// warm-up"). So lpnc turns them off for its process, unless
/// `MIMALLOC_ALLOW_THP` is set (mimalloc then does as it says). mimalloc's
/// own option for this is read before `main`, with its arena already
/// advised, so the process-wide switch (`PR_SET_THP_DISABLE`) does it.
///
/// `mi_option_purge_delay` is 15 in the `mi_option_e` of the mimalloc v2
/// that libmimalloc-sys 0.1.49 builds (Cargo.lock pins it).
fn configure_allocator() {
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    // SAFETY: setting an option is allowed at any time; an out-of-range
    // option would be ignored by mimalloc, not undefined.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes one integer argument and the
        // rest zero; it changes only how the kernel backs this process's
        // memory. A kernel without it returns an error, which changes nothing.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    }
}

fn main() -> ExitCode {
    configure_allocator();
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
