"""The GPU benchmark script runs end to end on the CPU with the tiny config (no GPU timing asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_recam_gpu_bench_tiny_cpu(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import recam_gpu
    finally:
        sys.path.remove(str(ROOT / "bench"))
    rc = recam_gpu.main(["--tiny", "--device", "cpu", "--no-compile", "--repeats", "1", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "recam_gpu.json").read_text())
    assert rc == 0, res.get("fatal")
    assert res["tokens"] == 2 * 3 * 4 * 6
    for key in ("baseline_forward", "optimised_forward", "baseline_train", "optimised_train"):
        assert res[key]["median_s"] > 0
    # the optimised path computes the same function: bf16 on CPU, so only rounding differs
    assert res["optimised_forward"]["rel_err_vs_baseline"] < 3e-2
    for variant in ("attention+qkv", "attention"):
        assert res["train_variants"][variant]["grads_vs_baseline"]["all"] < 3e-2
    assert (tmp_path / "recam_gpu.log").read_text().count("train variant") == 2
