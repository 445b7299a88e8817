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
    assert res["optimised_forward_fusions"]["target_only"]  # as recam infer samples
    for variant in ("attention+qkv", "attention"):
        assert res["train_variants"][variant]["grads_vs_baseline"]["all"] < 3e-2
        assert res["train_variants"][variant]["target_only"]  # as recam train computes its loss
    assert (tmp_path / "recam_gpu.log").read_text().count("train variant") == 2


def test_recam_gpu_bench_forward_variants_tiny_cpu(tmp_path: Path) -> None:
    """``--only forward``: every variant's output against a float32 forward; ``@tgt`` returns the target half."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import recam_gpu
    finally:
        sys.path.remove(str(ROOT / "bench"))
    argv = ["--tiny", "--device", "cpu", "--no-compile", "--repeats", "1", "--only", "forward", "--fp32-ref"]
    rc = recam_gpu.main([*argv, "--forward-variants", "none,all@tgt", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "recam_gpu.json").read_text())
    assert rc == 0, res.get("fatal")
    full, tgt = res["forward_variants"]["none"], res["forward_variants"]["all@tgt"]
    assert not full["target_only"] and tgt["target_only"]
    assert tgt["flops"] < full["flops"] == res["flops_forward"]
    for r in (full, tgt):
        assert 0 < r["rel_err_target_half_vs_fp32"] < 3e-2
    assert tgt["rel_err_vs_fp32"] == tgt["rel_err_target_half_vs_fp32"]
    assert tgt["rel_err_vs_first_variant"] < 3e-2
    assert res["optimised_forward"]["variant"] in ("none", "all@tgt")
