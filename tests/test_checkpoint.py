"""Checkpoint I/O in the upstream Hugging Face layout, and every malformed-checkpoint message."""

import json
import re

import pytest
import torch
from safetensors.torch import save_file

from models.mmfree.checkpoint import (CheckpointError, expected_shapes, load_checkpoint, load_config,
                               load_state_dict, save_checkpoint)
from models.mmfree.config import preset
from models.mmfree.model import MMFreeForCausalLM

torch.set_num_threads(1)

# What a downloaded ridger/MMfreeLM directory's config.json looks like: the HGRNBitConfig fields plus
# the fields transformers adds (architectures, torch_dtype, transformers_version, ...).
UPSTREAM_CONFIG = {
    "architectures": ["HGRNBitForCausalLM"], "attn_mode": "fused_recurrent", "bos_token_id": 1,
    "conv_size": 4, "eos_token_id": 2, "expand_ratio": 1, "fuse_cross_entropy": True, "hidden_act": "swish",
    "hidden_ratio": 4, "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": None,
    "max_position_embeddings": 2048, "model_type": "hgrn_bit", "num_heads": 1, "num_hidden_layers": 2,
    "rms_norm_eps": 1e-06, "share_conv_kernel": True, "tie_word_embeddings": False,
    "torch_dtype": "float32", "transformers_version": "4.40.1", "use_cache": True, "use_lower_bound": True,
    "use_short_conv": False, "vocab_size": 300,
}


def upstream_tensors(cfg, gen):
    """The upstream key list written out by hand (independent of models.mmfree.checkpoint)."""
    d, m, V, L = cfg["hidden_size"], 256, cfg["vocab_size"], cfg["num_hidden_layers"]  # 32*4*2/3 -> 256
    t = {"model.embeddings.weight": (V, d), "model.lower_bounds": (L, d), "model.norm.weight": (d,),
         "lm_head.weight": (V, d), "lm_head.norm.weight": (d,)}
    for li in range(L):
        p = f"model.layers.{li}"
        t.update({f"{p}.attn_norm.weight": (d,), f"{p}.mlp_norm.weight": (d,), f"{p}.attn.g_norm.weight": (d,),
                  f"{p}.mlp.gate_proj.weight": (2 * m, d), f"{p}.mlp.gate_proj.norm.weight": (d,),
                  f"{p}.mlp.down_proj.weight": (d, m), f"{p}.mlp.down_proj.norm.weight": (m,)})
        for proj in "ifgo":
            t[f"{p}.attn.{proj}_proj.weight"] = (d, d)
            t[f"{p}.attn.{proj}_proj.norm.weight"] = (d,)
    return {k: (torch.randn(s, generator=gen) * (0.05 if len(s) == 2 else 0.3) + (1.0 if k.endswith("norm.weight") else 0.0))
            for k, s in t.items()}


def write_upstream(path, cfg=UPSTREAM_CONFIG, dtype=torch.float32, seed=0):
    path.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    tensors = {k: v.to(dtype).contiguous() for k, v in upstream_tensors(cfg, gen).items()}
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    return tensors


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    m = MMFreeForCausalLM(preset("tiny", **kw))
    with torch.no_grad():
        m.model.lower_bounds.normal_()
        for n, p in m.named_parameters():
            if n.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return m.eval()


