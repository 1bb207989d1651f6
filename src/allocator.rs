//! How a binary that trains sets up its memory allocator, mimalloc (`lpnc`
//! and the step-time benchmark make it their global allocator, so the
//! benchmark times what users run).

unsafe extern "C" {
    /// mimalloc's `mi_option_set(option, value)` (in the library the
    /// `mimalloc` crate links).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Sets mimalloc's options and the process's use of huge pages for training;
/// call it first thing in `main`. Harmless where mimalloc is linked but not
/// the global allocator.
///
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
/// step as the later ones, and a short run's peak memory was half as high
/// again (the GunPoint classifier example: 72–74 MiB against 45–51), where
/// the later epochs ran no faster measurably (README, "The warm-up"). So the
/// process keeps off them, unless `MIMALLOC_ALLOW_THP` is set (mimalloc then
/// does as it says). mimalloc's own option for this is read before `main`,
/// with its arena already advised, so the process-wide switch
/// (`PR_SET_THP_DISABLE`) does it.
///
/// `mi_option_purge_delay` is 15 in the `mi_option_e` of the mimalloc v2
/// that libmimalloc-sys 0.1.49 builds (Cargo.lock pins it).
pub fn configure() {
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
