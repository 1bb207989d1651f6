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

fn main() -> ExitCode {
    lpn::allocator::configure();
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