# ---------------------------------------------------------------------------- loading what upstream writes
def test_upstream_layout_directory_loads_with_identical_logits(tmp_path):
    tensors = write_upstream(tmp_path / "mmfree")
    model = load_checkpoint(tmp_path / "mmfree")
    assert model.config.extra["transformers_version"] == "4.40.1"
    assert model.config.mlp_intermediate_size == 256
    # the same computation from a model whose parameters were assigned directly
    ref = MMFreeForCausalLM(model.config, init=False).eval()
    ref.load_state_dict(tensors)
    ids = torch.randint(0, 300, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(ids), ref(ids))
    for k, v in tensors.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_random_model_round_trip_is_exact(tmp_path):
    m = tiny_model()
    save_checkpoint(m, tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    back = load_checkpoint(tmp_path / "ck")
    assert back.config == m.config
    for k, v in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    ids = torch.randint(0, 512, (2, 9))
    with torch.no_grad():
        assert torch.equal(back(ids), m(ids))
    raw = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert raw["model_type"] == "hgrn_bit" and raw["architectures"] == ["HGRNBitForCausalLM"]


def test_half_precision_files_load_as_float32(tmp_path):
    tensors = write_upstream(tmp_path / "h", dtype=torch.bfloat16)
    model = load_checkpoint(tmp_path / "h")
    assert model.model.embeddings.weight.dtype == torch.float32
    assert torch.equal(model.model.embeddings.weight, tensors["model.embeddings.weight"].float())
    m = tiny_model()
    save_checkpoint(m, tmp_path / "f16", dtype=torch.float16)
    back = load_checkpoint(tmp_path / "f16")
    assert torch.equal(back.lm_head.weight, m.lm_head.weight.half().float())


def test_sharded_index_checkpoint(tmp_path):
    tensors = write_upstream(tmp_path / "s")
    (tmp_path / "s" / "model.safetensors").unlink()
    keys = sorted(tensors)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
    for name, ks in shards.items():
        save_file({k: tensors[k] for k in ks}, str(tmp_path / "s" / name))
    index = {"metadata": {}, "weight_map": {k: n for n, ks in shards.items() for k in ks}}
    (tmp_path / "s" / "model.safetensors.index.json").write_text(json.dumps(index))
    model = load_checkpoint(tmp_path / "s")
    assert torch.equal(model.lm_head.weight, tensors["lm_head.weight"])


def test_tied_embeddings_round_trip(tmp_path):
    m = tiny_model(tie_word_embeddings=True)
    save_checkpoint(m, tmp_path / "t")
    assert "lm_head.weight" not in expected_shapes(m.config)
    back = load_checkpoint(tmp_path / "t")
    assert back.lm_head.weight is back.model.embeddings.weight
    assert torch.equal(back.lm_head.weight, m.model.embeddings.weight)


# ---------------------------------------------------------------------------- malformed checkpoints
def one_line(err):
    s = str(err.value)
    assert "\n" not in s
    return s


def test_missing_config_json(tmp_path):
    write_upstream(tmp_path / "c")
    (tmp_path / "c" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing config\.json; a checkpoint directory needs config\.json and model\.safetensors") as e:
        load_checkpoint(tmp_path / "c")
    one_line(e)


def test_not_a_directory(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope: not a checkpoint directory; pass a folder holding config\.json and model\.safetensors"):
        load_checkpoint(tmp_path / "nope")


def test_missing_weights_file(tmp_path):
    write_upstream(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"c: missing model\.safetensors; a checkpoint directory needs"):
        load_checkpoint(tmp_path / "c")


def test_unknown_model_type(tmp_path):
    write_upstream(tmp_path / "c", cfg={**UPSTREAM_CONFIG, "model_type": "llama"})
    with pytest.raises(CheckpointError, match=r"config\.json: unknown model_type 'llama'; only 'hgrn_bit' \(MatMul-free LM\) checkpoints are supported") as e:
        load_checkpoint(tmp_path / "c")
    one_line(e)


def test_config_not_json(tmp_path):
    write_upstream(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{hidden_size: 32")
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON \(.*\); restore the file"):
        load_checkpoint(tmp_path / "c")


def test_config_invalid_field(tmp_path):
    write_upstream(tmp_path / "c", cfg={**UPSTREAM_CONFIG, "hidden_size": 0})
    with pytest.raises(CheckpointError, match=r"config\.json: invalid config: hidden_size must be a positive integer, got 0$"):
        load_checkpoint(tmp_path / "c")


def _rewrite(path, mutate):
    from safetensors.torch import load_file
    t = load_file(str(path / "model.safetensors"))
    mutate(t)
    save_file(t, str(path / "model.safetensors"))


def test_missing_key_is_named(tmp_path):
    write_upstream(tmp_path / "c")
    _rewrite(tmp_path / "c", lambda t: t.pop("model.layers.1.attn.g_norm.weight"))
    with pytest.raises(CheckpointError, match=re.escape("model.safetensors: missing key 'model.layers.1.attn.g_norm.weight' required by config.json; the weights do not match the config")) as e:
        load_checkpoint(tmp_path / "c")
    one_line(e)


def test_several_missing_keys_counted(tmp_path):
    write_upstream(tmp_path / "c")
    _rewrite(tmp_path / "c", lambda t: [t.pop(k) for k in ("lm_head.weight", "lm_head.norm.weight")])
    with pytest.raises(CheckpointError, match=re.escape("missing key 'lm_head.weight' (and 1 more) required by config.json")):
        load_checkpoint(tmp_path / "c")


def test_unexpected_key_is_named(tmp_path):
    write_upstream(tmp_path / "c")
    _rewrite(tmp_path / "c", lambda t: t.update({"model.layers.2.attn_norm.weight": torch.ones(32)}))
    with pytest.raises(CheckpointError, match=re.escape("model.safetensors: unexpected key 'model.layers.2.attn_norm.weight' not in an hgrn_bit model of this config.json")) as e:
        load_checkpoint(tmp_path / "c")
    one_line(e)


def test_wrong_shape_names_key_expected_and_got(tmp_path):
    write_upstream(tmp_path / "c")
    _rewrite(tmp_path / "c", lambda t: t.update({"model.embeddings.weight": torch.zeros(299, 32)}))
    with pytest.raises(CheckpointError, match=re.escape("model.safetensors: key 'model.embeddings.weight' has shape (299, 32), expected (300, 32) from config.json")) as e:
        load_checkpoint(tmp_path / "c")
    one_line(e)


def test_wrong_dtype_is_named(tmp_path):
    write_upstream(tmp_path / "c")
    _rewrite(tmp_path / "c", lambda t: t.update({"model.norm.weight": torch.ones(32, dtype=torch.int32)}))
    with pytest.raises(CheckpointError, match=re.escape("model.safetensors: key 'model.norm.weight' has dtype I32, expected one of F32, F16, BF16; re-save the checkpoint with floating-point weights")) as e:
        load_checkpoint(tmp_path / "c")
    one_line(e)


def test_truncated_safetensors(tmp_path):
    write_upstream(tmp_path / "c")
    f = tmp_path / "c" / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated or corrupt safetensors file \(needs \d+ bytes, has \d+\); re-save or re-download it") as e:
        load_checkpoint(tmp_path / "c")
    one_line(e)


def test_truncated_header(tmp_path):
    write_upstream(tmp_path / "c")
    f = tmp_path / "c" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated or corrupt safetensors file \(header of \d+ bytes but file has 50\)"):
        load_checkpoint(tmp_path / "c")


def test_corrupt_header(tmp_path):
    write_upstream(tmp_path / "c")
    f = tmp_path / "c" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:12] = b"\xff\xfe!!"
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated or corrupt safetensors file \(unreadable header\)"):
        load_checkpoint(tmp_path / "c")


def test_empty_file(tmp_path):
    write_upstream(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"truncated or corrupt safetensors file \(0 bytes, no header\)"):
        load_checkpoint(tmp_path / "c")


def test_checkpoint_error_is_value_error(tmp_path):
    assert issubclass(CheckpointError, ValueError)
    write_upstream(tmp_path / "c")
    cfg = load_config(tmp_path / "c")
    assert len(load_state_dict(tmp_path / "c", cfg)) == len(expected_shapes(cfg))


def test_convert_command_to_float16(tmp_path, capsys):
    import argparse

    from nmllm.commands.checkpoint import register

    m = tiny_model()
    save_checkpoint(m, tmp_path / "src")
    (tmp_path / "src" / "tokenizer.json").write_text("{}")
    parser = argparse.ArgumentParser(prog="nmllm")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["checkpoint", "convert", str(tmp_path / "src"), str(tmp_path / "dst"), "--dtype", "float16"])
    assert args.func(args) == 0
    assert "float16" in capsys.readouterr().out
    from safetensors import safe_open
    with safe_open(str(tmp_path / "dst" / "model.safetensors"), framework="pt") as fh:
        assert {fh.get_slice(k).get_dtype() for k in fh.keys()} == {"F16"}
    assert (tmp_path / "dst" / "tokenizer.json").read_text() == "{}"
    back = load_checkpoint(tmp_path / "dst")
    assert torch.equal(back.model.norm.weight, m.model.norm.weight.half().float())
