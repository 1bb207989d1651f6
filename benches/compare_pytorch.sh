#!/usr/bin/env bash
# lpn against PyTorch on the reference nets of benches/nets/ (issue 5) and the
# nets with batch norm, fcn and conv2d_bn (issue 17):
#
#   bash benches/compare_pytorch.sh --install   # first time: PyTorch into benches/.venv
#   bash benches/compare_pytorch.sh             # the full run (5 rounds: about 25 minutes on 2 cores)
#   bash benches/compare_pytorch.sh --quick     # 2 rounds of 1 timed epoch, to try it out
#
# Options: --rounds N (5), --epochs N timed epochs per run (2, of 10 steps each),
# --warmup N untimed epochs before them (3: until lpn's process kept off
# transparent huge pages, its first 20-odd steps were slowed by the kernel
# zeroing the huge pages its heap grew into, e.g. the 2-D net at two threads
# 20-30 ms/step in its first epoch, 6-11 in its second, 4-5 from its third
# on, on the Zen 5 VM; the table gives each side's first epoch in a column
# of its own), --settle S seconds of rest before each run
# (2: a run that started as the one before it exited was slower, whichever
# side it was, e.g. lpn's 2-D batch-norm net at two threads 16-18 ms/step
# right after a PyTorch process against 13 after a pause of 3 s on the Zen 4
# VM), --no-torch-constraints (skip PyTorch's
# constrained variants), --out FILE (the tables; default
# $CARGO_TARGET_DIR/lpn-bench/benchmark.md, target/ when unset).
#
# Both sides train the same nets from the same initial weights on the same
# batches (lpn exports them: `cargo bench --bench step_time -- export`), and
# each run reports its per-epoch training loss, so the tables also say whether
# the two computed the same thing. Runs alternate (lpn, PyTorch, then PyTorch,
# lpn the next round); each figure is the median over rounds of each run's
# median epoch ms/step, with its range over rounds. Each round also times the
# unconstrained nets with benches/torch_outside.py, a second PyTorch harness
# that shares nothing with the first (its own twins, random data, PyTorch's
# own timer), so the table shows whether the first one slows PyTorch down. Then: `lpnc check` on a generated 10,000-layer file,
# and the peak RSS of a short training run of each side.
#
# PyTorch from pip is large, so it is not part of `cargo test`. `--install`
# makes benches/.venv with `python3 -m venv` and installs torch and numpy
# (TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu picks the CPU-only
# wheels). PYTHON=... uses another interpreter that has torch and numpy.
set -euo pipefail
cd "$(dirname "$0")/.."

install=0 rounds=5 epochs=2 warmup=3 settle=2 torch_constraints=1 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --install) install=1 ;;
    --rounds) rounds=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --settle) settle=$2; shift ;;
    --quick) rounds=2 epochs=1 warmup=1 ;;
    --no-torch-constraints) torch_constraints=0 ;;
    --out) out=$2; shift ;;
    *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 2 ;;
  esac
  shift
done

venv=benches/.venv
if [ "$install" = 1 ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if "$venv/bin/python" -c 'import torch, numpy' 2>/dev/null; then
    echo "torch is already in $venv"
  else
    "$venv/bin/python" -m pip install --upgrade pip
    "$venv/bin/python" -m pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple} torch numpy
  fi
fi
py=${PYTHON:-$venv/bin/python}
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
  echo "no PyTorch in $py: run \`bash benches/compare_pytorch.sh --install\` first (or set PYTHON=)" >&2
  exit 2
fi

target=${CARGO_TARGET_DIR:-target}
work=$target/lpn-bench
mkdir -p "$work"
out=${out:-$work/benchmark.md}
results=$work/results.jsonl
: > "$results"

