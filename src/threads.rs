//! How many threads the CPU work uses.
//!
//! Two pools could do the parallel work of a training step: rayon's global
//! pool (our kernels, the `lpn-kernels` crate, and Candle's matmuls, gemm
//! with `Parallelism::Rayon`), and Candle 0.11's own "barrier pool" for its
//! elementwise and reduction ops, whose size Candle reads once from
//! `CANDLE_NUM_THREADS`, else `RAYON_NUM_THREADS`, else the physical cores,
//! and whose workers spin between ops. The count goes to rayon (and to
//! `RAYON_NUM_THREADS`, by which Candle splits matmuls); Candle's own pool
//! gets one thread, the caller's (unless `CANDLE_NUM_THREADS` says otherwise). Its spinning workers competed with rayon's
//! for the same cores: on the GunPoint example (small tensors, many Candle
//! ops per step) they took four fifths of the CPU time, and what is left on
//! that pool is the light work (losses, gradient norms, the odd add): the
//! heavy ops are ours, on rayon.

/// Sets the size of rayon's global pool: `threads`, or when `None` the number
/// of CPUs this process may use. Returns the number in effect.
///
/// Call it once, first thing in `main`, before any other thread is started
/// (it sets environment variables, which is only sound while the process has
/// one thread) and before anything runs in parallel (the pools are built once
/// per process). A later call that asks for the size already in
/// effect (or `None`) succeeds; one that asks for another size, or for 0
/// threads, is an error with a sentence for the user.
///
/// # Safety
/// No other thread may be running (it sets environment variables).
pub unsafe fn configure(threads: Option<usize>) -> Result<usize, String> {
    if threads == Some(0) {
        return Err("the number of threads must be at least 1".into());
    }
    let wanted = threads.unwrap_or_else(|| std::thread::available_parallelism().map(usize::from).unwrap_or(1));
    // Candle's pool: one thread unless the user sized it (CANDLE_NUM_THREADS).
    let candle = std::env::var("CANDLE_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0).unwrap_or(1);
    for (var, count) in [("CANDLE_NUM_THREADS", candle), ("RAYON_NUM_THREADS", wanted)] {
        if std::env::var(var).ok().and_then(|v| v.parse::<usize>().ok()) != Some(count) {
            // SAFETY: the caller guarantees no other thread exists that could
            // read the environment.
            unsafe { std::env::set_var(var, count.to_string()) };
        }
    }
    match rayon::ThreadPoolBuilder::new().num_threads(wanted).build_global() {
        Ok(()) => Ok(wanted),
        // Already built (an earlier call, or something ran in parallel first).
        Err(_) => {
            let current = rayon::current_num_threads();
            if threads.is_none() || current == wanted {
                Ok(current)
            } else {
                Err(format!("cannot use {wanted} threads: the thread pool already runs with {current}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_threads_is_an_error() {
        // SAFETY: 0 is refused before the environment is touched.
        assert!(unsafe { super::configure(Some(0)) }.is_err());
    }
}
