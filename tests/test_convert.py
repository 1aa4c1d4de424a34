"""Backbone converter: HF transformers Swin files (both naming schemes) and timm files -> timm safetensors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from timm.models.swin_transformer import SwinTransformer

from models.config import MilmerConfig
from models.convert import convert_swin, load_backbone_weights
from models.errors import CheckpointError
from models.factory import create_model
from training.cli import main as train_cli

# A small Swin (two stages, shifted windows in the second block of each) keeps this fast.
SWIN = {"img_size": 64, "patch_size": 4, "embed_dim": 32, "depths": (2, 2), "num_heads": (2, 4), "window_size": 8}
NUM_LABELS = 7


def random_timm_swin(seed: int = 0) -> SwinTransformer:
    torch.manual_seed(seed)
    model = SwinTransformer(num_classes=NUM_LABELS, **SWIN).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)
    return model


def hf_state_from_timm(model: SwinTransformer, scheme: str) -> dict[str, torch.Tensor]:
    """Write timm Swin weights under the Hugging Face key names, as transformers would save them."""
    classic = scheme == "classic"
    names = {
        "norm1": "layernorm_before", "norm2": "layernorm_after",
        "attn.proj": "attention.output.dense" if classic else "attention.o_proj",
        "mlp.fc1": "intermediate.dense" if classic else "mlp.fc1",
        "mlp.fc2": "output.dense" if classic else "mlp.fc2",
        "attn.relative_position_bias_table": ("attention.self.relative_position_bias_table" if classic
                                              else "attention.relative_position_bias_table"),
    }
    qkv_names = (("attention.self.query", "attention.self.key", "attention.self.value") if classic
                 else ("attention.q_proj", "attention.k_proj", "attention.v_proj"))
    out = {}
    for key, value in model.state_dict().items():
        value = value.clone()
        block = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.(.+?)(?:\.(weight|bias))?$", key)
        down = re.match(r"layers\.(\d+)\.downsample\.(.+)$", key)
        if key.startswith("patch_embed.proj."):
            out["swin.embeddings.patch_embeddings.projection." + key.split(".")[-1]] = value
        elif key.startswith("patch_embed.norm."):
            out["swin.embeddings.norm." + key.split(".")[-1]] = value
        elif key.startswith("norm."):
            out["swin.layernorm." + key.split(".")[-1]] = value
        elif key.startswith("head.fc."):
            out["classifier." + key.split(".")[-1]] = value
        elif down:
            out[f"swin.encoder.layers.{int(down.group(1)) - 1}.downsample.{down.group(2)}"] = value
        elif block:
            stage, index, name, kind = block.groups()
            prefix = f"swin.encoder.layers.{stage}.blocks.{index}."
            if name == "attn.qkv":
                for part, chunk in zip(qkv_names, value.chunk(3, dim=0), strict=True):
                    out[f"{prefix}{part}.{kind}"] = chunk.clone()
            else:
                out[prefix + names[name] + (f".{kind}" if kind else "")] = value
        else:
            raise AssertionError(f"test helper does not know {key}")
    for stage, depth in enumerate(SWIN["depths"]):
        for index in range(depth):
            attention = "attention.self" if classic else "attention"
            out[f"swin.encoder.layers.{stage}.blocks.{index}.{attention}.relative_position_index"] = torch.zeros(
                SWIN["window_size"] ** 2, SWIN["window_size"] ** 2, dtype=torch.long)
    return out


def write_hf_folder(folder: Path, model: SwinTransformer, scheme: str, as_bin: bool = False) -> Path:
    folder.mkdir(parents=True)
    config = {"model_type": "swin", "image_size": SWIN["img_size"], "patch_size": SWIN["patch_size"],
              "embed_dim": SWIN["embed_dim"], "depths": list(SWIN["depths"]), "num_heads": list(SWIN["num_heads"]),
              "window_size": SWIN["window_size"], "id2label": {str(i): f"emotion{i}" for i in range(NUM_LABELS)}}
    (folder / "config.json").write_text(json.dumps(config))
    state = hf_state_from_timm(model, scheme)
    if as_bin:
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"))
    return folder


def assert_same_network(converted: dict[str, torch.Tensor], original: SwinTransformer) -> None:
    rebuilt = SwinTransformer(num_classes=NUM_LABELS, **SWIN).eval()
    rebuilt.load_state_dict(converted, strict=True)
    images = torch.randn(2, 3, SWIN["img_size"], SWIN["img_size"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), original(images), rtol=0, atol=1e-5)
        torch.testing.assert_close(rebuilt.forward_features(images), original.forward_features(images),
                                   rtol=0, atol=1e-5)


@pytest.mark.parametrize(("scheme", "as_bin"), [("classic", False), ("new", False), ("classic", True)])
def test_hf_checkpoint_round_trips_through_the_cli(tmp_path: Path, scheme: str, as_bin: bool):
    original = random_timm_swin()
    source = write_hf_folder(tmp_path / "hf", original, scheme, as_bin)
    out = tmp_path / "swin.safetensors"
    assert train_cli(["-q", "convert-backbone", str(source), "--out", str(out)]) == 0
    converted = load_file(str(out))
    assert set(converted) == set(original.state_dict())
    assert_same_network(converted, original)


def test_timm_checkpoint_is_accepted(tmp_path: Path):
    original = random_timm_swin()
    torch.save({"state_dict": {"module." + k: v for k, v in original.state_dict().items()}}, tmp_path / "timm.pth")
    report = convert_swin(tmp_path / "timm.pth")
    assert report.source_format == "timm" and report.num_classes == NUM_LABELS and report.unused == []
    assert_same_network(report.state, original)


def test_original_swin_release_layout_is_accepted(tmp_path: Path):
    original = random_timm_swin()
    legacy = {}
    for key, value in original.state_dict().items():
        down = re.match(r"layers\.(\d+)\.downsample\.(.+)$", key)
        key = f"layers.{int(down.group(1)) - 1}.downsample.{down.group(2)}" if down else key
        legacy[key.replace("head.fc.", "head.")] = value
    legacy["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(64, 64, dtype=torch.long)
    torch.save({"model": legacy}, tmp_path / "swin_tiny_patch4_window7_224.pth")
    report = convert_swin(tmp_path / "swin_tiny_patch4_window7_224.pth")
    assert report.unused == []
    assert_same_network(report.state, original)


def test_unused_and_missing_keys_are_reported(tmp_path: Path):
    original = random_timm_swin()
    state = hf_state_from_timm(original, "classic")
    state["swin.encoder.layers.0.blocks.0.adapter.weight"] = torch.zeros(3)
    save_file(state, str(tmp_path / "extra.safetensors"))
    report = convert_swin(tmp_path / "extra.safetensors")
    assert report.unused == ["swin.encoder.layers.0.blocks.0.adapter.weight"]
    del state["swin.encoder.layers.1.blocks.1.intermediate.dense.bias"]
    save_file(state, str(tmp_path / "short.safetensors"))
    with pytest.raises(CheckpointError, match=r"short\.safetensors: .*1 missing: layers\.1\.blocks\.1\.mlp\.fc1\.bias"):
        convert_swin(tmp_path / "short.safetensors")
    state["swin.encoder.layers.1.blocks.1.intermediate.dense.bias"] = torch.zeros(5)
    save_file(state, str(tmp_path / "bent.safetensors"))
    with pytest.raises(CheckpointError, match=r"wrong shape: layers\.1\.blocks\.1\.mlp\.fc1\.bias \(5,\) != \(256,\)"):
        convert_swin(tmp_path / "bent.safetensors")


def test_config_json_that_disagrees_with_the_weights_is_an_error(tmp_path: Path):
    folder = write_hf_folder(tmp_path / "hf", random_timm_swin(), "classic")
    config = json.loads((folder / "config.json").read_text())
    config["embed_dim"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json disagrees with the weights.*embed_dim"):
        convert_swin(folder)


def test_non_swin_file_is_an_error(tmp_path: Path):
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"other\.safetensors: no Swin patch embedding found"):
        convert_swin(tmp_path / "other.safetensors")


@pytest.mark.parametrize("drop_head", [False, True])
def test_converted_weights_load_into_milmer_backbone(tmp_path: Path, drop_head: bool):
    original = random_timm_swin()
    source = write_hf_folder(tmp_path / "hf", original, "new")
    out = tmp_path / "swin.safetensors"
    args = ["-q", "convert-backbone", str(source), "--out", str(out)] + (["--drop-head"] if drop_head else [])
    assert train_cli(args) == 0
    assert any(k.startswith("head.") for k in load_file(str(out))) != drop_head
    config = MilmerConfig.tiny().replace(backbone_kwargs={**MilmerConfig.tiny().backbone_kwargs, "depths": [2, 2]})
    model = create_model(config).eval()
    assert load_backbone_weights(model, out) == len(original.state_dict()) - 2
    frames = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = original.forward_features((frames.float() / 255 - mean) / std).flatten(1, 2)
        torch.testing.assert_close(model.embed_frames(frames), expected, rtol=0, atol=1e-5)


def test_backbone_weights_of_another_shape_are_rejected(tmp_path: Path):
    source = write_hf_folder(tmp_path / "hf", random_timm_swin(), "classic")
    model = create_model(MilmerConfig.tiny())  # depths (1, 1): the file has 2 blocks per stage
    with pytest.raises(CheckpointError, match=r"hf: tensors do not fit the model: .*unexpected: layers\.0\.blocks\.1"):
        load_backbone_weights(model, source)


def test_command_modules_import_no_heavy_library():
    """`milmer-train --help` imports every command module: torch, timm, OpenCV and numpy wait for run()."""
    probe = ("import sys\n"
             "from training.cli import COMMANDS, build_parser\n"
             "build_parser()\n"
             "missing = [c.module for c in COMMANDS if c.module not in sys.modules]\n"
             "print(missing, sorted({'torch', 'timm', 'cv2', 'numpy', 'safetensors'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[] []"
