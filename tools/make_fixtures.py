#!/usr/bin/env python3
"""Make tiny random Gemma 4 checkpoints plus Hugging Face reference outputs (parity fixtures).

Runs where transformers (5.17) and torch are installed. Every model runs on the CPU in eager attention,
for determinism. For each fixture it writes into OUT/<name>/:

  config.json, model.safetensors (or model-0000k-of-0000n.safetensors + model.safetensors.index.json),
  generation_config.json       -- all from HF `save_pretrained` (one fixture gets a hand-made generation config)
  inputs.safetensors           -- the `gemma4 forward --inputs` format:
                                    input_ids I64 [T]
                                    pixel_values F32 [N, D] + image_position_ids I64 [N, 2]   (optional)
                                    input_features F32 [M, A]                                 (optional)
  reference.safetensors        -- logits F32 [T, V] (after the final softcap, fp32 compute),
                                  logits_bf16 F32 [T, V] (bf16-stored fixtures only: native bf16 HF run),
                                  gen_prompt_ids I64 [P], gen_ids I64 [12] (greedy, eos ignored),
                                  gen_ids_eos I64 [k] (greedy with the eos ids active; only where eos fires),
                                  gen_ids_bf16 I64 [12] (bf16-stored fixtures only: native bf16 greedy, eos ignored),
                                  logits_f32_bf16scale F32 [T, V], gen_ids_f32_bf16scale I64 [12] (bf16-stored
                                  fixtures only: fp32 compute on the upcast weights, embedding scales rounded to bf16)

and OUT/fixtures_manifest.json. See tools/README.md ("Parity fixtures") for the exact HF calls.

Usage:  python3 make_fixtures.py --out DIR [--only name1,name2]
"""

import argparse
import copy
import json
import math
import os
import sys
import time
import traceback

import torch

import transformers
from safetensors.torch import save_file
from transformers import GenerationConfig

torch.set_grad_enabled(False)

MAX_NEW = 12
DEVICE = "cpu"

# Token ids used by every fixture (all inside the tiny vocabularies).
PAD, EOS, BOS = 0, 1, 2
SPECIAL_512 = dict(
    boi_token_id=500,
    eoi_token_id=501,
    image_token_id=502,
    video_token_id=503,
    boa_token_id=504,
    eoa_token_index=505,
    audio_token_id=506,
)
SPECIAL_256 = dict(
    boi_token_id=250,
    eoi_token_id=251,
    image_token_id=252,
    video_token_id=253,
    boa_token_id=254,
    eoa_token_index=255,
    audio_token_id=249,
)


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Randomisation: every parameter and the layer_scalar buffers get non-trivial values.
# ----------------------------------------------------------------------------------------------------------------


def randomize(model, seed, embed_std, final_norm_scale):
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g, dtype=torch.float32)

    summary = {"params": 0, "norm_like": 0, "bias": 0, "matrix": 0, "layer_scalar": 0}
    for name, p in model.named_parameters():
        summary["params"] += p.numel()
        if p.ndim == 1:
            if name.endswith(".bias"):
                v = 0.1 * randn(p.shape)
                summary["bias"] += 1
            else:
                # RMSNorm / LayerNorm weights, router scale, per_expert_scale, per_dim_scale ...
                v = 1.0 + 0.3 * randn(p.shape)
                if name.endswith("language_model.norm.weight") or name == "model.norm.weight":
                    v = v * final_norm_scale  # widen the logit range so the final softcap matters
                summary["norm_like"] += 1
        else:
            if "embed_tokens" in name:  # embed_tokens and embed_tokens_per_layer (tables, fan-in meaningless)
                v = embed_std * randn(p.shape)
            else:
                fan_in = p.shape[-1]
                v = randn(p.shape) / math.sqrt(fan_in)
            summary["matrix"] += 1
        p.data.copy_(v.to(p.dtype))
    for name, b in model.named_buffers():
        if name.endswith("layer_scalar"):
            b.data.copy_((0.5 + torch.rand(b.shape, generator=g)).to(b.dtype))
            summary["layer_scalar"] += 1
    return summary


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------------------------


def unified_text_cfg(**over):
    d = dict(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=2,  # GQA (group 2) on sliding layers
        head_dim=16,
        global_head_dim=32,  # 2x head_dim on full layers
        num_global_key_value_heads=1,  # MQA on full layers (K=V)
        attention_k_eq_v=True,
        layer_types=["sliding_attention"] * 2 + ["full_attention"] + ["sliding_attention"] * 2 + ["full_attention"],
        sliding_window=8,
        final_logit_softcapping=30.0,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=BOS,
        tie_word_embeddings=True,
        use_bidirectional_attention="vision",
        initializer_range=0.05,
    )
    d.update(over)
    return d


