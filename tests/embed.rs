//! `examples/embed.rs` end to end in `cargo test`: its functions, compiled
//! here as a module, train the denoiser through the public `Trainer`, load
//! the weights as a `lpn::Model` and denoise a signal.
#![cfg(feature = "train")]

mod common;

#[allow(dead_code)] // `main`, which `cargo run --example embed` calls
#[path = "../examples/embed.rs"]
mod embed;

#[test]
fn the_embed_example_trains_loads_and_denoises() {
    let dir = common::fresh_dir("embed", "denoiser");
    let embed::Trained { weights, losses } = embed::train(&dir, 3).unwrap();
    // The observer saw every epoch, and training lowered the loss.
    assert_eq!(losses.iter().map(|(epoch, _)| *epoch).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(losses[2].1 < losses[0].1, "{losses:?}");
    let figures = embed::denoise(&weights).unwrap();
    // The trained model removes most of the noise of a signal it never saw.
    assert!(figures.denoised_mse < 0.5 * figures.noisy_mse, "noisy {} denoised {}", figures.noisy_mse, figures.denoised_mse);
    let _ = std::fs::remove_dir_all(&dir);
}
