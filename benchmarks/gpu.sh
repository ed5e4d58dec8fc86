#!/usr/bin/env bash
# GPU numbers of every bundle in about five minutes (an H100/H200): per bundle
#   - whole-case latency with the bundle's defaults (runtime auto = PyTorch + fp16 autocast on a GPU),
#   - cases per second at two larger inference batch sizes (the best one is the rate to report),
#   - training throughput with AMP and cached data (the configs' CacheDataset), and
#   - the GPU's busy share during that training (nvidia-smi utilization.gpu sampled every 200 ms).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        (default: $OUT, else gpu_benchmark/)
#
# Each measurement is one benchmarks/run.py call with its own time limit, so one slow bundle cannot eat
# the others' time; a call that runs out of time leaves "failed" in its table. The markdown tables and
# summary.md land in OUT_DIR; copy the numbers into docs/performance.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu_benchmark}}
mkdir -p "$out"
py=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$py" -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__)" | tee -a "$out/gpu.txt"

# the config key that sets the inference batch of each bundle (slices, windows or images per call)
declare -A batch_key=(
    [mmran_brain_tumor_segmentation_classification]=batch_size
    [attention_r2unet_brats_segmentation]=sw_batch_size
    [multitask_unet3d_ms_lesion_segmentation]=sw_batch_size
    [unetpp_edge_stroke_lesion_segmentation]=sw_batch_size
    [resnesat_brain_tumor_classification]=batch_size
)

bench() {  # limit_s output_file args...
    local limit=$1 file=$2
    shift 2
    timeout "$limit" "$py" benchmarks/run.py --device cuda --output "$file" "$@" >/dev/null 2>>"$out/log.txt" \
        || echo "| failed or out of time ($limit s): $* |" >>"$file"
}

for bundle in "${!batch_key[@]}"; do
    key=${batch_key[$bundle]}
    echo "== $bundle" | tee -a "$out/log.txt"
    bench 40 "$out/$bundle.latency.md" --bundle "$bundle" --phases inference --runtimes auto --repeats 3 --warmup 1
    for batch in 32 128; do
        bench 30 "$out/$bundle.batch$batch.md" --bundle "$bundle" --phases inference --runtimes auto \
            --repeats 2 --warmup 1 --override "$key=$batch"
    done
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 >"$out/$bundle.util.txt" &
    sampler=$!
    bench 50 "$out/$bundle.train.md" --bundle "$bundle" --phases train --train-steps 30 --warmup-steps 5
    kill "$sampler" 2>/dev/null
    # the busy share over the samples taken while the GPU did anything (setup and data caching excluded)
    awk '$1 > 0 {s += $1; n++} END {printf "GPU busy during training: %.0f %% (mean of %d non-idle samples)\n", n ? s / n : 0, n}' \
        "$out/$bundle.util.txt" | tee "$out/$bundle.busy.txt"
done

{
    cat "$out/gpu.txt"
    for file in "$out"/*.md; do
        [ "$(basename "$file")" = summary.md ] && continue
        echo
        echo "### $(basename "$file" .md)"
        cat "$file"
    done
    for file in "$out"/*.busy.txt; do echo "$(basename "$file" .busy.txt): $(cat "$file")"; done
} >"$out/summary.md"
echo "wrote $out/summary.md"
