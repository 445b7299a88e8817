#!/usr/bin/env bash
# `recam infer` end to end on one GPU (issue 17): one 81 x 480 x 832 video, 50 steps, CFG 5, full-size random
# Wan2.1-T2V-1.3B transformer + Wan2.1 VAE + 1-layer umT5 (load, text encode, VAE encode, 100 DiT passes, VAE
# decode, mp4 write all timed). Usage: bash bench/recam_infer_gpu.sh WORKDIR OUTDIR [extra `recam infer` options]
set -euo pipefail
W=${1:-/tmp/recam_infer}; O=${2:-$W/out}; shift 2 || true; mkdir -p "$W" "$O"
R="python3 -m recam.cli"
t() { local s=$(date +%s%N); "$@"; echo "TIME $(( ($(date +%s%N) - s) / 1000000 )) ms: ${*:1:9}"; }
cd "$W"
[ -d big ] || t $R synthetic big --scenes 1 --cameras 2 --frames 81 --size 128
[ -d bigwan ] || t $R tiny-wan-dir bigwan --full-size --text-len 512
V=$(ls big/train/*/scene1/videos/cam01.mp4 | head -1)
t $R infer --video "$V" --prompt "a person" --cam-type 3 --wan-dir bigwan --steps 50 --cfg 5 \
  --out "$O/infer.mp4" "$@"
python3 -c "from exporters.video import probe_video as p; print(p('$O/infer.mp4'))"
