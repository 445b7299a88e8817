"""ReCamMaster transformer: equivalence with an independent implementation, camera/source behaviour, training
parameter set, and checkpoint key mapping (Wan original, DiffSynth/ReCamMaster, diffusers)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recam import convert
from recam.model import ReCamMasterTransformer, flops_per_forward, load_config
from recam.scheduler import (
    add_noise,
    cfg_combine,
    euler_step,
    next_sigmas,
    recammaster_sigmas,
    timesteps_from_sigmas,
    training_weights,
    velocity_target,
)

CFG = load_config("tiny")
DIM = CFG["num_attention_heads"] * CFG["attention_head_dim"]


# --------------------------------------------------------------------------- independent reference
def wan_original_keys(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a Wan2.1 original (DiffSynth) T2V checkpoint, written from Wan's module layout."""
    dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    ffn, text, freq = cfg["ffn_dim"], cfg["text_dim"], cfg["freq_dim"]
    c_in, c_out = cfg["in_channels"], cfg["out_channels"]
    pt, ph, pw = cfg["patch_size"]
    keys: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (dim, c_in, pt, ph, pw),
        "patch_embedding.bias": (dim,),
        "text_embedding.0.weight": (dim, text),
        "text_embedding.0.bias": (dim,),
        "text_embedding.2.weight": (dim, dim),
        "text_embedding.2.bias": (dim,),
        "time_embedding.0.weight": (dim, freq),
        "time_embedding.0.bias": (dim,),
        "time_embedding.2.weight": (dim, dim),
        "time_embedding.2.bias": (dim,),
        "time_projection.1.weight": (6 * dim, dim),
        "time_projection.1.bias": (6 * dim,),
        "head.head.weight": (c_out * pt * ph * pw, dim),
        "head.head.bias": (c_out * pt * ph * pw,),
        "head.modulation": (1, 2, dim),
    }
    for i in range(cfg["num_layers"]):
        b = f"blocks.{i}."
        for attn in ("self_attn", "cross_attn"):
            for p in "qkvo":
                keys[f"{b}{attn}.{p}.weight"] = (dim, dim)
                keys[f"{b}{attn}.{p}.bias"] = (dim,)
            keys[f"{b}{attn}.norm_q.weight"] = (dim,)
            keys[f"{b}{attn}.norm_k.weight"] = (dim,)
        keys[f"{b}norm3.weight"] = (dim,)
        keys[f"{b}norm3.bias"] = (dim,)
        keys[f"{b}ffn.0.weight"] = (ffn, dim)
        keys[f"{b}ffn.0.bias"] = (ffn,)
        keys[f"{b}ffn.2.weight"] = (dim, ffn)
        keys[f"{b}ffn.2.bias"] = (dim,)
        keys[f"{b}modulation"] = (1, 6, dim)
    return keys


def camera_keys(cfg: dict) -> dict[str, tuple[int, ...]]:
    dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    out: dict[str, tuple[int, ...]] = {}
    for i in range(cfg["num_layers"]):
        out[f"blocks.{i}.cam_encoder.weight"] = (dim, 12)
        out[f"blocks.{i}.cam_encoder.bias"] = (dim,)
        out[f"blocks.{i}.projector.weight"] = (dim, dim)
        out[f"blocks.{i}.projector.bias"] = (dim,)
    return out


