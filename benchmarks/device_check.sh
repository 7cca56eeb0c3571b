#!/usr/bin/env bash
# One device check, one JSON object on stdout (progress on stderr). Under 8 minutes on a GPU machine:
#   benchmarks/device_check.sh                       # GPU: the paper shapes, S = 1,4,8, every mode
#   benchmarks/device_check.sh --device cpu --dataset <cube-single .npz>   # small settings (the test suite)
# Measures, in order (each piece has its own timeout; what the budget leaves out is listed in "skipped"):
#   1. update steps/s per seed and seed-steps/s (benchmarks/throughput.py) for S = 1, 4, 8, 25 (25: a paper
#      column of 5 tasks x 5 seeds on one replica axis) at both paper shapes: eager, compiled (inductor), CUDA graphs (compile_mode=reduce-overhead), TF32 off and on;
#      peak GPU memory per entry;
#   2. a 3k-step quickstart training with evaluation (rql-train), and the same 3k steps with seeds=[0,1,2,3];
#   3. benchmarks/eval.py (vector env evaluation) with 8 and 16 envs against its serial loop.
# Options: --device cuda|cpu, --budget SECONDS (default 450), --dataset PATH (skip generating data),
#          --out DIR (work dir for runs and logs; default a temp dir), --modes "eager compiled cudagraphs",
#          --tf32 "on off", --seeds 1,4,8,25 (a subset, to fit a short device lease).
set -u
DEVICE=cuda
BUDGET=450
DATASET=""
WORK=""
MODES_ARG=""; TF32_ARG=""; SEEDS_ARG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --dataset) DATASET="$2"; shift 2 ;;
    --out) WORK="$2"; shift 2 ;;
    --modes) MODES_ARG="$2"; shift 2 ;;
    --tf32) TF32_ARG="$2"; shift 2 ;;
    --seeds) SEEDS_ARG="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python}"
TRAIN="${RQL_TRAIN:-rql-train}"
WORK="${WORK:-$(mktemp -d)}"
mkdir -p "$WORK/pieces"
START=$(date +%s)
export TORCHINDUCTOR_CACHE_DIR="$WORK/inductor"  # one cache: a graph compiled once is reused by later pieces

if [ "$DEVICE" = cpu ]; then  # small settings: every code path, in seconds
  PRESETS="quickstart"; SEEDS="1,2"; TP_ARGS="--batch-size 16 --steps 2 --warmup 1"
  MODES="eager"; TF32S="off"
  TRAIN_STEPS=10; TRAIN_ARGS="model.num_critics=2 model.actor_hidden_dims=[32,32] model.critic_hidden_dims=[32,32] \
data.batch_size=32 model.compile=false eval.num_envs=1 trainer=cpu"; EPISODES=1
  SINGLE_ARGS="+callbacks.evaluation.env_kwargs.max_episode_steps=20"  # its one episode: 20 env steps, not 200
  EVAL_ENVS="2"; EVAL_ARGS="--episodes 2 --max-episode-steps 10"
else
  PRESETS="paper-manip paper-loco"; SEEDS="1,4,8,25"; TP_ARGS="--steps 100 --warmup 20"
  MODES="eager compiled cudagraphs"; TF32S="off on"
  TRAIN_STEPS=3000; TRAIN_ARGS="trainer=gpu data.device=cuda eval.num_envs=8 tf32=true"; EPISODES=10
  SINGLE_ARGS=""
  EVAL_ENVS="8 16"; EVAL_ARGS="--episodes 32"
fi
[ -n "$MODES_ARG" ] && MODES="$MODES_ARG"
[ -n "$TF32_ARG" ] && TF32S="$TF32_ARG"
[ -n "$SEEDS_ARG" ] && SEEDS="$SEEDS_ARG"
if [ -n "$DATASET" ]; then DATA_ARGS="data.dataset_path=$DATASET"; else
  DATA_ARGS="data.generate_if_missing=true data.generate_transitions=50000 data.generate_workers=8 \
paths.ogbench_data_dir=$WORK/data paths.generated_data_dir=$WORK/data"; fi

