#!/usr/bin/env python3
"""Writes the bundled demo model's starting point: a tiny randomly initialised Gemma 4 Unified checkpoint
directory (HF layout) that recipes/demo_arith.yaml trains from scratch.

OUT_DIR gets config.json (model_type gemma4_unified, transformers 5.17 layout with per_layer_config),
generation_config.json, model.safetensors (F32, names of Gemma4UnifiedForConditionalGeneration) and the
tokenizer files of tools/make_demo_tokenizer.py (tokenizer.json, tokenizer_config.json, chat_template.jinja).

The text decoder uses the 12B Unified's features at tiny size: sliding and full layers (the last one full),
attention_k_eq_v with a single global KV head, head_dim 32 on sliding layers and 64 on full layers,
proportional RoPE (25%) on full layers, final logit softcap 30, tied embeddings, layer_scalar. The tower-free
vision and audio embedders are present at tiny size so that transformers loads the checkpoint without
missing keys (the arithmetic task never uses them; they stay at their initial values up to weight decay).

Initialisation follows transformers' _init_weights (Linear/Embedding ~ normal(0, initializer_range), RMSNorm
weights and layer_scalar = 1, LayerNorm weight 1 / bias 0) except q_norm/k_norm weights, which start at
head_dim^-0.25 (see --qk-norm-init). Deterministic in --seed.

Usage: python3 tools/make_demo_model.py OUT_DIR [--seed S] [--hidden 128] [--layers 4] ...
"""
import argparse
import array
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_demo_tokenizer  # noqa: E402

PREFIX = "model.language_model."


def layer_types(n, full_every):
    t = ["full_attention" if (i + 1) % full_every == 0 else "sliding_attention" for i in range(n)]
    t[-1] = "full_attention"  # as transformers forces the last layer to be full
    return t


def make_config(a, vocab, ids):
    types = layer_types(a.layers, a.full_every)
    text = {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attention_k_eq_v": True,
        "bos_token_id": ids["<bos>"],
        "eos_token_id": [ids["<eos>"], ids["<turn|>"]],
        "final_logit_softcapping": 30.0,
        "head_dim": a.head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": a.hidden,
        "initializer_range": a.init_std,
        "intermediate_size": a.intermediate,
        "layer_types": types,
        "max_position_embeddings": a.max_positions,
        "model_type": "gemma4_unified_text",
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "num_kv_shared_layers": 0,
        "pad_token_id": ids["<pad>"],
        "per_layer_config": {str(i): {"head_dim": a.global_head_dim, "num_key_value_heads": 1}
                             for i, t in enumerate(types) if t == "full_attention"},
        "rms_norm_eps": 1e-06,
        "rope_parameters": {
            "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0, "rope_type": "proportional"},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
        },
        "sliding_window": a.window,
        "tie_word_embeddings": True,
        "use_bidirectional_attention": "vision",
        "use_cache": True,
        "use_double_wide_mlp": False,
        "vocab_size": vocab,
    }
    return {
        "architectures": ["Gemma4UnifiedForConditionalGeneration"],
        "audio_config": {"audio_embed_dim": 16, "model_type": "gemma4_unified_audio", "rms_norm_eps": 1e-06},
        "audio_token_id": ids["<|audio|>"],
        "boa_token_id": ids["<|audio>"],
        "boi_token_id": ids["<|image>"],
        "dtype": "float32",
        "eoa_token_index": ids["<audio|>"],
        "eoi_token_id": ids["<image|>"],
        "eos_token_id": [ids["<eos>"], ids["<turn|>"]],
        "image_token_id": ids["<|image|>"],
        "initializer_range": a.init_std,
        "model_type": "gemma4_unified",
        "text_config": text,
        "tie_word_embeddings": True,
        "transformers_version": "5.17.0",
        "video_token_id": ids["<|video|>"],
        "vision_config": {"mm_embed_dim": 16, "mm_posemb_size": 8, "model_type": "gemma4_unified_vision",
                          "output_proj_dims": 16, "patch_size": 4, "pooling_kernel_size": 2, "rms_norm_eps": 1e-06},
    }


def tensor_specs(cfg):
    """(name, shape, init) for every stored tensor; init is 'normal', 'ones' or 'zeros'."""
    t = cfg["text_config"]
    H, V, I = t["hidden_size"], t["vocab_size"], t["intermediate_size"]
    out = [(PREFIX + "embed_tokens.weight", [V, H], "embed"), (PREFIX + "norm.weight", [H], "ones")]
    for i, kind in enumerate(t["layer_types"]):
        p = f"{PREFIX}layers.{i}."
        full = kind == "full_attention"
        hd = t["per_layer_config"][str(i)]["head_dim"] if full else t["head_dim"]
        kvh = t["per_layer_config"][str(i)]["num_key_value_heads"] if full else t["num_key_value_heads"]
        nh = t["num_attention_heads"]
        out += [
            (p + "input_layernorm.weight", [H], "ones"),
            (p + "self_attn.q_proj.weight", [nh * hd, H], "normal"),
            (p + "self_attn.k_proj.weight", [kvh * hd, H], "normal"),
        ]
        if not full:  # k_eq_v: full layers have no v_proj
            out.append((p + "self_attn.v_proj.weight", [kvh * hd, H], "normal"))
        out += [
            (p + "self_attn.o_proj.weight", [H, nh * hd], "normal"),
            (p + "self_attn.q_norm.weight", [hd], "qk_norm"),
            (p + "self_attn.k_norm.weight", [hd], "qk_norm"),
            (p + "post_attention_layernorm.weight", [H], "post_norm"),
            (p + "pre_feedforward_layernorm.weight", [H], "ones"),
            (p + "mlp.gate_proj.weight", [I, H], "normal"),
            (p + "mlp.up_proj.weight", [I, H], "normal"),
            (p + "mlp.down_proj.weight", [H, I], "normal"),
            (p + "post_feedforward_layernorm.weight", [H], "post_norm"),
            (p + "layer_scalar", [1], "ones"),
        ]
    v = cfg["vision_config"]
    pd = (v["patch_size"] * v["pooling_kernel_size"]) ** 2 * 3
    E = v["mm_embed_dim"]
    out += [
        ("model.vision_embedder.patch_ln1.weight", [pd], "ones"),
        ("model.vision_embedder.patch_ln1.bias", [pd], "zeros"),
        ("model.vision_embedder.patch_dense.weight", [E, pd], "normal"),
        ("model.vision_embedder.patch_dense.bias", [E], "zeros"),
        ("model.vision_embedder.patch_ln2.weight", [E], "ones"),
        ("model.vision_embedder.patch_ln2.bias", [E], "zeros"),
        ("model.vision_embedder.pos_embedding", [v["mm_posemb_size"], 2, E], "normal"),
        ("model.vision_embedder.pos_norm.weight", [E], "ones"),
        ("model.vision_embedder.pos_norm.bias", [E], "zeros"),
        ("model.embed_vision.embedding_projection.weight", [H, v["output_proj_dims"]], "normal"),
        ("model.embed_audio.embedding_projection.weight", [H, cfg["audio_config"]["audio_embed_dim"]], "normal"),
    ]
    return out


