//! The one place where the instruction set is chosen: detected once per
//! process, and overridable by [`with_isa`] so that tests and benches can run
//! each path on the same data.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// A family of vector instructions the kernels have code for. The portable
/// path (plain loops, and the `gemm` crate for matrix products) is compiled
/// on every target; the others only where their module is (`x86_64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 with FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F, with AVX2 and FMA (every AVX-512 CPU has them).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// Whether this CPU runs the path.
    pub fn runs_here(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::is_x86_feature_detected!("avx512f") && Isa::Avx2.runs_here(),
        }
    }

    /// Every path this CPU runs, the portable one first.
    pub fn available() -> Vec<Isa> {
        let all = [
            Isa::Portable,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512,
        ];
        all.into_iter().filter(|isa| isa.runs_here()).collect()
    }

    /// The widest path this CPU runs, detected once.
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| *Isa::available().last().expect("the portable path always runs"))
    }

    fn code(self) -> u8 {
        match self {
            Isa::Portable => 1,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 3,
        }
    }
}

/// The forced path's code (see [`Isa::code`]), 0 when none is forced.
static FORCED: AtomicU8 = AtomicU8::new(0);
/// Held by [`with_isa`] for its whole call, so forced paths never overlap.
static FORCING: Mutex<()> = Mutex::new(());

/// The path a kernel call takes now: the forced one inside [`with_isa`], else
/// [`Isa::detected`]. A kernel reads it once at its start, so one call never
/// mixes paths.
pub(crate) fn current() -> Isa {
    match FORCED.load(Ordering::Acquire) {
        1 => Isa::Portable,
        #[cfg(target_arch = "x86_64")]
        2 => Isa::Avx2,
        #[cfg(target_arch = "x86_64")]
        3 => Isa::Avx512,
        _ => Isa::detected(),
    }
}

/// Runs `f` with every kernel call (on any thread) taking the path `isa`:
/// for tests and benches that compare paths. Calls are serialised (one
/// forced path at a time, process-wide); kernel calls outside `f` made while
/// it runs also take `isa`, which is harmless (every path computes the same
/// results) but is why this is not for production use.
///
/// # Panics
/// If this CPU does not run `isa`.
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    assert!(isa.runs_here(), "{isa:?} is not available on this CPU");
    let _serial = FORCING.lock().unwrap_or_else(PoisonError::into_inner);
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.store(0, Ordering::Release);
        }
    }
    FORCED.store(isa.code(), Ordering::Release);
    let _restore = Restore;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forcing_a_path_is_seen_and_undone() {
        for isa in Isa::available() {
            assert_eq!(with_isa(isa, current), isa);
        }
        assert_eq!(current(), Isa::detected());
        assert_eq!(Isa::available()[0], Isa::Portable);
    }
}