SKIPPED=()
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# piece NAME TIMEOUT CMD...: run CMD if the budget allows, its stdout (one JSON document) into pieces/NAME.json
piece() {
  local name="$1" limit="$2"; shift 2
  local remaining; remaining=$(left)
  if [ "$remaining" -lt 20 ]; then SKIPPED+=("$name"); echo "skip $name (budget)" >&2; return; fi
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  echo "run  $name (<= ${limit}s)" >&2
  local t0; t0=$(date +%s)
  if timeout "$limit" "$@" > "$WORK/pieces/$name.out" 2> "$WORK/pieces/$name.err"; then
    cp "$WORK/pieces/$name.out" "$WORK/pieces/$name.json"  # one JSON document (eval.py indents it)
  else
    printf '{"error": "exit %s after %ss", "stderr_tail": %s}\n' "$?" "$(( $(date +%s) - t0 ))" \
      "$("$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read()[-600:]))' < "$WORK/pieces/$name.err")" \
      > "$WORK/pieces/$name.json"
  fi
}

# 1. throughput: eager first (cheap), then the compiled modes, TF32 on before off
for tf32 in $(echo "$TF32S" | tr ' ' '\n' | sort -r); do
  for mode in $MODES; do
    for preset in $PRESETS; do
      args=(--preset "$preset" --device "$DEVICE" --seeds "$SEEDS" $TP_ARGS)
      [ "$mode" = compiled ] && args+=(--compile)
      [ "$mode" = cudagraphs ] && args+=(--compile --compile-mode reduce-overhead)
      [ "$tf32" = on ] && args+=(--tf32)
      piece "throughput.$preset.$mode.tf32_$tf32" 240 "$PY" "$HERE/throughput.py" "${args[@]}"
    done
  done
done

# 2. training through rql-train: one seed with evaluation, then 4 seeds in one process
for run in single seeds4; do
  extra="eval.episodes=$EPISODES $SINGLE_ARGS"; [ "$run" = seeds4 ] && extra="seeds=[0,1,2,3] eval.episodes=0"
  # shellcheck disable=SC2086
  piece "train.$run" 300 "$PY" - "$TRAIN" "$WORK/runs/$run" "$TRAIN_STEPS" $DATA_ARGS experiment=quickstart \
    $TRAIN_ARGS $extra <<'PYEOF'
import json, subprocess, sys, time
from pathlib import Path
train, run_dir, steps, *overrides = sys.argv[1:]
args = [train, *overrides, f"trainer.max_steps={steps}", "trainer.enable_progress_bar=false",
        "extras.print_config=false", f"hydra.run.dir={run_dir}"]
t0 = time.perf_counter()
proc = subprocess.run(args, capture_output=True, text=True)
wall = time.perf_counter() - t0
summary_path = Path(run_dir) / "summary.json"
summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
print(json.dumps({"returncode": proc.returncode, "steps": int(steps), "wall_s": wall,
                  "steps_per_s_incl_startup": int(steps) / wall, "success_rate": summary.get("success_rate"),
                  "status": summary.get("status"), "stderr_tail": proc.stderr[-400:] if proc.returncode else ""}))
PYEOF
done

# 3. evaluation: vector envs against the serial loop
for n in $EVAL_ENVS; do
  # shellcheck disable=SC2086
  piece "eval.envs$n" 240 "$PY" "$HERE/eval.py" --num-envs "$n" $EVAL_ARGS
done

"$PY" - "$WORK/pieces" "$DEVICE" "$(( $(date +%s) - START ))" "${SKIPPED[@]}" <<'PYEOF'
import json, sys
from pathlib import Path
pieces, device, elapsed, *skipped = sys.argv[1:]
out = {"device": device, "elapsed_s": int(elapsed), "skipped": skipped}
try:  # the version without importing torch (seconds); torch itself only to name the GPU
    from importlib.metadata import version
    out["torch"] = version("torch")
    if device.startswith("cuda"):
        import torch
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name()
except ImportError:  # PackageNotFoundError is one
    pass
for path in sorted(Path(pieces).glob("*.json")):
    group, _, name = path.stem.partition(".")
    text = path.read_text()
    try:
        value = json.loads(text or "null")
    except ValueError:  # logging before the JSON: its last line
        try:
            value = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            value = {"error": "no JSON", "text": text[-300:]}
    out.setdefault(group, {})[name] = value
print(json.dumps(out))
PYEOF
