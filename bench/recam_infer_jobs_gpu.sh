#!/usr/bin/env bash
# `recam infer --jobs` on one GPU: two 81 x 480 x 832 videos with the models loaded once, without and with the
# compiled blocks (the default for 2+ videos), full-size random Wan2.1-T2V-1.3B + VAE + 1-layer umT5.
# Usage: bash bench/recam_infer_jobs_gpu.sh WORKDIR [STEPS]
set -euo pipefail
W=${1:-/tmp/recam_jobs}; S=${2:-10}; mkdir -p "$W"
R="python3 -m recam.cli"
cd "$W"
[ -d big ] || $R synthetic big --scenes 1 --cameras 2 --frames 81 --size 128
[ -d bigwan ] || $R tiny-wan-dir bigwan --full-size --text-len 512
V1=$(ls big/train/*/scene1/videos/cam01.mp4 | head -1); V2=${V1%cam01.mp4}cam02.mp4
printf '{"video": "%s", "prompt": "a person", "out": "out/a.mp4", "cam_type": 3}\n{"video": "%s", "prompt": "a person walking", "out": "out/b.mp4", "cam_type": 1}\n' "$PWD/$V1" "$PWD/$V2" > jobs.jsonl
for mode in --no-compile ""; do
  rm -rf out
  s=$(date +%s%N); $R infer --jobs jobs.jsonl --wan-dir bigwan --steps "$S" --no-progress $mode
  echo "TIME $(( ($(date +%s%N) - s) / 1000000 )) ms: --jobs (2 videos, $S steps) ${mode:-default}"
done
s=$(date +%s%N); $R infer --jobs jobs.jsonl --wan-dir bigwan --steps "$S" --no-progress
echo "TIME $(( ($(date +%s%N) - s) / 1000000 )) ms: rerun with both outputs present (resume: nothing to do)"
python3 -c "from exporters.video import probe_video as p; print(p('out/a.mp4')); print(p('out/b.mp4'))"
