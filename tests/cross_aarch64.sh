#!/usr/bin/env bash
# The whole workspace on a CPU that is not x86-64: cross-compiles lpn for
# aarch64 and runs its test suite under qemu-user (the portable kernels, and
# Candle's own aarch64 code, against the same references as on x86-64).
#
# Needs: rustup (the aarch64 standard library is added), a cross C compiler
# and qemu-user, e.g. on Debian/Ubuntu:
#   apt-get install gcc-aarch64-linux-gnu qemu-user
#
#   bash tests/cross_aarch64.sh            # the whole suite (slow under qemu)
#   bash tests/cross_aarch64.sh --lib      # any cargo test arguments
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER:-qemu-aarch64 -L /usr/aarch64-linux-gnu}
# The tests that start `lpnc` as a child process go through the same runner
# (tests/common/mod.rs).
export LPN_TEST_RUNNER=${LPN_TEST_RUNNER:-$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER}
cargo test --release --locked --target aarch64-unknown-linux-gnu --workspace --no-fail-fast "$@"
