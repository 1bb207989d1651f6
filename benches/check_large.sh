#!/usr/bin/env bash
# Times `lpnc check` on a generated model of 10,000 layers (convolutions with
# band constraints, activations, residual blocks, pooling-free so the length
# holds), the front end's speed target: well under a second.
#
#   bash benches/check_large.sh [LAYERS]
#   bash benches/check_large.sh --emit [LAYERS] > big.lpn   # only write the model
set -euo pipefail
cd "$(dirname "$0")/.."

generate() {
  local layers=$1 n=0
  echo "// generated: $layers layers"
  echo "model big {"
  echo "  input [1, 256]"
  while [ "$n" -lt "$layers" ]; do
    case $((n % 5)) in
      0) echo "  conv(out=8, k=15) @lowpass(cutoff=0.$((2 + n % 5)), mode=project)" ;;
      1) echo "  relu" ;;
      2) echo "  residual {"; echo "    conv(k=5) @symmetric"; echo "    gelu"; echo "  }"; n=$((n + 2)) ;;
      3) echo "  conv(k=9, groups=2) @highpass(0.5, mode=penalty, weight=0.01)" ;;
      4) echo "  batchnorm" ;;
    esac
    n=$((n + 1))
  done
  echo "  conv(out=1, k=3)"
  echo "}"
  echo "data sines()"
}

if [ "${1:-}" = "--emit" ]; then
  generate "${2:-10000}"
  exit 0
fi
layers=${1:-10000}
cargo build --release --quiet
lpnc=${CARGO_TARGET_DIR:-target}/release/lpnc
file=$(mktemp --suffix=.lpn)
trap 'rm -f "$file"' EXIT
generate "$layers" > "$file"
echo "file: $(wc -l < "$file") lines, $(wc -c < "$file") bytes"
best=""
for _ in 1 2 3 4 5; do
  start=$(date +%s.%N)
  "$lpnc" check "$file" 2>/dev/null || true
  end=$(date +%s.%N)
  t=$(echo "$end - $start" | bc)
  if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
done
echo "lpnc check, $layers layers: best of 5 = ${best} s"
"$lpnc" check "$file" 2>&1 | tail -1