def random_checkpoint(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in shapes.items():
        fan_in = s[1] if len(s) > 1 and "modulation" not in k else 1
        scale = 1.0 / math.sqrt(max(fan_in, 1)) if "norm" not in k else 0.2
        t = torch.randn(s, generator=g) * scale
        if "norm" in k and k.endswith("weight"):
            t = 1.0 + t
        out[k] = t
    return out


def reference_forward(
    sd: dict[str, torch.Tensor], cfg: dict, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, cam: torch.Tensor
) -> torch.Tensor:
    """ReCamMaster's DiT written from the equations with plain torch ops on Wan-original-named weights."""
    heads = cfg["num_attention_heads"]
    dim = heads * cfg["attention_head_dim"]
    hd = cfg["attention_head_dim"]
    eps = cfg["eps"]
    pt, ph, pw = cfg["patch_size"]
    b, c, f, h, w = x.shape
    gf, gh, gw = f // pt, h // ph, w // pw
    n = gf * gh * gw

    def lin(v: torch.Tensor, name: str) -> torch.Tensor:
        return v @ sd[name + ".weight"].T + sd[name + ".bias"]

    def layer_norm(v: torch.Tensor) -> torch.Tensor:
        mu = v.mean(-1, keepdim=True)
        var = ((v - mu) ** 2).mean(-1, keepdim=True)
        return (v - mu) / torch.sqrt(var + eps)

    def rms(v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps) * weight

    def gelu_tanh(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))

    def silu(v: torch.Tensor) -> torch.Tensor:
        return v * torch.sigmoid(v)

    # patch embedding as a matrix product over (c, pt, ph, pw) patches, tokens ordered (f, h, w)
    patches = x.reshape(b, c, gf, pt, gh, ph, gw, pw).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, n, -1)
    tokens = patches @ sd["patch_embedding.weight"].reshape(dim, -1).T + sd["patch_embedding.bias"]

    # sinusoidal time embedding [cos, sin]
    half = cfg["freq_dim"] // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
    arg = t.double()[:, None] * freqs[None]
    sinus = torch.cat([torch.cos(arg), torch.sin(arg)], 1).float()
    e = lin(silu(lin(sinus, "time_embedding.0")), "time_embedding.2")
    e0 = lin(silu(e), "time_projection.1").reshape(b, 6, dim)
    ctx = lin(gelu_tanh(lin(text, "text_embedding.0")), "text_embedding.2")

    # 3D RoPE: head dim split (t, h, w) = (hd - 4*(hd//6), 2*(hd//6), 2*(hd//6)), pairs (2i, 2i+1) rotated
    dh = 2 * (hd // 6)
    dt = hd - 2 * dh
    angles = []
    for d, pos in ((dt, torch.arange(gf)), (dh, torch.arange(gh)), (dh, torch.arange(gw))):
        inv = 1.0 / torch.pow(10000.0, torch.arange(0, d, 2, dtype=torch.float64) / d)
        angles.append(pos.double()[:, None] * inv[None])
    ang = torch.cat(
        [
            angles[0][:, None, None, :].expand(gf, gh, gw, -1),
            angles[1][None, :, None, :].expand(gf, gh, gw, -1),
            angles[2][None, None, :, :].expand(gf, gh, gw, -1),
        ],
        -1,
    ).reshape(n, hd // 2)
    cos, sin = torch.cos(ang).float(), torch.sin(ang).float()

    def rope(v: torch.Tensor) -> torch.Tensor:  # v (b, n, heads, hd)
        v1, v2 = v[..., 0::2], v[..., 1::2]
        out = torch.empty_like(v)
        out[..., 0::2] = v1 * cos[None, :, None] - v2 * sin[None, :, None]
        out[..., 1::2] = v1 * sin[None, :, None] + v2 * cos[None, :, None]
        return out

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # (b, s, heads, hd)
        logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
        return torch.einsum("bhqk,bkhd->bqhd", torch.softmax(logits, -1), v).reshape(q.shape[0], q.shape[1], dim)

    xs = tokens
    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        mod = (sd[p + "modulation"] + e0).unbind(1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (m[:, None] for m in mod)
        a = layer_norm(xs) * (1 + scale_msa) + shift_msa
        ce = lin(cam, p + "cam_encoder")  # (b, T, dim)
        ce = ce.repeat(1, 2, 1)  # source half repeats the target cameras
        a = a + ce[:, :, None, :].expand(b, gf, gh * gw, dim).reshape(b, n, dim)
        q = rope(rms(lin(a, p + "self_attn.q"), sd[p + "self_attn.norm_q.weight"]).reshape(b, n, heads, hd))
        k = rope(rms(lin(a, p + "self_attn.k"), sd[p + "self_attn.norm_k.weight"]).reshape(b, n, heads, hd))
        v = lin(a, p + "self_attn.v").reshape(b, n, heads, hd)
        y = lin(lin(attention(q, k, v), p + "self_attn.o"), p + "projector")
        xs = xs + gate_msa * y
        a = layer_norm(xs) * sd[p + "norm3.weight"] + sd[p + "norm3.bias"]
        q = rms(lin(a, p + "cross_attn.q"), sd[p + "cross_attn.norm_q.weight"]).reshape(b, n, heads, hd)
        k = rms(lin(ctx, p + "cross_attn.k"), sd[p + "cross_attn.norm_k.weight"]).reshape(b, -1, heads, hd)
        v = lin(ctx, p + "cross_attn.v").reshape(b, -1, heads, hd)
        xs = xs + lin(attention(q, k, v), p + "cross_attn.o")
        a = layer_norm(xs) * (1 + scale_mlp) + shift_mlp
        xs = xs + gate_mlp * lin(gelu_tanh(lin(a, p + "ffn.0")), p + "ffn.2")

    shift, scale = (sd["head.modulation"] + e[:, None]).unbind(1)
    out = lin(layer_norm(xs) * (1 + scale[:, None]) + shift[:, None], "head.head")
    out = out.reshape(b, gf, gh, gw, pt, ph, pw, -1)
    return torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, -1, gf * pt, gh * ph, gw * pw)


def inputs(seed: int = 0, t_frames: int = 2, h: int = 4, w: int = 6, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 16, 2 * t_frames, h, w, generator=g)
    t = torch.rand(batch, generator=g) * 1000
    text = torch.randn(batch, 5, CFG["text_dim"], generator=g)
    cam = torch.randn(batch, t_frames, 12, generator=g)
    return x, t, text, cam


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, torch.Tensor]:
    """Synthetic ReCamMaster checkpoint in DiffSynth names with non-trivial camera modules."""
    return random_checkpoint({**wan_original_keys(CFG), **camera_keys(CFG)}, seed=1)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# --------------------------------------------------------------------------- equivalence
def test_matches_independent_reference(checkpoint):
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    x, t, text, cam = inputs()
    with torch.no_grad():
        out = model(x, t, text, cam)[0]
    ref = reference_forward(checkpoint, CFG, x, t, text, cam)
    assert out.shape == x.shape
    assert rel_err(out, ref) < 1e-5


def test_fast_attention_matches_reference(checkpoint):
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    model.set_fast_attention(True)
    x, t, text, cam = inputs(seed=3)
    with torch.no_grad():
        out = model(x, t, text, cam)[0]
    assert rel_err(out, reference_forward(checkpoint, CFG, x, t, text, cam)) < 1e-5


def test_camera_changes_output(checkpoint):
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    x, t, text, cam = inputs()
    with torch.no_grad():
        a = model(x, t, text, cam)[0]
        b = model(x, t, text, cam + torch.randn_like(cam))[0]
    assert rel_err(a[:, :, :2], b[:, :, :2]) > 1e-2


def test_swapping_source_and_target_changes_output(checkpoint):
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    x, t, text, cam = inputs()
    swapped = torch.cat([x[:, :, 2:], x[:, :, :2]], dim=2)
    with torch.no_grad():
        a = model(x, t, text, cam)[0]
        b = model(swapped, t, text, cam)[0]
    # were the model blind to frame order, b's target half would equal a's source half
    assert rel_err(b[:, :, :2], a[:, :, 2:]) > 1e-2
    assert rel_err(b[:, :, :2], a[:, :, :2]) > 1e-2


def test_initialised_camera_modules_reduce_to_wan(checkpoint):
    """cam_encoder = 0 and projector = I: the camera is ignored and the block is Wan's own."""
    wan_only = {k: v for k, v in checkpoint.items() if not convert.is_camera_key(k)}
    model = ReCamMasterTransformer.from_wan_original(wan_only, config="tiny")
    x, t, text, cam = inputs()
    with torch.no_grad():
        a = model(x, t, text, cam)[0]
        b = model(x, t, text, torch.randn_like(cam))[0]
    torch.testing.assert_close(a, b)
    zero_cam = dict(checkpoint)
    for k in camera_keys(CFG):
        dim = zero_cam[k].shape[0]
        if "cam_encoder" in k:
            zero_cam[k] = torch.zeros_like(zero_cam[k])
        elif k.endswith("weight"):
            zero_cam[k] = torch.eye(dim)
        else:
            zero_cam[k] = torch.zeros(dim)
    ref = reference_forward(zero_cam, CFG, x, t, text, cam)
    assert rel_err(a, ref) < 1e-5


def test_only_trainable_parameters_get_gradients(checkpoint):
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    params = model.freeze_for_recammaster()
    names = set(model.trainable_parameter_names())
    assert len(params) == len(names) == CFG["num_layers"] * (10 + 4)
    assert all(n.split(".")[2] in ("attn1", "cam_encoder", "projector") for n in names)
    x, t, text, cam = inputs()
    out = model(x, t, text, cam)[0]
    out[:, :, :2].pow(2).mean().backward()
    for n, p in model.named_parameters():
        if n in names:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None and not p.requires_grad, n


def trainable_grads(checkpoint, recompute=None, fast=False, target_only=False, seed=0) -> torch.Tensor:
    """Gradients of all trainable parameters for the target-half loss, under one recomputation setting:
    None, "blocks" (whole-block checkpointing), "partial-blocks" (only the first block) or a selective mode."""
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    model.freeze_for_recammaster()
    if fast:
        model.set_fast_attention(True)
    if recompute in ("blocks", "partial-blocks"):
        model.enable_gradient_checkpointing()
        model.recompute_blocks = 1 if recompute == "partial-blocks" else None
    elif recompute is not None:
        model.set_selective_recompute(recompute)
    x, t, text, cam = inputs(seed=seed)
    out = model(x, t, text, cam, target_only=target_only)[0]
    out[:, :, : x.shape[2] // 2].square().mean().backward()
    return torch.cat([p.grad.flatten() for p in model.trainable_parameters()])


def test_gradient_checkpointing_gives_same_gradients(checkpoint):
    torch.testing.assert_close(trainable_grads(checkpoint, "blocks"), trainable_grads(checkpoint))


@pytest.mark.parametrize("mode", ["attention", "attention+qkv", "partial-blocks"])
def test_recompute_modes_give_same_gradients(checkpoint, mode):
    ref = trainable_grads(checkpoint, fast=True)
    torch.testing.assert_close(trainable_grads(checkpoint, mode, fast=True), ref)
    with pytest.raises(ValueError, match="selective recompute"):
        ReCamMasterTransformer.tiny().set_selective_recompute("everything")


@pytest.mark.parametrize("setup", ["stock", "fast", "fast+fusions"])
def test_target_only_equals_target_half(checkpoint, setup):
    """``target_only`` (what sampling and the loss use) = the target half of the full output, on every path."""
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    if setup != "stock":
        model.set_fast_attention(True, inference_fusions="all" if setup == "fast+fusions" else ())
    x, t, text, cam = inputs(seed=5)
    with torch.no_grad():
        full = model(x, t, text, cam)[0]
        (half,) = model(x, t, text, cam, target_only=True)
    assert half.shape == (x.shape[0], x.shape[1], x.shape[2] // 2, *x.shape[3:])
    torch.testing.assert_close(half, full[:, :, : x.shape[2] // 2], rtol=1e-5, atol=1e-6)
    assert rel_err(half, reference_forward(checkpoint, CFG, x, t, text, cam)[:, :, :2]) < 1e-5


@pytest.mark.parametrize("skip_last", [False, True])
def test_compile_blocks_skip_last_compiles_one_graph(checkpoint, skip_last):
    """``recam infer`` compiles every block but the last: the ``target_only`` call of the last block would be a
    second graph. Counted by dynamo (eager backend, so no inductor build on the CPU); same output as uncompiled."""
    import torch._dynamo

    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    model.set_fast_attention(True)
    x, t, text, cam = inputs(seed=6)
    with torch.no_grad():
        ref = model(x, t, text, cam, target_only=True)[0]
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        model.compile_blocks(skip_last=skip_last, backend="eager")
        compiled = [b._compiled_call_impl is not None for b in model.blocks]
        out = model(x, t, text, cam, target_only=True)[0]
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    assert compiled == [True] * (len(model.blocks) - 1) + [not skip_last]
    assert graphs == (1 if skip_last else 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_target_only_skips_the_source_half_of_the_last_block(checkpoint):
    """Counted matmul/attention FLOPs drop by the last block's source-half queries, cross-attention, FFN and
    output projections and the head's source half; nothing else."""
    from torch.utils.flop_counter import FlopCounterMode

    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    # the math SDPA backend decomposes attention into counted matmuls; the GELU epilogue op is not counted
    model.set_fast_attention(True, "math", "math", inference_fusions=("qk_norm_rope", "out_proj"))
    x, t, text, cam = inputs(seed=6, batch=1)
    flops = []
    for target_only in (False, True):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, t, text, cam, target_only=target_only)
        flops.append(counter.get_total_flops())
    s = x.shape[2] * x.shape[3] * x.shape[4] // 4  # tokens (patch 1x2x2)
    d, ffn, heads_dim = DIM, CFG["ffn_dim"], DIM
    n_text, c_out = text.shape[1], CFG["out_channels"] * 4
    half = s // 2
    saved = (
        2 * half * s * heads_dim * 2  # self-attention QK^T and PV for the source queries
        + 2 * half * d * d  # merged out-projection + projector
        + 2 * half * d * d + 2 * half * n_text * heads_dim * 2 + 2 * half * d * d  # cross-attn q, attention, out
        + 2 * half * d * ffn * 2  # FFN up and down
        + 2 * half * d * c_out  # head
    )
    assert flops[0] - flops[1] == saved
    # the analytic count used for MFU also drops the source-half queries (which the fused QKV GEMM still
    # computes) and counts out-projection and projector as two GEMMs (merged into one by the out_proj fusion)
    f_full, f_tgt = (flops_per_forward(CFG, x.shape[2], x.shape[3], x.shape[4], n_text, t_o) for t_o in (False, True))
    assert f_full["total"] - f_tgt["total"] == saved + 2 * (2 * half * d * d)


@pytest.mark.parametrize("recompute", ["attention+qkv", "blocks"])
def test_target_only_gives_the_same_training_gradients(checkpoint, recompute):
    full = trainable_grads(checkpoint, recompute, fast=True, seed=7)
    half = trainable_grads(checkpoint, recompute, fast=True, target_only=True, seed=7)
    torch.testing.assert_close(half, full, rtol=1e-5, atol=1e-7)


def test_bad_inputs_raise():
    model = ReCamMasterTransformer.tiny()
    x, t, text, cam = inputs()
    with pytest.raises(ValueError, match="cam_emb"):
        model(x, t, text, cam[:, :1])
    with pytest.raises(ValueError, match="even"):
        model(x[:, :, :3], t, text, cam)


# --------------------------------------------------------------------------- key mapping
def test_wan_original_mapping_places_every_tensor(checkpoint):
    wan_only = {k: v for k, v in checkpoint.items() if not convert.is_camera_key(k)}
    model = ReCamMasterTransformer.from_wan_original(dict(wan_only), config="tiny")
    sd = model.state_dict()
    assert torch.equal(sd["blocks.1.norm2.weight"], wan_only["blocks.1.norm3.weight"])  # cross-attn norm swap
    assert torch.equal(sd["blocks.0.attn1.to_out.0.weight"], wan_only["blocks.0.self_attn.o.weight"])
    assert torch.equal(sd["blocks.1.attn2.to_k.bias"], wan_only["blocks.1.cross_attn.k.bias"])
    assert torch.equal(sd["blocks.0.ffn.net.0.proj.weight"], wan_only["blocks.0.ffn.0.weight"])
    assert torch.equal(sd["scale_shift_table"], wan_only["head.modulation"])
    assert torch.equal(sd["condition_embedder.time_proj.weight"], wan_only["time_projection.1.weight"])
    # camera modules stay at ReCamMaster's initialisation
    assert torch.count_nonzero(sd["blocks.0.cam_encoder.weight"]) == 0
    assert torch.equal(sd["blocks.1.projector.weight"], torch.eye(DIM))
    # export gives back exactly the Wan names + camera keys
    exported = model.recammaster_state_dict()
    assert set(exported) == set(wan_only) | set(camera_keys(CFG))
    for k, v in wan_only.items():
        assert torch.equal(exported[k], v), k


def test_round_trip_all_namings(checkpoint, tmp_path: Path):
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    exported = model.recammaster_state_dict()
    assert set(exported) == set(checkpoint)
    for k in checkpoint:
        assert torch.equal(exported[k], checkpoint[k]), k
    back = convert.to_diffusers(exported)
    assert set(back) == set(model.state_dict())
    # wrapped names (Lightning / DDP / ComfyUI prefixes) and file formats
    torch.save({"state_dict": {"module." + k: v for k, v in checkpoint.items()}}, tmp_path / "step1.ckpt")
    from safetensors.torch import save_file

    save_file({"model.diffusion_model." + k: v.contiguous() for k, v in checkpoint.items()}, tmp_path / "w.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "diffusers.safetensors")
    x, t, text, cam = inputs()
    with torch.no_grad():
        want = model(x, t, text, cam)[0]
    for name in ("step1.ckpt", "w.safetensors", "diffusers.safetensors"):
        other = ReCamMasterTransformer.tiny()
        other.load_recammaster_checkpoint(tmp_path / name)
        with torch.no_grad():
            torch.testing.assert_close(other(x, t, text, cam)[0], want, rtol=0, atol=0)


def test_strict_loading_reports_missing_and_unexpected(checkpoint, tmp_path: Path):
    model = ReCamMasterTransformer.tiny()
    broken = dict(checkpoint)
    del broken["blocks.1.projector.weight"]
    broken["blocks.0.extra_thing.weight"] = torch.zeros(3)
    path = tmp_path / "broken.ckpt"
    torch.save(broken, path)
    with pytest.raises(KeyError) as err:
        model.load_recammaster_checkpoint(path)
    msg = str(err.value)
    assert "broken.ckpt" in msg and "blocks.1.projector.weight" in msg and "blocks.0.extra_thing.weight" in msg
    missing, unexpected = model.load_recammaster_checkpoint(path, strict=False)
    assert missing == ["blocks.1.projector.weight"]
    assert unexpected == ["blocks.0.extra_thing.weight"]
    wan_only = {k: v for k, v in checkpoint.items() if not convert.is_camera_key(k)}
    with pytest.raises(KeyError, match="cam_encoder"):  # a plain Wan file is not a ReCamMaster checkpoint
        ReCamMasterTransformer.tiny().load_recammaster_checkpoint(wan_only)
    incomplete = dict(wan_only)
    del incomplete["blocks.0.self_attn.q.weight"]
    with pytest.raises(KeyError, match="attn1.to_q.weight"):
        ReCamMasterTransformer.from_wan_original(incomplete, config="tiny")
    wrong = dict(checkpoint)
    wrong["blocks.0.cam_encoder.weight"] = torch.zeros(DIM, 7)
    with pytest.raises(ValueError, match="cam_encoder.weight"):
        ReCamMasterTransformer.tiny().load_recammaster_checkpoint(wrong)


def test_full_config_builds_wan_1_3b_shapes():
    cfg = load_config(None)
    with torch.device("meta"):
        model = ReCamMasterTransformer.from_config_file(None)
    n_params = sum(p.numel() for p in model.parameters())
    n_cam = sum(p.numel() for n, p in model.named_parameters() if convert.is_camera_key(n))
    assert cfg["num_layers"] == 30 and model.config.num_attention_heads * model.config.attention_head_dim == 1536
    assert n_cam == 30 * (12 * 1536 + 1536 + 1536 * 1536 + 1536)
    assert 1.40e9 < n_params - n_cam < 1.45e9  # Wan2.1-T2V-1.3B transformer has 1.419e9 parameters
    shapes = {k: tuple(v.shape) for k, v in model.recammaster_state_dict().items()}
    assert shapes == {**wan_original_keys(cfg), **camera_keys(cfg)}


# --------------------------------------------------------------------------- scheduler
def test_sigmas_match_reference_formula():
    s = np.linspace(1.0, 0.0, 51)[:-1]
    expected = 5.0 * s / (1 + 4.0 * s)
    sig = recammaster_sigmas(50, 5.0)
    assert sig.shape == (50,)
    np.testing.assert_allclose(sig.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(timesteps_from_sigmas(sig).numpy(), expected * 1000, rtol=1e-6)
    assert float(sig[0]) == 1.0 and float(sig[-1]) > 0
    with pytest.raises(ValueError):
        recammaster_sigmas(0)


def test_euler_integrates_linear_flow_exactly():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    sig = recammaster_sigmas(7)
    x = add_noise(x0, noise, sig[0])
    for s, s_next in zip(sig, next_sigmas(sig), strict=True):
        x = euler_step(x, velocity_target(x0, noise), s, s_next)
    torch.testing.assert_close(x, x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cfg_combine(torch.ones(2), torch.zeros(2), 5.0), torch.full((2,), 5.0))
    w = training_weights()
    assert w.shape == (1000,) and abs(float(w.mean()) - 1.0) < 1e-4 and float(w.min()) == 0.0


# --------------------------------------------------------------------------- attention kernels
def test_gpu_kernels_fall_back_to_sdpa_off_cuda(checkpoint):
    """"fa4" (FlashAttention-4) is CUDA-only: elsewhere the processor runs PyTorch's SDPA, same outputs."""
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    model.set_fast_attention(True, self_backend="fa4", cross_backend="fa4")
    x, t, text, cam = inputs(seed=8)
    with torch.no_grad():
        out = model(x, t, text, cam)[0]
    assert rel_err(out, reference_forward(checkpoint, CFG, x, t, text, cam)) < 1e-5
    with pytest.raises(ValueError, match="attention backend"):
        model.set_fast_attention(True, self_backend="fa5")
    from recam.attn_kernels import resolve_backend

    assert resolve_backend("auto", torch.device("cpu")) is None  # never a GPU-only kernel by default on a CPU
    assert resolve_backend("fp8", torch.device("cpu")) == "fp8"


def test_fp8_attention_rounds_q_and_k_per_block():
    """The FP8 path quantises q and k per (128-token block, head) to float8 e4m3: close to exact attention,
    not equal to it, and exactly what dequantised q/k through the same blocks give."""
    from recam.attn_kernels import FP8_BLOCK, attention, fp8_attention, fp8_quantize_blocks

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 300, 2, 16, generator=g) for _ in range(3))
    q[:, :FP8_BLOCK] *= 50  # one loud block: its scale must not flatten the others
    exact = attention(q, k, v, "math")
    with torch.no_grad():
        fp8 = fp8_attention(q, k, v)
    # rows of the quiet blocks (the loud block's logits of ~50 amplify any rounding)
    assert 1e-4 < rel_err(fp8[:, FP8_BLOCK:], exact[:, FP8_BLOCK:]) < 5e-2
    x8, scales = fp8_quantize_blocks(q)
    assert x8.dtype == torch.float8_e4m3fn and x8.shape == (1, 2, 3 * FP8_BLOCK, 16) and scales.shape == (1, 2, 3)
    deq = (x8.float().unflatten(2, (3, FP8_BLOCK)) * scales[..., None, None]).flatten(2, 3)[:, :, :300]
    assert rel_err(deq.transpose(1, 2)[:, FP8_BLOCK:], q[:, FP8_BLOCK:]) < 5e-2  # quiet blocks keep precision
    k8, k_scales = fp8_quantize_blocks(k)
    k_deq = (k8.float().unflatten(2, (3, FP8_BLOCK)) * k_scales[..., None, None]).flatten(2, 3)[:, :, :300]
    manual = torch.softmax(deq @ k_deq.mT / 4, dim=-1)  # 1 / sqrt(16)
    torch.testing.assert_close(fp8, (manual @ v.transpose(1, 2)).transpose(1, 2))


def test_fp8_backend_is_inference_only(checkpoint):
    model = ReCamMasterTransformer.tiny()
    model.load_recammaster_checkpoint(checkpoint)
    x, t, text, cam = inputs(seed=9)
    ref = reference_forward(checkpoint, CFG, x, t, text, cam)
    model.set_fast_attention(True, self_backend="fp8")
    with torch.no_grad():
        fp8 = model(x, t, text, cam)[0]
    assert 0 < rel_err(fp8, ref) < 5e-2
    trained = model(x, t, text, cam)[0]  # autograd on: exact attention
    assert rel_err(trained.detach(), ref) < 1e-5


def test_fa4_forward_config_parsing_and_env(tmp_path: Path) -> None:
    """RECAM_FA4_FWD round-trips through parse/format, rejects bad tiles and flags, and is read at import."""
    import subprocess
    import sys

    from recam.attn_kernels import format_fa4_fwd_config, parse_fa4_fwd_config

    assert parse_fa4_fwd_config("default") == {} == parse_fa4_fwd_config("")
    cfg = parse_fa4_fwd_config("128x176,nors,ol")
    assert cfg == {"tile_mn": (128, 176), "mma_pv_is_rs": False, "intra_wg_overlap": True}
    for text in ("128x176,nors,ol", "192x128", "64x64,rs,nool", "default"):
        assert format_fa4_fwd_config(parse_fa4_fwd_config(text)) == text
    for bad, msg in (("128x100", "multiple of 16"), ("96x128", "out of range"), ("128", "MxN"),
                     ("128x128,fast", "unknown flag")):
        with pytest.raises(ValueError, match=msg):
            parse_fa4_fwd_config(bad)
    code = "from recam.attn_kernels import FA4_FWD_CONFIG as c; print(c)"
    env = {**os.environ, "RECAM_FA4_FWD": "192x112,nors"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{'tile_mn': (192, 112), 'mma_pv_is_rs': False}"


@pytest.mark.parametrize("given", [None, "0"])
def test_fa4_disk_cache_is_on_unless_the_user_says_otherwise(given: str | None) -> None:
    """recam turns on FA4's own on-disk kernel cache (flash_attn/cute/cache_utils.py reads
    FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED == "1" at import) and leaves a value the user set alone."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED"}
    if given is not None:
        env["FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED"] = given
    code = "import os, recam.attn_kernels; print(os.environ['FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("1" if given is None else given)
