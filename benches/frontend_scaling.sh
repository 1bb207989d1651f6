#!/usr/bin/env bash
# Shows that `lpnc check` takes time linear in the size of its input: times it
# on generated files of 1, 2, 5 and 10 MB of each kind below and prints the
# time per MB, which should stay flat as the size grows.
#
#   layers   valid layers with annotations (one program, no diagnostics
#            but the memory estimate)
#   broken   every line a mistake: a diagnostic per line to render
#   oneline  one line of `relu;` statements
#   nested   brackets `[[[[…` opened and never closed (refused at the
#            nesting limit)
#
#   bash benches/frontend_scaling.sh [SIZES_MB...]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(1 2 5 10)
cargo build --release --quiet --bin lpnc
lpnc="${CARGO_TARGET_DIR:-target}/release/lpnc"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

generate() { # KIND MB FILE
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
kind, mb, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
target = int(mb * 1_000_000)
head = "model m {\n  input [1, 256]\n"
tail = "}\ndata sines()\n"
lines = {
    "layers": ["  conv(out=4, k=3, padding=same)\n", "  relu\n",
               "  conv(k=5, padding=same) @lowpass(cutoff=0.3, mode=penalty, weight=0.1) @symmetric\n", "  batchnorm\n"],
    "broken": ["  conv(k=3, kk=1)\n", "  relu(\n"],
    "oneline": ["relu; "],
}
with open(path, "w") as f:
    if kind == "nested":
        f.write(head + "  conv(k=" + "[" * (target - len(head)) + "\n" + tail)
    else:
        parts, size, i = [head], len(head), 0
        body = lines[kind]
        while size < target:
            parts.append(body[i % len(body)]); size += len(body[i % len(body)]); i += 1
        parts.append(("\n" if kind == "oneline" else "") + tail)
        f.write("".join(parts))
EOF
}

printf "%-8s %6s %10s %10s %12s\n" kind MB seconds "s per MB" diagnostics
for kind in layers broken oneline nested; do
  for mb in "${sizes[@]}"; do
    file="$dir/$kind-$mb.lpn"
    generate "$kind" "$mb" "$file"
    best=""
    for _ in 1 2 3; do
      start=$(date +%s.%N)
      "$lpnc" check "$file" > /dev/null 2> "$dir/out" || true
      end=$(date +%s.%N)
      t=$(echo "$end - $start" | bc)
      if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
    done
    count=$(grep -cE '^(  ×|  ⚠)' "$dir/out" || true)
    printf "%-8s %6s %10.3f %10.3f %12s\n" "$kind" "$mb" "$best" "$(echo "$best / $mb" | bc -l)" "$count"
  done
done
