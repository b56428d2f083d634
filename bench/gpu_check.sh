#!/usr/bin/env bash
# One prepared device session: CUDA tests, the engine-vs-seed benchmark on the full set, the whole
# seed experiment through `kd experiment`, and packed training's GPU targets (issue 10): five seeds
# packed against one, bfloat16 against float32. Expects the archive in .devdata/ and, where the device
# image lacks pydantic, wheels in .whl/ (see bench/README.md). SECTIONS picks what runs; with a
# 15-minute budget, SECTIONS="packtests seeds bf16 packbench" is the packing session; SECTIONS=fallbacks checks
# that each GPU speed path falls back when it raises (issue 18).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}
# QUICK=1 rehearses the script on a CPU with a small subset and one epoch per run.
QUICK_ARGS=""; [ "${QUICK:-0}" = 1 ] && QUICK_ARGS="--subset 500"
EPOCHS_ARG=""; [ "${QUICK:-0}" = 1 ] && EPOCHS_ARG="--epochs 1"
export KD_DATA_DIR=$PWD/.devdata
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
echo "== decode the archive once (cached afterwards)"
time python3 -c "from kdcore.data.loader import load_dataset; d = load_dataset('cifar10-jpg'); print(d.train_x.shape, d.test_x.shape)"
SECTIONS=${SECTIONS:-"tests fallbacks experiment sequential bench losses switches"}
on() { case " $SECTIONS " in *" $1 "*) return 0;; esac; return 1; }
on tests && echo "== CUDA tests"
on tests && python3 -m pytest -q -p no:cacheprovider --tb=short tests/test_cuda.py 2>&1 | tail -40
on packtests && echo "== CUDA pack and precision tests (CUDA graph packs against eager packs and runs alone)"
on packtests && python3 -m pytest -q -p no:cacheprovider --tb=short tests/test_packed.py tests/test_precision.py \
  -k "cuda or bfloat16" 2>&1 | tail -30
# Issue 18: every speed path falls back to the plain one when it raises. On CUDA the capture fails for real
# (a read back to the host inside it), the others are forced to raise; each run and pack must equal the
# one without that path. About 1 minute.
on fallbacks && echo "== speed-path fallbacks on CUDA (tests/test_fallback.py)"
on fallbacks && python3 -m pytest -q -p no:cacheprovider --tb=short tests/test_fallback.py -k cuda 2>&1 | tail -30
experiment() {  # $1: label, then extra flags
  local label=$1; shift
  echo "== whole seed experiment, $label"
  local start=$(date +%s%N)
  python3 -m kdcore.cli experiment --dataset cifar10-jpg --device "$DEVICE" $QUICK_ARGS $EPOCHS_ARG "$@" \
    --out "/tmp/experiment-$label" 2>"$OUT/experiment-$label.err" | tee "$OUT/experiment-$label.txt"
  echo "process wall time, start-up and imports included: $(( ($(date +%s%N) - start) / 1000000 )) ms"
  tr '\r' '\n' < "$OUT/experiment-$label.err" | grep -v "step/s" | grep . | tail -8
}
on experiment && experiment concurrent
on sequential && experiment sequential --sequential
# Issue 10's targets: five seeds (25 runs, the KD students and baselines of each phase packed) in at most
# 2× one seed's time, one seed in at most 16 s; bfloat16's time and accuracy beside float32's.
on seeds && experiment one-seed --seeds 1
on seeds && experiment five-seeds --seeds 1,2,3,4,5 --pack 8
on bf16 && experiment bfloat16 --precision bfloat16
on packbench && echo "== packed against one by one: 8 seeds of the baseline student, the whole set, 5 epochs"
on packbench && python3 bench/bench_packed.py --device "$DEVICE" --seeds 8 --subset 0 $QUICK_ARGS --epochs 5 \
  --json "$OUT/packed.json"
on bench && echo "== one epoch per kind: seed-style loop vs engine, same process"
on bench && python3 bench/bench_engine.py --dataset cifar10-jpg --device "$DEVICE" $QUICK_ARGS --workers 2 --json "$OUT/bench.json"
on losses && echo "== each method's step beside kd, with the GPU's sync-debug check"
LOSS_ARGS="--rounds 5 --steps 20 --batch 64"; [ "${QUICK:-0}" = 1 ] && LOSS_ARGS="--rounds 1 --steps 1 --batch 8"
on losses && python3 bench/bench_losses.py --device "$DEVICE" $LOSS_ARGS \
  --pairs tutorial_student:tutorial_teacher resnet20:resnet56 resnet8x4:resnet32x4
on switches && echo "== speed-up switches off (one epoch each)"
on switches && for run in "teacher" "teacher --no-channels-last" "student" "student --no-cuda-graphs" \
           "student --no-cuda-graphs --no-resident-data"; do
  python3 -m kdcore.cli train $run --dataset cifar10-jpg --device "$DEVICE" $QUICK_ARGS --epochs 1 --out "/tmp/sw$RANDOM" 2>/dev/null \
    | python3 -c "import json,sys; r=json.loads(sys.stdin.read().splitlines()[-1]); print('[$run]', round(r['seconds'],2), 's, acc', r['final_accuracy'])"
done
cp /tmp/experiment-concurrent/summary.json "$OUT"/summary.json 2>/dev/null
true
