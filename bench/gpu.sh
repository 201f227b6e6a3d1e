#!/usr/bin/env bash
# One prepared GPU benchmark: every GPU figure the project reports, printed as markdown tables.
# It only calls the bench/ scripts with flags; each section has a time budget (a section that
# runs over is cut, its rows so far kept), so the whole stays under 8 minutes on one H100/H200
# (363 s on one H200).
#
#   bench/gpu.sh                   # one GPU: bf16, batch 64 for the model pool and the classifiers
#   bench/gpu.sh --compiled-unets  # one GPU: section 1 compiled (torch.compile of three UNets, fwd + bwd)
#   bench/gpu.sh --cpu             # tiny sizes on the CPU, a couple of steps (the CI smoke test; not GPU figures)
#
# Sections: 1. training step, AsCAN UNet-b vs UNet2DConditionModel (SD-1.x and SDXL style) at
# equal params, 256 and 512 px (32 and 64 latents), bf16, eager (compiled: --compiled-unets, a
# run of its own: on an H200 compiling the three nets took longer than the 200 s section), with MFU;
# 2. precompute images/s (SD-VAE + CLIP-L-sized encoders) and the step on precomputed latents;
# 3. model pool images/s per stage at batch 64: filters (watermark, NSFW, text) and annotators
# (YOLO11n, BLIP-base, Florence-2-base, random weights from their configs, 20 generated tokens);
# 4. ascan_t vs coatnet_0 at batch 64 (compiled). Exit status: 0 when every section finished.
# Budgets (460 s in all; the run took 363 s on one H200, bench/README.md). NSFW, text and the
# watermark filter's text check run in ONNX Runtime: without onnxruntime-gpu (make setup-gpu) their
# rows say "not run".
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=false NO_ALBUMENTATIONS_UPDATE=1
PY=${PYTHON:-python}
CPU=0 COMPILED=0
[[ "${1:-}" == "--cpu" ]] && CPU=1
[[ "${1:-}" == "--compiled-unets" ]] && COMPILED=1
status=0

section() { printf '\n## %s\n\n' "$1"; }
run() {  # run BUDGET_S SCRIPT ARGS...: one bench script, cut at its budget
    local budget=$1 rc=0
    shift
    timeout "$budget" "$PY" "$@" 2>>"${GPU_SH_LOG:-/dev/null}" || rc=$?
    if [[ $rc -ne 0 ]]; then
        status=1
        if [[ $rc -eq 124 ]]; then echo "(section cut at its ${budget} s budget)"; else echo "(failed: exit $rc)"; fi
    fi
}

if [[ $CPU -eq 1 ]]; then
    export CUDA_VISIBLE_DEVICES=""
    echo "# bench/gpu.sh --cpu: tiny sizes on the CPU, a smoke run (these are not GPU figures)"
    section "Training step: AsCAN UNet vs UNet2DConditionModel"
    run 300 bench/unet_step.py --tiny --cpu --steps 2 --threads 1
    section "Precompute and the step on precomputed latents"
    run 300 bench/train_throughput.py --latents-only --tiny --steps 2 --threads 1
    section "Model pool: filters"
    run 300 bench/filter_throughput.py --device cpu --threads 1 --only watermark nsfw text --batch-sizes 2 --seconds 0
    section "Model pool: annotators"
    run 300 bench/annotate_throughput.py --device cpu --tiny --only objects caption-blip caption-florence2 \
        --batch-sizes 2 --seconds 0 --new-tokens 4
    section "Classifiers: ascan_t vs coatnet_0"
    run 300 bench/ascan_throughput.py --cpu --threads 1 --models ascan_t,coatnet_0_224 --batches 2 --budget 0.1 \
        --skip ablation,unet
elif [[ $COMPILED -eq 1 ]]; then
    echo "# bench/gpu.sh --compiled-unets on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    section "Training step, torch.compile: AsCAN UNet-b vs UNet2DConditionModel at equal params"
    run 540 bench/unet_step.py --unet ascan_unet_b --latents 32 64 --batch 32 --bf16 --compile yes --steps 10 --warmup 3
else
    echo "# bench/gpu.sh on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    section "Training step: AsCAN UNet-b vs UNet2DConditionModel at equal params"
    run 200 bench/unet_step.py --unet ascan_unet_b --latents 32 64 --batch 32 --bf16 --compile no --steps 10 --warmup 3
    section "Precompute and the step on precomputed latents"
    run 50 bench/train_throughput.py --latents-only --steps 10
    section "Model pool: filters, batch 64"
    run 40 bench/filter_throughput.py --device cuda --only watermark nsfw text --batch-sizes 64 --seconds 5
    section "Model pool: annotators, batch 64"
    run 80 bench/annotate_throughput.py --device cuda --only objects caption-blip caption-florence2 --batch-sizes 64 \
        --seconds 5 --new-tokens 20
    section "Classifiers: ascan_t vs coatnet_0, batch 64"
    run 90 bench/ascan_throughput.py --models ascan_t,coatnet_0_224 --batches 64 --budget 5 --skip ablation,unet
fi
exit $status