def write_safetensors(path, tensors):
    """tensors: list of (name, shape, array('f')). F32, sorted names, 8-byte aligned header."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, data in sorted(tensors):
        n = len(data) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, data in sorted(tensors):
            if sys.byteorder != "little":
                data = array.array("f", data)
                data.byteswap()
            f.write(data.tobytes())
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--full-every", type=int, default=2, help="every N-th layer is a full-attention layer")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--global-head-dim", type=int, default=64)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--window", type=int, default=64, help="sliding_window of the sliding layers")
    ap.add_argument("--max-positions", type=int, default=1024)
    ap.add_argument("--init-std", type=float, default=0.02)
    ap.add_argument("--qk-norm-init", choices=["scaled", "ones"], default="scaled",
                    help="initial q_norm/k_norm weights: head_dim^-0.25 (scaled) or 1 (as transformers)")
    ap.add_argument("--embed-init", choices=["scaled", "normal"], default="scaled",
                    help="embed_tokens std: hidden^-0.5 (scaled: the sqrt(hidden)-scaled embeddings start at RMS 1) "
                         "or --init-std (as transformers)")
    ap.add_argument("--post-norm-init", choices=["scaled", "ones"], default="scaled",
                    help="post-attention/post-feedforward norm weights: (2*layers)^-0.5 (scaled) or 1")
    a = ap.parse_args(argv)
    for k in ("vocab_size", "hidden", "layers", "full_every", "heads", "kv_heads", "head_dim", "global_head_dim",
              "intermediate", "window", "max_positions"):
        if getattr(a, k) <= 0:
            ap.error(f"--{k.replace('_', '-')} must be positive")
    if a.heads % a.kv_heads:
        ap.error("--heads must be a multiple of --kv-heads")

    tok, tok_config, _ = make_demo_tokenizer.build(a.vocab_size)
    ids = tok["model"]["vocab"]
    cfg = make_config(a, len(ids), ids)
    os.makedirs(a.out_dir, exist_ok=True)
    rng = random.Random(a.seed)
    tensors, n_params = [], 0
    for name, shape, init in tensor_specs(cfg):
        n = 1
        for d in shape:
            n *= d
        if init in ("normal", "embed"):
            std = a.init_std
            if init == "embed" and a.embed_init == "scaled":
                std = cfg["text_config"]["hidden_size"] ** -0.5
            data = array.array("f", (rng.gauss(0.0, std) for _ in range(n)))
        else:
            # Gemma 4 attends with scale 1.0 after q/k RMSNorm, so attention logits start with std sqrt(head_dim)
            # when the norm weights are 1 (near one-hot attention, slow to train from scratch). qk_norm weights
            # start at head_dim^-0.25 instead: logits with std 1, as 1/sqrt(head_dim) scaling would give.
            v = {"ones": 1.0, "zeros": 0.0, "qk_norm": shape[0] ** -0.25 if a.qk_norm_init == "scaled" else 1.0,
                 "post_norm": (2 * a.layers) ** -0.5 if a.post_norm_init == "scaled" else 1.0}[init]
            data = array.array("f", [v]) * n
        tensors.append((name, shape, data))
        n_params += n
    write_safetensors(os.path.join(a.out_dir, "model.safetensors"), tensors)
    make_demo_tokenizer.write_json(os.path.join(a.out_dir, "config.json"), cfg)
    gen = {"bos_token_id": ids["<bos>"], "do_sample": False, "eos_token_id": [ids["<eos>"], ids["<turn|>"]],
           "pad_token_id": ids["<pad>"], "transformers_version": "5.17.0"}
    make_demo_tokenizer.write_json(os.path.join(a.out_dir, "generation_config.json"), gen)
    make_demo_tokenizer.write_json(os.path.join(a.out_dir, "tokenizer.json"), tok)
    make_demo_tokenizer.write_json(os.path.join(a.out_dir, "tokenizer_config.json"), tok_config)
    with open(os.path.join(a.out_dir, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(make_demo_tokenizer.CHAT_TEMPLATE)
    print(f"wrote {a.out_dir}: {n_params:,} parameters, layers {cfg['text_config']['layer_types']}")


if __name__ == "__main__":
    main(sys.argv[1:])
