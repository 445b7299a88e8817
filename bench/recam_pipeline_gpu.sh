#!/usr/bin/env bash
# GPU smoke run of the recam pipeline (prepare -> train -> infer), run with the `device` tool:
#   1. tiny models at 64x64 x 17 frames, 300 bf16 steps (the fixed-noise eval loss must fall);
#   2. full-size random transformer + VAE (Wan2.1-T2V-1.3B configs) at 81 x 480 x 832: prepare, 4 training
#      steps with gradient checkpointing, infer 3 steps with CFG -> an 81-frame 480x832 mp4.
# Usage: bash bench/recam_pipeline_gpu.sh WORKDIR OUTDIR
set -euo pipefail
W=${1:-/tmp/recam_gpu}; O=${2:-$W/out}; mkdir -p "$W" "$O"
R="python3 -m recam.cli"
t() { local s=$(date +%s%N); "$@"; echo "TIME $(( ($(date +%s%N) - s) / 1000000 )) ms: ${*:1:5}"; }
cd "$W"
t $R synthetic data --scenes 2 --cameras 4 --frames 17 --size 64
t $R tiny-wan-dir wan
t $R prepare data --wan-dir wan --out cache --num-frames 17 --height 64 --width 64 --text-len 32 --tile 0
t $R train --cache cache --wan-dir wan --out run --steps 300 --lr 1e-3 --eval-every 100 --num-workers 2
cat run/eval.csv; cp run/eval.csv "$O/tiny_eval.csv"
t $R infer --video data/train/*/scene1/videos/cam01.mp4 --prompt "a person" --cam-type 5 --wan-dir wan \
  --checkpoint run --num-frames 17 --height 64 --width 64 --steps 4 --tile 0 --out "$O/tiny_out.mp4"
t $R synthetic big --scenes 1 --cameras 2 --frames 81 --size 128
t $R tiny-wan-dir bigwan --full-size --text-len 512
t $R prepare big --wan-dir bigwan --out bigcache --tile 256
t $R train --cache bigcache --wan-dir bigwan --out bigrun --steps 4 --log-every 1 --gradient-checkpointing \
  --num-workers 2 --no-export
cat bigrun/log.csv; cp bigrun/log.csv "$O/full_log.csv"
t $R infer --video big/train/*/scene1/videos/cam01.mp4 --prompt "a person" --cam-type 3 --wan-dir bigwan \
  --checkpoint bigrun --steps 3 --out "$O/full_out.mp4"
python3 -c "from exporters.video import probe_video as p; print(p('$O/full_out.mp4'))"
