#!/usr/bin/env bash
# The wide 1-D convolutions (64–256 channels, k = 3–8: the layers of FCN and
# ResNet for time series) in lpn's kernels against PyTorch, each op alone
# (forward, input gradient, weight gradient), side by side:
#
#   bash benches/conv1d_wide.sh [--rounds N] [--out FILE]
#
# Each round runs `cargo bench --bench conv1d -- wide` and
# benches/torch_conv1d_wide.py at 1 and 2 threads, alternating which goes
# first; each figure is the median over rounds of each run's median of 9
# calls, with the per-round ratio's range. PYTHON=... picks an interpreter
# with torch (default benches/.venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --out) out=$2; shift ;;
    *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 2 ;;
  esac
  shift
done
py=${PYTHON:-benches/.venv/bin/python}
[ -x "$py" ] || py=python3
"$py" -c 'import torch' 2>/dev/null || { echo "no PyTorch in $py (set PYTHON=)" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target/lpn-bench"
out=${out:-$target/lpn-bench/conv1d_wide.md}
results=$target/lpn-bench/conv1d_wide.jsonl
: > "$results"
bench=$(cargo bench --bench conv1d --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "conv1d" and m.get("executable"):
        print(m["executable"])')
[ -n "$bench" ] || { echo "could not build benches/conv1d.rs" >&2; exit 1; }
for round in $(seq 1 "$rounds"); do
  for threads in 1 2; do
    if [ $((round % 2)) = 1 ]; then order="lpn torch"; else order="torch lpn"; fi
    for side in $order; do
      echo "  round $round, $side, $threads thread(s)" >&2
      if [ "$side" = lpn ]; then
        RAYON_NUM_THREADS=$threads "$bench" wide
      else
        OMP_NUM_THREADS=$threads "$py" benches/torch_conv1d_wide.py --threads "$threads"
      fi | python3 -c 'import json, sys
for line in sys.stdin:
    d = json.loads(line); d.update(round=int(sys.argv[1]), threads=int(sys.argv[2])); print(json.dumps(d))' "$round" "$threads" >> "$results"
    done
  done
done
python3 - "$results" "$rounds" > "$out" <<'PY'
import json, os, statistics, sys, time
runs = [json.loads(l) for l in open(sys.argv[1])]
info = {}
for l in open("/proc/cpuinfo"):
    key, _, value = l.partition(":")
    info.setdefault(key.strip(), value.strip())
# The family/model and the widest vector path lpn's kernels take on this CPU.
isa = "AVX-512" if "avx512f" in info.get("flags", "").split() else "AVX2" if "avx2" in info.get("flags", "").split() else "no AVX2"
cpu = f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}; {isa})"
print(f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {cpu}, {os.cpu_count()} cores; median of {sys.argv[2]} alternating rounds (each a median of 9 calls); ms, and lpn / PyTorch with its range over rounds.\n")
print("| case (B, Cin→Cout, L, k) | threads | op | lpn ms | PyTorch ms | lpn / PyTorch |")
print("|---|---|---|---|---|---|")
cases = []
for r in runs:
    if r["case"] not in cases:
        cases.append(r["case"])
for case in cases:
    b, cin, cout, l, k = case
    for threads in (1, 2):
        for op in ("forward", "grad_input", "grad_weight"):
            pick = lambda side: {r["round"]: r[op] for r in runs if r["side"] == side and r["case"] == case and r["threads"] == threads}
            ours, theirs = pick("lpn"), pick("torch")
            ratios = [ours[k_] / theirs[k_] for k_ in ours if k_ in theirs]
            a, t = statistics.median(ours.values()), statistics.median(theirs.values())
            print(f"| ({b}, {cin}→{cout}, {l}, {k}) | {threads} | {op} | {a:.2f} | {t:.2f} | {a / t:.2f} ({min(ratios):.2f}–{max(ratios):.2f}) |")
PY
cat "$out"
echo "(table in $out; every run in $results)" >&2
