//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "lpnc", version, about = "Compile, check and train .lpn models: neural-network layers with declared structure")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Threads for training and evaluation (default: LPN_THREADS, else every CPU this process may use).
    #[arg(long, global = true, value_name = "N", env = "LPN_THREADS")]
    pub threads: Option<usize>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check files and report every problem (exit 0: no errors, 1: errors, 2: usage or I/O).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `human` (miette reports on stderr) or `json` (one object per line on stdout).
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
    },
    /// Rewrite .lpn files in the canonical layout, comments kept (exit 0: formatted, 1: not formatted or syntax errors, 2: I/O).
    ///
    /// The layout (docs/formatting.md): two spaces of indentation per block; one statement per line (`;` splits);
    /// `conv(out=16, k=15)` (no spaces around `=` in arguments, `, ` between them); `key = value` for settings;
    /// annotations after their layer, one space apart, the first ones of neighbouring layers in one column when
    /// their heads differ by at most 8 characters; one blank line between sections, blank lines inside a block kept
    /// (at most one); an argument list or list that holds a comment or is broken after its opening bracket stays one
    /// item per line with a trailing comma; names, numbers and strings as written; trailing comments two spaces
    /// after the code. A file with syntax errors is left unchanged and its diagnostics are printed.
    Fmt {
        /// Files to rewrite in place (only those that change); `-` reads standard input and writes standard output.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write nothing: print a unified diff for each file that is not formatted, and exit 1 if any is not.
        #[arg(long)]
        check: bool,
    },
    /// Explain a diagnostic code (`E0028`) or describe a layer, annotation, data source, optimizer or loss.
    Explain {
        /// A code, a name such as `conv` or `lowpass`, `list` for every code, or `reference` for the whole language in Markdown.
        what: String,
    },
    /// Check a file and print its layers: names, output shapes, parameter counts and constraints.
    Inspect { file: PathBuf },
    /// Train the model of a file on its data; writes model.safetensors and report.json.
    ///
    /// Exit status: 0 trained; 1 errors in the file or while training; 2 usage or I/O; 3 trained and written, but a
    /// constraint in a hard mode (project, reparam, freeze) does not hold or a constrained weight collapsed to zero;
    /// 130 interrupted (checkpoint saved).
    Train {
        file: PathBuf,
        /// Output folder (default: runs/MODEL_NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the file's epoch count (at least 1, as in the file).
        #[arg(long, value_parser = at_least_one_epoch)]
        epochs: Option<usize>,
        /// Override the file's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Nothing on stderr while training (the end table still goes to stdout).
        #[arg(long)]
        quiet: bool,
        /// Continue the run whose checkpoint is in this folder (its --out), exactly where it stopped.
        #[arg(long, value_name = "DIR", conflicts_with = "out")]
        resume: Option<PathBuf>,
        /// Replace the run already in the output folder (its files are removed first).
        #[arg(long, conflicts_with = "resume")]
        force: bool,
        /// Change a setting of the data or train section, or of a phase, as if written in the file: `--set
        /// train.epochs=50`, `--set data.val_split=0`, `--set phase.NAME.epochs=5`; checked as the file's own
        /// lines, recorded in report.json. Repeat for several.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Plot the magnitude response of every band-constrained layer over its spec's mask (SVG; 1-D: up to 24 kernels, largest ρ first; 2-D: a heat map of the worst kernel), and ρ per epoch.
    Response {
        /// The .lpn file (default: the source embedded in the weights).
        file: Option<PathBuf>,
        /// A model.safetensors written by `lpnc train` (its report.json, if next to it, adds ρ per epoch).
        #[arg(long)]
        weights: PathBuf,
        #[arg(long, default_value = "response.svg")]
        out: PathBuf,
    },
    /// Serve the Language Server Protocol on stdin/stdout (editors start it; diagnostics, hover, completion, definition, outline, quick fixes).
    Lsp,
    /// Loss and accuracy of trained weights on the file's declared test data.
    Eval {
        /// The .lpn file (default: the source embedded in the weights).
        file: Option<PathBuf>,
        /// A model.safetensors written by `lpnc train`.
        #[arg(long)]
        weights: PathBuf,
    },
    /// Run trained weights on new inputs and write one CSV row per example: the probability of each class and the
    /// predicted class (classifiers), or the output vector (regression, denoising).
    ///
    /// Inputs without labels: a CSV file (one example per row, the input's values flattened; a first row that is not
    /// numbers is a header) or a NumPy .npy array of shape [n, …input] (float32/64 or integers, either byte order, C
    /// order). The weights file carries the .lpn source it was trained from, so FILE may be left out (data paths then
    /// resolve next to the weights, else in the folder it was trained from); given, it must be the same model.
    Predict {
        /// The .lpn file (default: the source embedded in the weights).
        file: Option<PathBuf>,
        /// A model.safetensors written by `lpnc train`.
        #[arg(long)]
        weights: PathBuf,
        /// The inputs: a .csv or .npy file.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the predictions (written whole or not at all; default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress or summary on stderr.
        #[arg(long)]
        quiet: bool,
    },
    /// Export trained weights for another runtime: ONNX (opset 17, the batch axis dynamic, named `batch`).
    ///
    /// The file holds the network in eval mode with its constraints baked into plain weights: a reparametrized kernel as
    /// its coordinates make it, a frozen layer's designed filter, projected, penalized and lagrangian weights as trained;
    /// batch norm as BatchNormalization with the running statistics; dropout left out. Input `input` [batch, *input of
    /// the model]; output `output` [batch, *output] (a classifier's logits, before softmax). Exit status: 0 written; 1
    /// errors in the file, weights that do not fit it, or a layer that cannot be exported (named, with the reason); 2
    /// usage or I/O.
    Export {
        /// The .lpn file (default: the source embedded in the weights).
        file: Option<PathBuf>,
        /// A model.safetensors written by `lpnc train`.
        #[arg(long)]
        weights: PathBuf,
        /// The format to write: `onnx`.
        #[arg(long, value_enum, default_value_t = super::export::ExportFormat::Onnx)]
        format: super::export::ExportFormat,
        /// Where to write (through a temporary file and a rename: never half a file).
        #[arg(long, default_value = "model.onnx")]
        out: PathBuf,
    },
}

/// `--epochs`: the file's `epochs` must be ≥ 1, and so must its override
/// (0 would train nothing and write the initial weights as a result).
fn at_least_one_epoch(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1, as `epochs` in a file (0 would train nothing)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}
