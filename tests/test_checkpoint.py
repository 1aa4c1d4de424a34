"""Checkpoints: safetensors + JSON round trip, contract, and clear errors for damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from models.config import MilmerConfig
from models.contract import GENEVA_CHANNELS, InputContract
from models.device import resolve_device
from models.errors import CheckpointError
from models.factory import create_model


@pytest.fixture
def saved(out_dir: Path):
    torch.manual_seed(0)
    config = MilmerConfig.tiny().replace(channel_embedding=True)
    model = create_model(config).eval()
    contract = InputContract.for_deap(config)
    provenance = {"dataset": "synthetic", "protocol": "trial", "fold": 2, "metrics": {"accuracy": 0.5}}
    save_checkpoint(out_dir / "model", model, contract, provenance)
    return model, contract, out_dir / "model"


def logits_of(model, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    eeg = torch.randn(2, cfg.eeg_channels, cfg.eeg_samples, generator=gen)
    faces = torch.randint(0, 256, (2, cfg.num_instances, 3, cfg.image_size, cfg.image_size), generator=gen,
                          dtype=torch.uint8)
    with torch.no_grad():
        return model(eeg, faces).logits


def test_round_trip_gives_identical_logits_from_any_name(saved):
    model, contract, stem = saved
    assert stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file()
    for name in (stem, stem.with_suffix(".safetensors"), stem.with_suffix(".json")):
        loaded = load_checkpoint(name)
        assert loaded.config == model.config
        assert loaded.contract == contract
        assert not loaded.model.training
        assert torch.equal(logits_of(loaded.model), logits_of(model))
    assert loaded.provenance["protocol"] == "trial" and loaded.provenance["fold"] == 2
    assert "code_version" in loaded.provenance
    assert load_checkpoint(stem, device="auto").model.device.type == resolve_device("auto").type


def test_meta_carries_the_input_contract(saved):
    _, contract, stem = saved
    meta = read_checkpoint_meta(stem)
    assert meta.contract.eeg_channels == GENEVA_CHANNELS
    assert (meta.contract.sampling_rate, meta.contract.window_seconds, meta.contract.filter_band) == (128.0, 3.0,
                                                                                                      (4.0, 45.0))
    assert (meta.contract.reference, meta.contract.face_expand) == ("average", 0.1)
    detector = meta.contract.face_detector
    assert detector["name"] == "centerface" and detector["version"].startswith("centerface-onnx-")
    assert detector["score_threshold"] == 0.35 and detector["min_face"] == 32
    assert meta.contract.face_size == 64 and meta.contract.num_instances == 4
    assert meta.contract.class_names == ("HAHV", "LAHV", "LALV", "HALV")
    assert meta.contract.label_rule == {"kind": "quadrant", "threshold": 5.0, "ties": "published"}
    raw = json.loads(stem.with_suffix(".json").read_text())
    assert raw["format"] == "milmer-checkpoint" and raw["format_version"] == 1
    assert len(raw["tensors"]["sha256"]) == 64


def test_tampered_tensor_file_is_rejected(saved):
    _, _, stem = saved
    path = stem.with_suffix(".safetensors")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: contents do not match the digest"):
        load_checkpoint(stem)


def test_truncated_tensor_file_is_rejected(saved):
    _, _, stem = saved
    path = stem.with_suffix(".safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(stem)


def test_truncated_or_foreign_json_is_rejected(saved):
    _, _, stem = saved
    json_path = stem.with_suffix(".json")
    text = json_path.read_text()
    json_path.write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match=r"model\.json: not valid JSON"):
        load_checkpoint(stem)
    json_path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a milmer checkpoint"):
        read_checkpoint_meta(stem)


def test_missing_files_are_named(saved, out_dir: Path):
    _, _, stem = saved
    with pytest.raises(CheckpointError, match="nothing.json: checkpoint metadata file not found"):
        load_checkpoint(out_dir / "nothing")
    stem.with_suffix(".safetensors").unlink()
    assert read_checkpoint_meta(stem).config.preset == "tiny"  # the JSON alone is enough for the metadata
    with pytest.raises(CheckpointError, match="model.safetensors: checkpoint tensor file not found"):
        load_checkpoint(stem)


def test_config_that_does_not_fit_the_tensors_is_rejected(saved):
    _, _, stem = saved
    json_path = stem.with_suffix(".json")
    original = json.loads(json_path.read_text())
    resized = json.loads(json.dumps(original))
    resized["config"]["num_queries"] = 8
    json_path.write_text(json.dumps(resized))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensors do not fit the model: "
                                              r"1 wrong shape: balancer\.queries \(16, 64\) != \(8, 64\)"):
        load_checkpoint(stem)
    rewired = json.loads(json.dumps(original))
    rewired["config"]["fusion"] = "mlp"
    json_path.write_text(json.dumps(rewired))
    with pytest.raises(CheckpointError, match=r"4 missing: balancer\.net\.0\.bias.*5 unexpected: balancer\.attention"):
        load_checkpoint(stem)


def test_contract_that_does_not_fit_the_config_is_rejected(saved):
    _, _, stem = saved
    json_path = stem.with_suffix(".json")
    meta = json.loads(json_path.read_text())
    meta["contract"]["face_size"] = 224
    meta["contract"]["eeg_channels"] = meta["contract"]["eeg_channels"][:16]
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model\.json: input contract does not match.*16 EEG channel names"):
        read_checkpoint_meta(stem)


@pytest.mark.parametrize("change", [{"backbone": "hf-hub:someone/swin"},
                                    {"backbone_kwargs": {"checkpoint_path": "/tmp/elsewhere.pth"}},
                                    {"backbone_kwargs": {"pretrained_cfg_overlay": {"url": "http://example.org"}}}])
def test_config_cannot_make_the_loader_fetch_or_read_other_files(saved, change):
    _, _, stem = saved
    json_path = stem.with_suffix(".json")
    meta = json.loads(json_path.read_text())
    meta["config"].update(change)
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model\.json: model config is invalid: .*backbone"):
        load_checkpoint(stem)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("config", "d_model", 64.0, r"config\.d_model=64\.0 must be a whole number"),
    ("config", "encoder_layers", True, r"config\.encoder_layers=True must be a whole number"),
    ("contract", "sampling_rate", "128", r"input contract is invalid: sampling_rate='128' is not of type float"),
    (None, "provenance", [1, 2], r"the 'provenance' section is not an object"),
    ("backbone_kwargs", "depths", "11", r"config\.backbone_kwargs\.depths=.11. must be a list"),
])
def test_json_values_of_the_wrong_type_are_named(saved, section, key, value, message):
    _, _, stem = saved
    json_path = stem.with_suffix(".json")
    meta = json.loads(json_path.read_text())
    target = {None: meta, "config": meta["config"], "contract": meta["contract"],
              "backbone_kwargs": meta["config"]["backbone_kwargs"]}[section]
    target[key] = value
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model\.json: " + message):
        load_checkpoint(stem)