def make_unified_cfg():
    from transformers import Gemma4UnifiedConfig

    return Gemma4UnifiedConfig(
        text_config=unified_text_cfg(),
        vision_config=dict(
            patch_size=4,
            pooling_kernel_size=2,  # model patch 8 px -> patch dim 8*8*3 = 192
            mm_embed_dim=24,
            mm_posemb_size=6,
            output_proj_dims=24,
            rms_norm_eps=1e-6,
        ),
        audio_config=dict(audio_embed_dim=16, rms_norm_eps=1e-6),
        tie_word_embeddings=True,
        **SPECIAL_512,
    )


def make_unified_text_causal_cfg():
    from transformers import Gemma4UnifiedTextConfig

    # Non-default RoPE parameters on purpose (no hard-coded 0.25 / 1e6 / 1e4 can pass this fixture).
    rope = {
        "sliding_attention": {"rope_type": "default", "rope_theta": 5000.0},
        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.5, "rope_theta": 200000.0},
    }
    return Gemma4UnifiedTextConfig(**unified_text_cfg(rope_parameters=rope, sliding_window=6))


def gemma4_text_common(**over):
    d = dict(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=32,
        num_attention_heads=4,
        head_dim=16,
        global_head_dim=32,
        sliding_window=8,
        final_logit_softcapping=30.0,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=BOS,
        tie_word_embeddings=True,
        initializer_range=0.05,
        hidden_size_per_layer_input=0,
        vocab_size_per_layer_input=512,
        enable_moe_block=False,
        num_kv_shared_layers=0,
        use_double_wide_mlp=False,
        attention_k_eq_v=False,
    )
    d.update(over)
    return d


def make_gemma4_ple_cfg():
    from transformers import Gemma4Config

    text = gemma4_text_common(
        vocab_size=256,
        vocab_size_per_layer_input=256,
        num_hidden_layers=10,
        layer_types=(["sliding_attention"] * 4 + ["full_attention"]) * 2,  # 4:1 like E2B
        num_key_value_heads=1,
        hidden_size_per_layer_input=8,
        num_kv_shared_layers=5,  # layers 5..9 share K/V of layer 3 (sliding) and 4 (full)
        use_double_wide_mlp=True,
        attention_k_eq_v=False,  # full layers keep v_proj, kv heads = num_key_value_heads
    )
    vision = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=8,
        patch_size=4,
        pooling_kernel_size=2,
        position_embedding_size=16,
    )
    audio = dict(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        subsampling_conv_channels=[8, 4],
        conv_kernel_size=3,
        output_proj_dims=16,
    )
    return Gemma4Config(
        text_config=text, vision_config=vision, audio_config=audio, tie_word_embeddings=True, **SPECIAL_256
    )


def make_gemma4_moe_cfg():
    from transformers import Gemma4TextConfig

    return Gemma4TextConfig(
        **gemma4_text_common(
            vocab_size=256,
            vocab_size_per_layer_input=256,
            num_hidden_layers=6,
            layer_types=None,  # default rule: (i+1) % 6 ? sliding : full  -> [s,s,s,s,s,f]
            num_key_value_heads=4,  # MHA on sliding layers
            attention_k_eq_v=True,
            num_global_key_value_heads=2,  # 2 KV heads (group 2) on the K=V full layers, like 26B-A4B
            enable_moe_block=True,
            num_experts=8,
            top_k_experts=2,
            moe_intermediate_size=8,
        )
    )


# ----------------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------------


def text_ids(g, n, lo, hi):
    return torch.randint(lo, hi, (n,), generator=g, dtype=torch.int64)


