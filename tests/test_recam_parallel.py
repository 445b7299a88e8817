"""Multi-process runs of ``recam`` on CPU (gloo): parallel inference, DDP training, sharded prepare.

Every multi-process test launches real processes through ``torch.distributed.run`` (torchrun) with one torch
thread each and compares against a single-process run of the same thing. Single-process runs of ``recam`` go
through its CLI in this process (one torch thread, like each torchrun worker): a process start costs ~8 CPU-s of
imports (torch, diffusers, transformers), which is most of what a tiny run costs. One 4-process launch serves all
the transformer-level checks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
FRAMES, SIZE = 9, 32
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NCCL_NVLS_ENABLE": "0"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _torchrun(nproc: int, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_port", str(_port()), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout, cwd=ROOT)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


def _recam(*args: str) -> None:
    """``recam ARGS`` in this process on one torch thread (what ``OMP_NUM_THREADS=1`` gives a torchrun worker)."""
    from typer.testing import CliRunner

    from recam.cli import app

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = CliRunner().invoke(app, list(args))
    finally:
        torch.set_num_threads(before)
    assert res.exit_code == 0, f"recam {' '.join(args)}\n{res.output[-3000:]}\n{res.exception!r}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from recam.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data")
    write_synthetic_dataset(root, scenes=3, cameras=3, frames=FRAMES, size=SIZE, seed=5)
    return root


def _prepare_args(dataset: Path, wan_dir: Path, out: Path) -> list[str]:
    return ["prepare", str(dataset), "--wan-dir", str(wan_dir), "--out", str(out), "--num-frames", str(FRAMES),
            "--height", str(SIZE), "--width", str(SIZE), "--text-len", "32", "--tile", "0",
            "--latent-dtype", "fp32"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, dataset: Path, wan_dir: Path) -> Path:
    """One unsharded ``recam prepare`` (one thread, like the sharded runs)."""
    out = tmp_path_factory.mktemp("cache") / "c"
    _recam(*_prepare_args(dataset, wan_dir, out))
    return out


# ------------------------------------------------------------------------------------------------
# Single-process pieces
# ------------------------------------------------------------------------------------------------


def test_shard_tokens_partitions_every_frame() -> None:
    from recam.parallel import shard_tokens

    frames, n, world = 4, 6, 3
    x = torch.arange(frames * n).view(1, frames * n, 1)
    parts = [shard_tokens(x, frames, r, world) for r in range(world)]
    # rank r holds tokens [2r, 2r+2) of every frame, in frame order
    assert parts[1].flatten().tolist() == [2, 3, 8, 9, 14, 15, 20, 21]
    assert sorted(torch.cat(parts, 1).flatten().tolist()) == list(range(frames * n))
    with pytest.raises(ValueError, match="tokens per latent frame divisible by 4"):
        shard_tokens(x, frames, 0, 4)


def test_parallelize_single_process_and_errors() -> None:
    from recam.model import ReCamMasterTransformer
    from recam.parallel import parallelize

    model = ReCamMasterTransformer.tiny()
    for mode in ("none", "cfg", "ulysses", "allgather"):
        assert parallelize(model, mode) is model  # one process: nothing to split
    with pytest.raises(ValueError, match="--parallel must be one of"):
        parallelize(model, "tensor")


def test_infer_cli_rejects_unknown_parallel_mode(dataset: Path, wan_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recam.cli import app

    video = sorted(dataset.rglob("cam01.mp4"))[0]
    res = CliRunner().invoke(app, ["infer", "--video", str(video), "--prompt", "x", "--cam-type", "1", "--wan-dir",
                                   str(wan_dir), "--num-frames", str(FRAMES), "--height", str(SIZE), "--width",
                                   str(SIZE), "--out", str(tmp_path / "o.mp4"), "--parallel", "tensor"])
    assert res.exit_code == 2
    assert "--parallel must be one of none, cfg, ulysses" in res.output
    assert not (tmp_path / "o.mp4").exists()


def test_step_batches_global_batch_split() -> None:
    from recam.train import StepBatches, sample_noise

    one = list(StepBatches(50, 4, seed=3, start=0, steps=5))
    halves = [list(StepBatches(50, 2, 3, 0, 5, rank=r, world_size=2)) for r in range(2)]
    assert [a + b for a, b in zip(*halves, strict=True)] == one
    idx, noise = sample_noise(3, 7, 0, (4, 2, 3), 1000)
    idx1, noise1 = sample_noise(3, 7, 2, (2, 2, 3), 1000)  # samples 2, 3 of the same global batch
    assert torch.equal(idx[2:], idx1) and torch.equal(noise[2:], noise1)
    assert not torch.equal(noise[0], noise[1])


# ------------------------------------------------------------------------------------------------
# Parallel inference
# ------------------------------------------------------------------------------------------------


SEQUENCE_MODES, CFG_SEQUENCE_MODES = ("ulysses", "allgather"), ("cfg+ulysses", "cfg+allgather")


@pytest.fixture(scope="module")
def forward4(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, torch.Tensor]]:
    """One 4-process launch of the worker: each mode's output, a second call, a target-only call and the 1-process
    reference (float32). Sequence modes split every frame's tokens over 4 ranks (4 heads, so ulysses can); plain
    ``cfg`` (2 processes) is checked end to end by :func:`test_infer_torchrun_cfg_equals_single_process`."""
    from safetensors.torch import load_file

    out = tmp_path_factory.mktemp("forward4")
    _torchrun(4, "tests/recam_parallel_worker.py", "--mode", ",".join(SEQUENCE_MODES + CFG_SEQUENCE_MODES),
              "--heads", "4", "--out", str(out))
    res = json.loads((out / "result.json").read_text())
    assert res["world_size"] == 4
    return res, load_file(str(out / "outputs.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "wrapper"), [(m, "ReCamMasterTransformer") for m in SEQUENCE_MODES]
                         + [(m, "CFGParallel") for m in CFG_SEQUENCE_MODES])
def test_parallel_forward_equals_single_process(forward4: tuple[dict, dict[str, torch.Tensor]], mode: str,
                                                wrapper: str) -> None:
    """ulysses and allgather over 4 processes, and CFG over 2 groups of 2 sequence-parallel processes, give the
    1-process transformer output, again on a second call (the hooks keep no state) and target-only."""
    res, t = forward4
    torch.testing.assert_close(t[f"{mode}.out"], t[f"{mode}.ref"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(t[f"{mode}.again"], t[f"{mode}.out"], rtol=0, atol=0)
    n_t = t[f"{mode}.ref"].shape[2] // 2
    torch.testing.assert_close(t[f"{mode}.target_only"], t[f"{mode}.ref"][:, :, :n_t], rtol=1e-5, atol=1e-5)
    assert res["modes"][mode]["ref_abs_max"] > 0.5
    assert res["modes"][mode]["wrapper"] == wrapper  # sequence parallelism modifies the model in place
    assert res["modes"][mode]["attn1_processor"] == "SequenceParallelAttnProcessor"
    assert res["modes"][mode]["block_hooks"] == 1


@pytest.mark.slow
def test_infer_torchrun_cfg_equals_single_process(dataset: Path, wan_dir: Path, tmp_path: Path) -> None:
    """``recam infer`` under torchrun (2 processes, --parallel cfg) writes the 1-process latents and video.

    Sampling under sequence parallelism (ulysses on 2 processes against 1) is checked by
    :func:`test_bench_multigpu_tiny_two_processes`, the transformer under every mode by :func:`forward4`."""
    from safetensors.torch import load_file

    from exporters.video import probe_video, read_video_frames

    video = sorted(dataset.rglob("cam01.mp4"))[0]
    common = ["infer", "--video", str(video), "--prompt", "a person walks", "--cam-type", "3", "--wan-dir",
              str(wan_dir), "--num-frames", str(FRAMES), "--height", str(SIZE), "--width", str(SIZE),
              "--steps", "3", "--tile", "0", "--cfg", "4.0"]
    _recam(*common, "--out", str(tmp_path / "one.mp4"), "--save-latents", str(tmp_path / "one.safetensors"))
    one = load_file(str(tmp_path / "one.safetensors"))["latents"]
    frames_one = read_video_frames(tmp_path / "one.mp4").astype(np.int16)
    out = tmp_path / "cfg.mp4"
    res = _torchrun(2, "-m", "recam.cli", *common, "--parallel", "cfg", "--out", str(out),
                    "--save-latents", str(tmp_path / "cfg.safetensors"))
    assert res.stdout.count("wrote") == 2  # both ranks finish; rank 0 wrote the file
    lat = load_file(str(tmp_path / "cfg.safetensors"))["latents"]
    assert lat.shape == one.shape
    torch.testing.assert_close(lat, one, rtol=1e-4, atol=1e-4)
    info = probe_video(out)
    assert (info.frames, info.width, info.height) == (FRAMES, SIZE, SIZE)
    # The latents above are the exact check. The decoded videos went through a lossy H.264 encode: a
    # one-level rounding difference in a decoded frame can change the encoder's choices for a block, so
    # single pixels may differ by several levels; on average the videos must be the same.
    diff = np.abs(read_video_frames(out).astype(np.int16) - frames_one)
    assert diff.mean() < 0.5, f"video differs from the 1-process one by {diff.mean():.3f} on average"


# ------------------------------------------------------------------------------------------------
# DDP training
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_ddp_two_processes_same_loss_curve(cache: Path, wan_dir: Path, tmp_path: Path) -> None:
    """2 processes x batch 1 follow the loss curve and weights of 1 process x batch 2 (same global batch); both
    ranks run every step, rank 0 writes the log and every checkpoint."""
    from safetensors.torch import load_file

    from recam.train import read_log

    steps = 6
    common = ["train", "--cache", str(cache), "--wan-dir", str(wan_dir), "--steps", str(steps), "--lr", "1e-3",
              "--log-every", "1", "--save-every", "3", "--num-workers", "0", "--seed", "4"]
    _recam(*common, "--out", str(tmp_path / "one"), "--batch-size", "2")
    res = _torchrun(2, "-m", "recam.cli", *common, "--out", str(tmp_path / "two"), "--batch-size", "1")
    assert res.stdout.count(f"trained steps 0..{steps}") == 2  # each rank ran every step
    one, two = read_log(tmp_path / "one"), read_log(tmp_path / "two")
    assert [r["step"] for r in two] == list(range(1, steps + 1))
    assert json.loads((tmp_path / "two" / "train_config.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step0000003", "step0000006"]
    l1, l2 = np.array([r["loss"] for r in one]), np.array([r["loss"] for r in two])
    assert np.ptp(l1) > 1e-3  # the curve moves: equality below is not trivial
    np.testing.assert_allclose(l2, l1, rtol=1e-4)
    ck = "checkpoints/step0000006/trainable.safetensors"
    w1, w2 = load_file(str(tmp_path / "one" / ck)), load_file(str(tmp_path / "two" / ck))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    # a different split of a different global batch (1 process x batch 1) is a different curve
    _recam(*common, "--out", str(tmp_path / "b1"), "--batch-size", "1")
    l3 = np.array([r["loss"] for r in read_log(tmp_path / "b1")])
    assert np.abs(l3 - l1).max() > 1e-3


# ------------------------------------------------------------------------------------------------
# Sharded prepare
# ------------------------------------------------------------------------------------------------


def _cache_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_prepare_sharded_concurrent_equals_unsharded(cache: Path, dataset: Path, wan_dir: Path,
                                                      tmp_path: Path) -> None:
    """2 concurrent shard processes (torchrun: RANK of WORLD_SIZE) write exactly the unsharded cache."""
    from safetensors.torch import load_file

    out = tmp_path / "sharded"
    res = _torchrun(2, "-m", "recam.cli", *_prepare_args(dataset, wan_dir, out))
    # each process did its own shard: 2 + 1 scenes of the 3
    done = sorted(int(line.split()[1]) for line in res.stdout.splitlines() if line.startswith("prepared"))
    assert done == [1, 2]
    a, b = _cache_files(cache), _cache_files(out)
    assert not [k for k in b if k.endswith(".tmp") or "/." in k]  # no temporaries left behind
    assert sorted(a) == sorted(b)  # no missing, no extra entries
    n_lat = 0
    for k, p in a.items():
        if k.endswith(".safetensors"):
            ta, tb = load_file(str(p)), load_file(str(b[k]))
            assert ta.keys() == tb.keys()
            for name in ta:
                assert torch.equal(ta[name], tb[name]), f"{k}:{name} differs"
            n_lat += "latents" in k
        else:
            assert json.loads(p.read_text()) == json.loads(b[k].read_text()), k
    assert n_lat == 9  # 3 scenes x 3 cameras


# ------------------------------------------------------------------------------------------------
# Benchmark script smoke run
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_multigpu_tiny_two_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``bench/recam_multigpu.py --tiny``: its train and infer workers on 1 process (its ``--worker`` entry, run
    here in this process) and on 2 (its launcher, through torchrun); the launcher reports every run, the 2-process
    inference matching the 1-process latents the 1-process worker left in the shared ``--work`` folder."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("recam_multigpu", ROOT / "bench" / "recam_multigpu.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    common = ["--tiny", "--steps", "2", "--warmup", "1", "--infer-steps", "2", "--work", str(tmp_path / "work")]
    (tmp_path / "work").mkdir()
    one = tmp_path / "one_process.jsonl"
    for task in ("train", "infer"):
        monkeypatch.setattr(sys, "argv", ["recam_multigpu.py", "--worker", task, "--result", str(one), *common])
        bench.main()
    single = {(r["task"], r.get("mode", ""), r["nproc"]): r for r in map(json.loads, one.read_text().splitlines())}
    assert set(single) == {("train", "", 1), ("infer", "none", 1)}
    assert single[("train", "", 1)]["samples_per_s"] > 0
    cmd = [sys.executable, str(ROOT / "bench" / "recam_multigpu.py"), "--gpus", "2", "--tasks", "train,infer",
           "--modes", "ulysses", *common, "--out", str(tmp_path / "out")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "recam_multigpu.json").read_text())
    runs = {(r["task"], r.get("mode", ""), r["nproc"]): r for r in data["results"]}
    assert set(runs) == {("train", "", 2), ("infer", "ulysses", 2)}
    assert runs[("train", "", 2)]["samples_per_s"] > 0
    assert runs[("infer", "ulysses", 2)]["max_abs_diff_vs_1proc"] < 1e-4
    assert runs[("infer", "ulysses", 2)]["ref_abs_max"] > 0.1  # the reference is not all zeros
    assert data["meta"]["nccl_nvls_enable"] == "0"
    assert "| infer | ulysses | 2 |" in (tmp_path / "out" / "recam_multigpu.md").read_text()