echo "building…" >&2
cargo build --release --quiet
lpnc=$target/release/lpnc
step=$(cargo bench --bench step_time --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "step_time" and m.get("executable"):
        print(m["executable"])')
[ -n "$step" ] || { echo "could not build benches/step_time.rs" >&2; exit 1; }

"$step" data > /dev/null
nets="conv1d conv2d fcn conv2d_bn"
modes="penalty project reparam"
# A net's constrained variants, where it has them (the batch-norm nets have none).
variants() { for m in $modes; do if [ -f "benches/nets/${1}_$m.lpn" ]; then echo "${1}_$m"; fi; done; }
for net in $nets; do
  for v in "$net" $(variants "$net"); do
    "$lpnc" check "benches/nets/$v.lpn" > /dev/null 2>&1 || { "$lpnc" check "benches/nets/$v.lpn"; exit 1; }
    "$step" export "benches/nets/$v.lpn" "$work/$v"
  done
done

# One timed run; its JSON line goes to $results with the round added.
run() { # side variant threads round
  local side=$1 v=$2 threads=$3 round=$4 line
  sleep "$settle"
  if [ "$side" = lpn ]; then
    line=$(RAYON_NUM_THREADS=$threads "$step" time "benches/nets/$v.lpn" --threads "$threads" --epochs "$epochs" --warmup "$warmup")
  elif [ "$side" = outside ]; then
    line=$(OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$py" -W ignore benches/torch_outside.py "$v" --threads "$threads" --seconds 2)
  else
    line=$(OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$py" benches/torch_step.py "$work/$v" --threads "$threads" --epochs "$epochs" --warmup "$warmup")
  fi
  echo "$line" | python3 -c 'import json, sys; d = json.loads(sys.stdin.read()); d.update(variant=sys.argv[1], round=int(sys.argv[2]), threads=int(sys.argv[3])); print(json.dumps(d))' "$v" "$round" "$threads" >> "$results"
  printf '  round %s  %-5s %-15s %s thread(s): %s ms/step\n' "$round" "$side" "$v" "$threads" \
    "$(tail -1 "$results" | python3 -c 'import json, sys; print(round(json.load(sys.stdin)["ms_per_step"], 2))')" >&2
}

for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order="lpn torch outside"; else order="outside torch lpn"; fi
  for threads in 1 2; do
    for net in $nets; do
      for side in $order; do run "$side" "$net" "$threads" "$round"; done
      if [ "$threads" = 2 ]; then
        for v in $(variants "$net"); do
          for side in $order; do
            if [ "$side" = lpn ] || { [ "$side" = torch ] && [ "$torch_constraints" = 1 ]; }; then run "$side" "$v" 2 "$round"; fi
          done
        done
      fi
    done
  done
done

# lpnc check on 10,000 layers: median wall time of 7 runs (process start included).
big=$work/check_10000.lpn
bash benches/check_large.sh --emit 10000 > "$big"
"$lpnc" check "$big" > /dev/null 2>&1 || true
sleep "$settle"
check_ms=$(for _ in 1 2 3 4 5 6 7; do
  s=$(date +%s%N); "$lpnc" check "$big" > /dev/null 2>&1 || true; e=$(date +%s%N)
  echo $(((e - s) / 1000))
done | sort -n | sed -n 4p)

# Peak RSS of a training run of each side (2 epochs, 2 threads): /usr/bin/time's
# "Maximum resident set size", else the process's own VmHWM.
peak() { # command...
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$@" 2>&1 > /dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p'
  else
    "$@" 2>/dev/null | python3 -c 'import json, sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["peak_rss_kib"])'
  fi
}
memory=""
for net in $nets; do
  rm -rf "$work/memrun-$net"
  if [ -x /usr/bin/time ]; then
    l=$(RAYON_NUM_THREADS=2 peak "$lpnc" train "benches/nets/$net.lpn" --epochs 2 --quiet --force --out "$work/memrun-$net")
  else
    l=$(RAYON_NUM_THREADS=2 peak "$step" time "benches/nets/$net.lpn" --epochs 1 --warmup 1)
  fi
  t=$(OMP_NUM_THREADS=2 peak "$py" benches/torch_step.py "$work/$net" --threads 2 --epochs 1 --warmup 1)
  memory="$memory $net:$l:$t"
done

python3 - "$results" "$check_ms" "$memory" "$py" "$rounds" "$epochs" "$nets" "$settle" "$warmup" > "$out" <<'PY'
import json, os, platform, statistics, subprocess, sys, time

results, check_us, memory, py, rounds, epochs, nets, settle, warmup = sys.argv[1:10]
NETS = nets.split()
runs = [json.loads(l) for l in open(results)]

def times(side, variant, threads):
    return [r["ms_per_step"] for r in runs if r["side"] == side and r["variant"] == variant and r["threads"] == threads]

def med(side, variant, threads):
    xs = times(side, variant, threads)
    return statistics.median(xs) if xs else None

def first_epoch(side, variant, threads):
    """Median over rounds of the untimed first epoch's ms/step: the start-up."""
    xs = [r["epoch_ms_per_step"][0] for r in runs
          if r["side"] == side and r["variant"] == variant and r["threads"] == threads and r.get("epoch_ms_per_step")]
    return statistics.median(xs) if xs else None

def spread(side, variant, threads):
    xs = times(side, variant, threads)
    return f"{min(xs):.1f}–{max(xs):.1f}" if xs else "-"

def ratio_spread(variant, threads):
    """lpn / PyTorch of each round (the runs of a round are back to back)."""
    by_round = {}
    for r in runs:
        if r["variant"] == variant and r["threads"] == threads and r["side"] in ("lpn", "torch"):
            by_round.setdefault(r["round"], {})[r["side"]] = r["ms_per_step"]
    xs = [d["lpn"] / d["torch"] for d in by_round.values() if len(d) == 2]
    return f"{min(xs):.2f}–{max(xs):.2f}" if xs else "-"

def agree(variant, threads):
    """Largest relative difference of the per-epoch training loss between the
    two sides, over rounds (same weights, same batches: should be ~1e-6)."""
    worst = None
    for r in runs:
        if r["side"] != "lpn" or r["variant"] != variant or r["threads"] != threads:
            continue
        for t in runs:
            if t["side"] == "torch" and t["variant"] == variant and t["threads"] == threads and t["round"] == r["round"]:
                d = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(r["train_loss"], t["train_loss"]))
                worst = d if worst is None else max(worst, d)
    return "-" if worst is None else f"{worst:.0e}"

def fmt(x):
    return "-" if x is None else f"{x:.1f}"

cpu = platform.processor() or "?"
try:
    info = {}
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    # The family/model and the widest vector path lpn's kernels take on this CPU.
    flags = info.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    cpu = f"{info.get('model name', cpu)} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}; {isa})"
except OSError:
    pass
torch_version = next((r.get("torch") for r in runs if r.get("torch")), "?")
print(f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {cpu}, {os.cpu_count()} cores; PyTorch {torch_version}; "
      f"median of {rounds} alternating rounds, each run {epochs} timed epoch(s) of 10 steps after {warmup} untimed, {settle} s of rest before each run.\n")
print("| net | threads | lpn ms/step (range) | PyTorch ms/step (range) | PyTorch, outside harness (range) | lpn / PyTorch (per round) | target | losses agree | first epoch, lpn / PyTorch ms/step |")
print("|---|---|---|---|---|---|---|---|---|")
for net in NETS:
    for threads in (1, 2):
        a, b = med("lpn", net, threads), med("torch", net, threads)
        ratio = f"{a / b:.2f}" if a and b else "-"
        print(f"| {net} | {threads} | {fmt(a)} ({spread('lpn', net, threads)}) | {fmt(b)} ({spread('torch', net, threads)}) "
              f"| {fmt(med('torch-outside', net, threads))} ({spread('torch-outside', net, threads)}) "
              f"| {ratio} ({ratio_spread(net, threads)}) | ≤ {'1.0' if threads == 1 else '0.8'} | {agree(net, threads)} "
              f"| {fmt(first_epoch('lpn', net, threads))} / {fmt(first_epoch('torch', net, threads))} |")
print()
print("Constraints (2 threads; every conv under `@lowpass(mode=…)`): overhead against the same net unconstrained.\n")
print("| net | mode | lpn ms/step | lpn overhead | PyTorch ms/step | PyTorch overhead | losses agree |")
print("|---|---|---|---|---|---|---|")
for net in ("conv1d", "conv2d"):  # the nets with constrained variants
    base_l, base_t = med("lpn", net, 2), med("torch", net, 2)
    for mode in ("penalty", "project", "reparam"):
        v = f"{net}_{mode}"
        a, b = med("lpn", v, 2), med("torch", v, 2)
        oa = f"{100 * (a / base_l - 1):+.1f} %" if a and base_l else "-"
        ob = f"{100 * (b / base_t - 1):+.1f} %" if b and base_t else "-"
        print(f"| {net} | {mode} | {fmt(a)} | {oa} | {fmt(b)} | {ob} | {agree(v, 2)} |")
print()
print(f"`lpnc check` on a generated 10,000-layer file (benches/check_large.sh's model): {int(check_us) / 1000:.0f} ms, median of 7 (target ≤ 100 ms).\n")
print("| peak RSS, 2-epoch training run | lpn (`lpnc train`) | PyTorch | lpn / PyTorch |")
print("|---|---|---|---|")
for item in memory.split():
    net, l, t = item.split(":")
    if l and t:
        print(f"| {net} | {int(l) / 1024:.0f} MiB | {int(t) / 1024:.0f} MiB | {int(l) / int(t):.2f} |")
    else:
        print(f"| {net} | {l or '-'} | {t or '-'} | - |")
PY
cat "$out"
echo "(tables in $out; every run in $results)" >&2