def patchify(img, mp):
    """img [H, W, 3] -> rows [(H/mp)*(W/mp), mp*mp*3] flattened (row, col, channel); pos (x=kx, y=ky)."""
    H, W, _ = img.shape
    rows, pos = [], []
    for ky in range(H // mp):
        for kx in range(W // mp):
            rows.append(img[ky * mp : (ky + 1) * mp, kx * mp : (kx + 1) * mp, :].reshape(-1))
            pos.append([kx, ky])
    return torch.stack(rows), torch.tensor(pos, dtype=torch.int64)


def unified_inputs(cfg, seed):
    """Sequence with 2 images (6 + 4 soft tokens, each padded to 8 rows) and one audio clip (5 frames)."""
    g = torch.Generator().manual_seed(seed)
    mp = cfg.vision_config.patch_size * cfg.vision_config.pooling_kernel_size
    A = cfg.audio_config.audio_embed_dim
    max_soft = 8
    images = [(16, 24), (16, 16)]  # (H, W) pixels -> 2x3 and 2x2 model patches
    pv, pid, counts = [], [], []
    for H, W in images:
        img = torch.rand(H, W, 3, generator=g)
        rows, pos = patchify(img, mp)
        n = rows.shape[0]
        counts.append(n)
        rows = torch.cat([rows, torch.zeros(max_soft - n, rows.shape[1])])  # processor pads with zeros
        pos = torch.cat([pos, torch.full((max_soft - n, 2), -1, dtype=torch.int64)])
        pv.append(rows)
        pid.append(pos)
    pixel_values = torch.stack(pv)  # [num_images, max_soft, D]  (HF layout)
    image_position_ids = torch.stack(pid)  # [num_images, max_soft, 2]

    n_samples = 4 * A + A // 2  # last frame half zeros, as the feature extractor pads inside the frame
    wav = 0.1 * torch.randn(n_samples, generator=g)
    n_frames = (n_samples + A - 1) // A
    wav = torch.cat([wav, torch.zeros(n_frames * A - n_samples)])
    input_features = wav.view(1, n_frames, A)  # [num_audio, frames, A]  (HF layout)
    input_features_mask = torch.ones(1, n_frames, dtype=torch.bool)

    c = cfg
    lo, hi = 3, c.boi_token_id  # plain text ids below the special block
    seq = [torch.tensor([BOS]), text_ids(g, 3, lo, hi)]
    for n in counts:
        seq += [torch.tensor([c.boi_token_id] + [c.image_token_id] * n + [c.eoi_token_id]), text_ids(g, 2, lo, hi)]
    seq += [text_ids(g, 1, lo, hi)]
    seq += [torch.tensor([c.boa_token_id] + [c.audio_token_id] * n_frames + [c.eoa_token_index])]
    seq += [text_ids(g, 12, lo, hi)]
    input_ids = torch.cat(seq)
    return dict(
        input_ids=input_ids,
        pixel_values=pixel_values,
        image_position_ids=image_position_ids,
        input_features=input_features,
        input_features_mask=input_features_mask,
    )


def text_inputs(seed, T, lo, hi):
    g = torch.Generator().manual_seed(seed)
    return dict(input_ids=torch.cat([torch.tensor([BOS]), text_ids(g, T - 1, lo, hi)]))


def gen_prompt(seed, P, lo, hi):
    g = torch.Generator().manual_seed(seed + 1000)
    return torch.cat([torch.tensor([BOS]), text_ids(g, P - 1, lo, hi)])


# ----------------------------------------------------------------------------------------------------------------
# HF calls
# ----------------------------------------------------------------------------------------------------------------


def load(cls, path, dtype):
    kw = dict(dtype=dtype, attn_implementation="eager")
    try:
        m = cls.from_pretrained(path, experts_implementation="eager", **kw)
    except Exception as e:  # older/newer versions without the experts_implementation kwarg
        log(f"    (from_pretrained without experts_implementation: {type(e).__name__}: {str(e)[:120]})")
        m = cls.from_pretrained(path, **kw)
    for c in {id(m.config): m.config, id(m.config.get_text_config()): m.config.get_text_config()}.values():
        if hasattr(c, "_experts_implementation"):
            try:
                c._experts_implementation = "eager"
            except Exception:
                pass
    return m.to(DEVICE).eval()


def hf_forward(model, inp):
    """The reference forward: causal attention (no mm_token_type_ids), batch 1."""
    kw = dict(input_ids=inp["input_ids"][None], use_cache=False)
    if "pixel_values" in inp:
        kw["pixel_values"] = inp["pixel_values"]
        kw["image_position_ids"] = inp["image_position_ids"]
    if "input_features" in inp:
        kw["input_features"] = inp["input_features"]
        kw["input_features_mask"] = inp["input_features_mask"]
    out = model(**kw)
    return out.logits[0]


def hf_generate(model, prompt, ignore_eos):
    kw = dict(max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=PAD)
    if ignore_eos:
        # An eos id that cannot be produced (== vocab size): generation never stops early. The eos ids of the
        # model are NOT masked (unlike min_new_tokens), so this is "keep going past eos".
        kw["eos_token_id"] = model.config.get_text_config().vocab_size
    out = model.generate(input_ids=prompt[None], attention_mask=torch.ones_like(prompt)[None], **kw)
    return out[0, prompt.numel() :].clone()


def manual_greedy(model, prompt, suppress):
    """Greedy by repeated full forwards (no cache): cross-checks HF generate and that eos was ignored."""
    ids = prompt.clone()
    new, gaps = [], []
    for _ in range(MAX_NEW):
        logits = model(input_ids=ids[None], use_cache=False).logits[0, -1].float()
        if suppress:
            logits[torch.tensor(suppress)] = -float("inf")
        top = logits.topk(2).values
        gaps.append(float(top[0] - top[1]))
        t = int(logits.argmax())
        new.append(t)
        ids = torch.cat([ids, torch.tensor([t])])
    return torch.tensor(new, dtype=torch.int64), min(gaps)


def router_margins(model, inp):
    """Smallest gap between the k-th and (k+1)-th router probability over all tokens and MoE layers."""
    margins, hooks = [], []

    def hook(mod, args, out):
        probs = out[0].float()
        k = mod.config.top_k_experts
        srt = probs.sort(-1, descending=True).values
        margins.append(float((srt[:, k - 1] - srt[:, k]).min()))

    for n, m in model.named_modules():
        if type(m).__name__.endswith("TextRouter"):
            hooks.append(m.register_forward_hook(hook))
    if not hooks:
        return None
    hf_forward(model, inp)
    for h in hooks:
        h.remove()
    return min(margins)


def logit_stats(logits):
    lf = logits.float()
    am = lf.argmax(-1)
    return dict(
        min=float(lf.min()),
        max=float(lf.max()),
        std=float(lf.std()),
        distinct_argmax=int(am.unique().numel()),
        min_top1_top2_gap=float((lambda t: (t[:, 0] - t[:, 1]).min())(lf.topk(2, dim=-1).values)),
        T=int(lf.shape[0]),
    )


# ----------------------------------------------------------------------------------------------------------------
# Fixture builder
# ----------------------------------------------------------------------------------------------------------------

FIXTURES = {}


def fixture(name):
    def deco(fn):
        FIXTURES[name] = fn
        return fn

    return deco


def dir_files(path):
    return {f: os.path.getsize(os.path.join(path, f)) for f in sorted(os.listdir(path))}


def saved_keys(path):
    from safetensors import safe_open

    keys = {}
    for f in sorted(os.listdir(path)):
        if f.startswith("model") and f.endswith(".safetensors"):
            with safe_open(os.path.join(path, f), "pt") as sf:
                for k in sf.keys():
                    t = sf.get_slice(k)
                    keys[k] = (t.get_dtype(), list(t.get_shape()), f)
    return keys


def legacy_config_style(cls, out, drop_layer_types):
    """Rewrite config.json the way released checkpoints state the global layers: the keys `global_head_dim` and
    `num_global_key_value_heads` instead of `per_layer_config` (and optionally no `layer_types`, so that the default
    rule applies). Checks that HF derives the same per-layer geometry from the rewritten file."""
    path = os.path.join(out, "config.json")
    before = transformers.AutoConfig.from_pretrained(out).get_text_config()
    with open(path) as f:
        d = json.load(f)
    t = d["text_config"] if "text_config" in d else d
    plc = t.pop("per_layer_config")
    full = [int(i) for i in plc]
    t["global_head_dim"] = plc[str(full[0])]["head_dim"]
    t["num_global_key_value_heads"] = plc[str(full[0])].get("num_key_value_heads")
    if drop_layer_types:
        del t["layer_types"]
    with open(path, "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")
    after = transformers.AutoConfig.from_pretrained(out).get_text_config()
    same = list(before.layer_types) == list(after.layer_types) and json.dumps(
        before.to_dict().get("per_layer_config"), sort_keys=True, default=str
    ) == json.dumps(after.to_dict().get("per_layer_config"), sort_keys=True, default=str)
    log(f"    legacy config style: global_head_dim {t['global_head_dim']}, num_global_key_value_heads "
        f"{t['num_global_key_value_heads']}, layer_types dropped: {drop_layer_types}; same geometry: {same}")
    if not same:
        raise RuntimeError(f"legacy config rewrite changed the geometry: {before.to_dict()} vs {after.to_dict()}")
    return dict(global_head_dim=t["global_head_dim"], num_global_key_value_heads=t["num_global_key_value_heads"],
                layer_types_dropped=drop_layer_types)


def build(
    name,
    cls,
    cfg,
    seed,
    inputs,
    store_dtype,
    gen_lo,
    gen_hi,
    shard=None,
    custom_gen_config=False,
    soft_token_check=False,
    embed_std=0.1,
    final_norm_scale=14.0,
    legacy_config=None,
):
    out = os.path.join(ARGS.out, name)
    os.makedirs(out, exist_ok=True)
    info = dict(name=name, hf_class=cls.__name__, store_dtype=str(store_dtype).replace("torch.", ""), seed=seed)
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    info["randomize"] = randomize(model, seed, embed_std=embed_std, final_norm_scale=final_norm_scale)
    info["randomize"].update(embed_std=embed_std, final_norm_scale=final_norm_scale)
    info["params"] = count_params(model)
    if store_dtype != torch.float32:
        model = model.to(store_dtype)
    save_kw = {}
    if shard:
        save_kw["max_shard_size"] = shard
    model.save_pretrained(out, **save_kw)
    del model

    if legacy_config is not None:
        info["legacy_config_style"] = legacy_config_style(cls, out, drop_layer_types=legacy_config == "no_layer_types")
    info["config_json_style"] = "released (global_head_dim / num_global_key_value_heads)" if legacy_config else \
        "transformers 5.17 (per_layer_config)"

    keys = saved_keys(out)
    info["num_tensors"] = len(keys)
    info["lm_head_stored"] = any(k.endswith("lm_head.weight") for k in keys)
    info["tensor_dtypes"] = sorted({v[0] for v in keys.values()})
    log(f"[{name}] saved {len(keys)} tensors, dtypes {info['tensor_dtypes']}, files {list(dir_files(out))}")
    if ARGS.verbose_keys:
        for k, (dt, shp, f) in sorted(keys.items()):
            log(f"    {k:70s} {dt:5s} {shp} {f}")

    # ---- reference forward: fp32 compute (weights upcast where stored in bf16)
    m32 = load(cls, out, torch.float32)
    text_cfg = m32.config.get_text_config()
    if ARGS.print_configs:
        log(f"[{name}] text config after reload:\n" + json.dumps(text_cfg.to_dict(), default=str))
        log(f"[{name}] experts impl: {getattr(text_cfg, '_experts_implementation', None)}, "
            f"attn impl: {getattr(text_cfg, '_attn_implementation', None)}")
    logits = hf_forward(m32, inputs).float().contiguous()
    ref = {"logits": logits}
    info["logits"] = logit_stats(logits)
    log(f"[{name}] fp32 logits {tuple(logits.shape)} stats {info['logits']}")
    rm = router_margins(m32, inputs)
    if rm is not None:
        info["router_min_topk_margin"] = rm
        log(f"[{name}] MoE router: smallest top-k probability margin {rm:.3g}")
    T = logits.shape[0]
    if info["logits"]["distinct_argmax"] < T // 4 or info["logits"]["std"] < 1.0:
        log(f"[{name}] WARNING: weak logits (distinct argmax {info['logits']['distinct_argmax']}/{T})")

    # ---- causality check: changing the last token must leave every earlier position's logits unchanged
    ids2 = inputs["input_ids"].clone()
    ids2[-1] = 3 if int(ids2[-1]) != 3 else 4
    lc = hf_forward(m32, dict(inputs, input_ids=ids2)).float()
    info["causal_check_prefix_maxdiff"] = float((lc[:-1] - logits[:-1]).abs().max())
    info["causal_check_last_maxdiff"] = float((lc[-1] - logits[-1]).abs().max())
    log(f"[{name}] causal check: prefix maxdiff {info['causal_check_prefix_maxdiff']:.3g}, "
        f"last {info['causal_check_last_maxdiff']:.3g}")
    if info["causal_check_prefix_maxdiff"] > 1e-5:
        raise RuntimeError(f"{name}: reference forward is not causal")

    # ---- soft-token check (unified): logits must depend on valid pixel rows / audio, not on padding rows
    if soft_token_check:
        chk = {}
        ids = inputs["input_ids"]
        first_mm = int((ids == cfg.boi_token_id).nonzero()[0])
        first_aud = int((ids == cfg.audio_token_id).nonzero()[0])
        pv = inputs["pixel_values"].clone()
        valid = (inputs["image_position_ids"] != -1).all(-1)
        pv2 = pv.clone()
        pv2[valid] = torch.rand(pv2[valid].shape, generator=torch.Generator().manual_seed(7))
        l2 = hf_forward(m32, dict(inputs, pixel_values=pv2)).float()
        chk["pixels_valid_changed_maxdiff"] = float((l2 - logits).abs().max())
        chk["pixels_valid_prefix_unchanged"] = float((l2[:first_mm] - logits[:first_mm]).abs().max())
        pv3 = pv.clone()
        pv3[~valid] = 5.0
        l3 = hf_forward(m32, dict(inputs, pixel_values=pv3)).float()
        chk["pixels_padding_rows_maxdiff"] = float((l3 - logits).abs().max())
        af = inputs["input_features"].clone() * -1.7 + 0.05
        l4 = hf_forward(m32, dict(inputs, input_features=af)).float()
        chk["audio_changed_maxdiff"] = float((l4 - logits).abs().max())
        chk["audio_prefix_unchanged"] = float((l4[:first_aud] - logits[:first_aud]).abs().max())
        # without any media the placeholders are plain (pad-embedded) tokens: logits must differ
        l5 = hf_forward(m32, dict(input_ids=ids)).float()
        chk["no_media_maxdiff"] = float((l5 - logits).abs().max())
        ok = (
            chk["pixels_valid_changed_maxdiff"] > 1e-3
            and chk["pixels_valid_prefix_unchanged"] < 1e-5
            and chk["pixels_padding_rows_maxdiff"] < 1e-5
            and chk["audio_changed_maxdiff"] > 1e-3
            and chk["audio_prefix_unchanged"] < 1e-5
            and chk["no_media_maxdiff"] > 1e-3
        )
        chk["ok"] = ok
        info["soft_token_check"] = chk
        log(f"[{name}] soft-token check: {chk}")
        if not ok:
            raise RuntimeError(f"{name}: soft-token check failed: {chk}")

    # ---- greedy generation (eos ignored)
    # pick the first of a few random prompts whose greedy continuation is not a degenerate repetition
    best = None
    for attempt in range(10):
        p = gen_prompt(seed + 97 * attempt, 12, gen_lo, gen_hi)
        g = hf_generate(m32, p, ignore_eos=True)
        d = len(set(g.tolist()))
        if best is None or d > best[0]:
            best = (d, attempt, p, g)
        if d >= 8:
            break
    _, attempt, prompt, g0 = best
    ref["gen_prompt_ids"] = prompt
    gen_info = {"prompt_attempt": attempt, "distinct_generated": best[0]}
    if custom_gen_config:
        # 1) reveal what greedy picks without suppression; 2) suppress one of those tokens (plus EOI/EOA, as the
        # real config does); 3) pick an eos id that greedy (with suppression) produces at step k >= 4.
        s_tok = int(g0[1])
        suppress = sorted({s_tok, cfg.eoi_token_id, cfg.eoa_token_index})
        gc = GenerationConfig(
            bos_token_id=BOS,
            pad_token_id=PAD,
            eos_token_id=[EOS],
            suppress_tokens=suppress,
            do_sample=False,
        )
        gc.save_pretrained(out)
        m32 = load(cls, out, torch.float32)
        g1 = hf_generate(m32, prompt, ignore_eos=True)
        fresh = [i for i in range(1, MAX_NEW) if int(g1[i]) not in [int(t) for t in g1[:i]] and int(g1[i]) != EOS]
        later = [i for i in fresh if i >= 4]
        if not fresh:
            raise RuntimeError(f"{name}: no usable eos candidate in {g1.tolist()}")
        k = later[0] if later else fresh[-1]
        eos_extra = int(g1[k])
        gc.eos_token_id = [EOS, eos_extra]
        gc.save_pretrained(out)
        m32 = load(cls, out, torch.float32)
        gen_info.update(
            unsuppressed_gen_ids=g0.tolist(),
            suppress_tokens=suppress,
            eos_token_id=[EOS, eos_extra],
            eos_fires_at_step=k,
        )
        log(f"[{name}] generation_config: suppress {suppress}, eos {[EOS, eos_extra]} (unsuppressed greedy {g0.tolist()})")
    suppress = list(getattr(m32.generation_config, "suppress_tokens", None) or [])
    gen = hf_generate(m32, prompt, ignore_eos=True)
    man, gap = manual_greedy(m32, prompt, suppress)
    gen_info["manual_full_forward_greedy_matches"] = bool(torch.equal(gen, man))
    gen_info["min_greedy_top1_top2_gap"] = gap
    if not torch.equal(gen, man):
        log(f"[{name}] WARNING: generate {gen.tolist()} != manual greedy {man.tolist()}")
    ref["gen_ids"] = gen
    gen_eos = hf_generate(m32, prompt, ignore_eos=False)
    eos_ids = m32.generation_config.eos_token_id
    eos_ids = eos_ids if isinstance(eos_ids, list) else [eos_ids]
    gen_info["generation_config_eos"] = eos_ids
    gen_info["generation_config_suppress"] = suppress
    if gen_eos.numel() < MAX_NEW:
        ref["gen_ids_eos"] = gen_eos
        assert torch.equal(gen_eos, gen[: gen_eos.numel()]), (gen_eos, gen)
        assert int(gen_eos[-1]) in eos_ids
        gen_info["gen_ids_eos_len"] = int(gen_eos.numel())
    elif custom_gen_config:
        raise RuntimeError(f"{name}: eos did not fire: {gen_eos.tolist()}")
    log(f"[{name}] gen_ids {gen.tolist()}  eos-run {gen_eos.tolist()}  eos {eos_ids}")

    # ---- native bf16 run for bf16-stored checkpoints
    if store_dtype == torch.bfloat16:
        scales = {}
        for n, mod in m32.named_modules():
            if isinstance(getattr(mod, "embed_scale", None), torch.Tensor):
                old = float(mod.embed_scale)
                mod.embed_scale.fill_(float(torch.tensor(old).to(torch.bfloat16)))
                scales[n] = [old, float(mod.embed_scale)]
        ls = hf_forward(m32, inputs).float().contiguous()
        ref["logits_f32_bf16scale"] = ls
        info["logits_f32_bf16scale"] = dict(embed_scales=scales, maxdiff_vs_logits=float((ls - logits).abs().max()))
        log(f"[{name}] fp32 run with bf16-rounded embed scales {scales}: maxdiff vs logits {float((ls - logits).abs().max()):.3g}")
        gs = hf_generate(m32, prompt, ignore_eos=True)
        ref["gen_ids_f32_bf16scale"] = gs
        gen_info["gen_ids_f32_bf16scale_equal_gen_ids"] = bool(torch.equal(gs, gen))
        mb = load(cls, out, torch.bfloat16)
        lb = hf_forward(mb, inputs).float().contiguous()
        ref["logits_bf16"] = lb
        info["logits_bf16_vs_fp32"] = dict(
            maxdiff=float((lb - logits).abs().max()),
            cos=float(torch.nn.functional.cosine_similarity(lb.flatten(), logits.flatten(), dim=0)),
            top1_agree=float((lb.argmax(-1) == logits.argmax(-1)).float().mean()),
        )
        gb = hf_generate(mb, prompt, ignore_eos=True)
        ref["gen_ids_bf16"] = gb
        gen_info["gen_ids_bf16_equal_fp32"] = bool(torch.equal(gb, gen))
        log(f"[{name}] bf16 run: {info['logits_bf16_vs_fp32']}, gen_ids_bf16 {gb.tolist()}")
        del mb

    info["generation"] = gen_info

    # ---- write inputs / reference
    inp = {"input_ids": inputs["input_ids"].to(torch.int64).contiguous()}
    if "pixel_values" in inputs:
        pv = inputs["pixel_values"]
        inp["pixel_values"] = pv.reshape(-1, pv.shape[-1]).float().contiguous()
        inp["image_position_ids"] = inputs["image_position_ids"].reshape(-1, 2).to(torch.int64).contiguous()
    if "input_features" in inputs:
        af = inputs["input_features"]
        inp["input_features"] = af.reshape(-1, af.shape[-1]).float().contiguous()
    meta = {"generator": "tools/make_fixtures.py", "transformers": transformers.__version__, "torch": torch.__version__}
    save_file(inp, os.path.join(out, "inputs.safetensors"), metadata=meta)
    ref = {k: (v.contiguous() if v.dtype != torch.int64 else v.to(torch.int64).contiguous()) for k, v in ref.items()}
    save_file(ref, os.path.join(out, "reference.safetensors"), metadata=meta)
    info["inputs"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in inp.items()}
    info["reference"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in ref.items()}
    info["files"] = dir_files(out)
    info["bytes"] = sum(info["files"].values())
    info["config_highlights"] = dict(
        model_type=m32.config.model_type,
        text_model_type=text_cfg.model_type,
        vocab_size=text_cfg.vocab_size,
        hidden_size=text_cfg.hidden_size,
        num_hidden_layers=text_cfg.num_hidden_layers,
        layer_types=list(text_cfg.layer_types),
        sliding_window=text_cfg.sliding_window,
        final_logit_softcapping=text_cfg.final_logit_softcapping,
        rope_parameters=text_cfg.rope_parameters,
    )
    del m32
    return info


# ----------------------------------------------------------------------------------------------------------------
# The fixtures
# ----------------------------------------------------------------------------------------------------------------


@fixture("unified_f32")
def fx_unified_f32():
    from transformers import Gemma4UnifiedForConditionalGeneration as C

    cfg = make_unified_cfg()
    return build(
        "unified_f32",
        C,
        cfg,
        seed=11,
        inputs=unified_inputs(cfg, 11),
        store_dtype=torch.float32,
        gen_lo=3,
        gen_hi=500,
        custom_gen_config=True,
        soft_token_check=True,
    )


@fixture("unified_bf16")
def fx_unified_bf16():
    from transformers import Gemma4UnifiedForConditionalGeneration as C

    cfg = make_unified_cfg()
    return build(
        "unified_bf16",
        C,
        cfg,
        seed=12,
        inputs=unified_inputs(cfg, 12),
        store_dtype=torch.bfloat16,
        gen_lo=3,
        gen_hi=500,
        soft_token_check=True,
        legacy_config="keys",
    )


@fixture("unified_text_causal")
def fx_unified_text_causal():
    from transformers import Gemma4UnifiedForCausalLM as C

    cfg = make_unified_text_causal_cfg()
    return build(
        "unified_text_causal",
        C,
        cfg,
        seed=13,
        inputs=text_inputs(13, 40, 3, 500),
        store_dtype=torch.float32,
        gen_lo=3,
        gen_hi=500,
    )


@fixture("gemma4_ple_f32")
def fx_gemma4_ple_f32():
    from transformers import Gemma4ForConditionalGeneration as C

    cfg = make_gemma4_ple_cfg()
    return build(
        "gemma4_ple_f32",
        C,
        cfg,
        seed=14,
        inputs=text_inputs(14, 40, 3, 249),
        store_dtype=torch.float32,
        gen_lo=3,
        gen_hi=249,
    )


@fixture("gemma4_moe_f32")
def fx_gemma4_moe_f32():
    from transformers import Gemma4ForCausalLM as C

    cfg = make_gemma4_moe_cfg()
    return build(
        "gemma4_moe_f32",
        C,
        cfg,
        seed=15,
        inputs=text_inputs(15, 40, 3, 249),
        store_dtype=torch.float32,
        gen_lo=3,
        gen_hi=249,
        shard="180KB",
    )


@fixture("gemma4_moe_bf16")
def fx_gemma4_moe_bf16():
    from transformers import Gemma4ForCausalLM as C

    cfg = make_gemma4_moe_cfg()
    return build(
        "gemma4_moe_bf16",
        C,
        cfg,
        seed=16,
        inputs=text_inputs(16, 40, 3, 249),
        store_dtype=torch.bfloat16,
        gen_lo=3,
        gen_hi=249,
        legacy_config="no_layer_types",
    )


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--print-configs", action="store_true")
    ap.add_argument("--verbose-keys", action="store_true")
    ARGS = ap.parse_args()
    os.makedirs(ARGS.out, exist_ok=True)
    log(f"transformers {transformers.__version__}  torch {torch.__version__}  python {sys.version.split()[0]}")
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    names = [n for n in FIXTURES if not ARGS.only or n in ARGS.only.split(",")]
    infos, errors = {}, {}
    for n in names:
        t0 = time.time()
        try:
            infos[n] = FIXTURES[n]()
            infos[n]["seconds"] = round(time.time() - t0, 2)
        except Exception as e:  # keep going: one device call should report on every fixture
            errors[n] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
    manifest = dict(
        generator="tools/make_fixtures.py",
        transformers=transformers.__version__,
        torch=torch.__version__,
        python=sys.version.split()[0],
        max_new_tokens=MAX_NEW,
        fixtures=infos,
        errors=errors,
    )
    with open(os.path.join(ARGS.out, "fixtures_manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True, default=str)

    log("\nfixture               params  files  bytes     logits range        distinct argmax / T")
    for n, i in infos.items():
        s = i["logits"]
        log(
            f"{n:20s} {i['params']:7d} {len(i['files']):6d} {i['bytes']:8d}  "
            f"[{s['min']:7.2f}, {s['max']:6.2f}] std {s['std']:5.2f}  {s['distinct_argmax']:3d} / {s['T']}"
        )
    for n, e in errors.items():
        log(f"ERROR {n}: {e}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
