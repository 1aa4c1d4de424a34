"""The Milmer network: presets, shapes and masks for every switch, gradients, cached-embedding path."""

from __future__ import annotations

import itertools

import pytest
import torch

from models.config import FUSION_MODES, MIL_MODES, MODALITIES, MilmerConfig
from models.device import autocast, resolve_device
from models.errors import CheckpointError, DataError, MilmerError
from models.factory import create_model
from models.milmer import CrossAttentionBalancer, Milmer, count_parameters


def make_batch(config: MilmerConfig, batch: int, instances: int | None = None, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    n = instances or config.num_instances
    eeg = torch.randn(batch, config.eeg_channels, config.eeg_samples, generator=gen)
    faces = torch.randint(0, 256, (batch, n, 3, config.image_size, config.image_size), generator=gen,
                          dtype=torch.uint8)
    return eeg, faces


def tiny_model(seed: int = 0, **changes) -> Milmer:
    torch.manual_seed(seed)
    return create_model(MilmerConfig.tiny().replace(**changes)).eval()


def test_config_json_round_trip_and_presets():
    for config in (MilmerConfig.paper(), MilmerConfig.tiny(), MilmerConfig.tiny().replace(mil="amil", fusion="mlp")):
        assert MilmerConfig.from_dict(config.to_dict()) == config
    paper = MilmerConfig.paper()
    assert (paper.backbone, paper.image_size, paper.num_instances, paper.mil, paper.top_k) == (
        "swin_tiny_patch4_window7_224", 224, 10, "weighted_topk", 3)
    assert (paper.num_queries, paper.encoder_layers, paper.d_model, paper.num_heads, paper.ff_dim) == (
        147, 2, 768, 12, 2048)
    assert (paper.dropout, paper.cls_dropout, paper.eeg_channels, paper.eeg_samples, paper.num_classes) == (
        0.2, 0.1, 32, 384, 4)
    assert not paper.channel_embedding and paper.fusion == "cross_attention" and paper.modalities == "eeg,face"
    tiny = MilmerConfig.tiny()
    assert (tiny.eeg_channels, tiny.eeg_samples, tiny.num_classes) == (32, 384, 4)
    with pytest.raises(ValueError, match="mil="):
        MilmerConfig.tiny().replace(mil="max")
    with pytest.raises(CheckpointError, match="unknown fields"):
        MilmerConfig.from_dict({**tiny.to_dict(), "colour": 1})


def test_parameter_budgets():
    assert count_parameters(create_model("tiny")) <= 2_000_000
    assert count_parameters(create_model("paper")) <= 45_000_000


SWITCHES = list(itertools.product(MODALITIES, MIL_MODES, FUSION_MODES))


@pytest.mark.parametrize(("modalities", "mil", "fusion"), SWITCHES)
def test_shapes_and_masks_for_every_switch(modalities, mil, fusion):
    channel_embedding = SWITCHES.index((modalities, mil, fusion)) % 2 == 0
    model = tiny_model(modalities=modalities, mil=mil, fusion=fusion, channel_embedding=channel_embedding)
    cfg = model.config
    eeg, faces = make_batch(cfg, batch=3)
    face_mask = torch.tensor([[True, False, True, True], [False, False, False, False], [False, True, False, False]])
    eeg_mask = torch.ones(3, cfg.eeg_channels, dtype=torch.bool)
    eeg_mask[0, :5] = False
    with torch.no_grad():
        out = model(eeg, faces, eeg_mask=eeg_mask, face_mask=face_mask)
    assert out.logits.shape == (3, cfg.num_classes)
    assert out.instance_weights.shape == (3, cfg.num_instances)
    assert torch.isfinite(out.logits).all()
    if cfg.uses_face:
        weights = out.instance_weights
        assert (weights[~face_mask] == 0).all(), "absent frames must get no MIL weight"
        assert (weights[1] == 0).all()
        assert torch.allclose(weights[0].sum(), torch.tensor(1.0), atol=1e-5)
        assert weights[2, 1] == pytest.approx(1.0)
        if mil == "first":
            assert weights[0].tolist() == [1.0, 0.0, 0.0, 0.0]
        if mil in ("topk", "weighted_topk", "global_weights"):
            assert int((weights[0] > 0).sum()) == cfg.top_k


@pytest.mark.parametrize("mil", MIL_MODES)
def test_absent_frames_and_masked_channels_do_not_influence_output(mil):
    model = tiny_model(mil=mil, channel_embedding=True)
    cfg = model.config
    eeg, faces = make_batch(cfg, batch=2)
    face_mask = torch.tensor([[True, False, True, False], [False, False, True, False]])
    eeg_mask = torch.ones(2, cfg.eeg_channels, dtype=torch.bool)
    eeg_mask[:, [0, 7, 31]] = False
    with torch.no_grad():
        reference = model(eeg, faces, eeg_mask, face_mask).logits
        changed_eeg = eeg.clone()
        changed_eeg[:, [0, 7, 31]] = torch.randn(2, 3, cfg.eeg_samples) * 100
        changed_eeg[0, 7, 5] = float("nan")
        changed_faces = faces.clone()
        changed_faces[~face_mask] = 255 - changed_faces[~face_mask]
        changed = model(changed_eeg, changed_faces, eeg_mask, face_mask).logits
        unmasked = model(changed_eeg.nan_to_num(), changed_faces, None, face_mask).logits
    torch.testing.assert_close(changed, reference, rtol=0, atol=1e-5)
    assert not torch.allclose(unmasked, reference, atol=1e-3), "the test must be able to fail"


def test_published_amil_pools_frames_into_one_token_without_gating():
    model = tiny_model(mil="amil", fusion="none")
    assert model.mil.scorer.gate is None and tiny_model(mil="gated_amil").mil.scorer.gate is not None
    cfg = model.config
    frames = torch.randn(2, cfg.num_instances, 5, cfg.d_model)
    mask = torch.ones(2, cfg.num_instances, dtype=torch.bool)
    selection = model.mil(frames, mask)
    assert selection.tokens.shape == (2, 1, cfg.d_model)
    expected = torch.einsum("bn,bnd->bd", selection.instance_weights, frames.mean(dim=2))
    torch.testing.assert_close(selection.tokens[:, 0], expected)


def test_global_weights_are_one_learned_weight_per_frame_position_for_every_bag():
    model = tiny_model(mil="global_weights", fusion="none")
    with torch.no_grad():
        model.mil.position_logits.copy_(torch.tensor([0.0, 3.0, -1.0, 2.0]))
    cfg = model.config
    selection = model.mil(torch.randn(3, cfg.num_instances, 5, cfg.d_model),
                          torch.ones(3, cfg.num_instances, dtype=torch.bool))
    chosen = (selection.instance_weights > 0).tolist()
    assert chosen == [[False, True, False, True]] * 3  # the same two positions whatever the frames hold
    with pytest.raises(DataError, match="global_weights"):
        model.mil(torch.randn(1, 3, 5, cfg.d_model), torch.ones(1, 3, dtype=torch.bool))


def test_cross_attention_has_the_encoder_dropout():
    for config in (MilmerConfig.paper(), MilmerConfig.tiny()):
        balancer = CrossAttentionBalancer(config)
        assert balancer.attention.dropout == config.dropout > 0
    model = tiny_model(fusion="cross_attention").train()
    tokens = torch.randn(2, 8, model.config.d_model)
    mask = torch.ones(2, 8, dtype=torch.bool)
    torch.manual_seed(1)
    first, _ = model.balancer(tokens, mask)
    second, _ = model.balancer(tokens, mask)
    assert not torch.allclose(first, second), "dropout must act in training"
    model.eval()
    torch.testing.assert_close(model.balancer(tokens, mask)[0], model.balancer(tokens, mask)[0])


def test_bag_without_faces_gives_finite_logits_and_gradients():
    model = tiny_model()
    model.train()
    eeg, faces = make_batch(model.config, batch=2)
    out = model(eeg, faces, face_mask=torch.zeros(2, model.config.num_instances, dtype=torch.bool))
    assert torch.isfinite(out.logits).all()
    out.logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_uint8_and_float_faces_agree_and_backbone_runs_once_on_all_frames():
    model = tiny_model()
    eeg, faces = make_batch(model.config, batch=2)
    batches = []
    model.backbone.patch_embed.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    with torch.no_grad():
        from_uint8 = model(eeg, faces).logits
        from_float = model(eeg, faces.float() / 255.0).logits
    torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=1e-5)
    assert batches == [2 * model.config.num_instances] * 2


def test_single_modality_models_need_only_their_input():
    eeg_only = tiny_model(modalities="eeg")
    face_only = tiny_model(modalities="face")
    eeg, faces = make_batch(eeg_only.config, batch=2)
    with torch.no_grad():
        assert eeg_only(eeg, None).logits.shape == (2, 4)
        assert face_only(None, faces).logits.shape == (2, 4)
    assert not hasattr(eeg_only, "backbone") and not hasattr(face_only, "eeg_tokens")
    with pytest.raises(DataError, match="faces must have shape"):
        face_only(eeg, None)


def test_wrong_shapes_are_clear_errors():
    model = tiny_model()
    cfg = model.config
    eeg, faces = make_batch(cfg, batch=2)
    with pytest.raises(DataError, match="EEG must have shape"):
        model(eeg[:, :16], faces)
    with pytest.raises(DataError, match=r"face frames must have shape \(M, 3, 64, 64\)"):
        model(eeg, faces[..., :32, :32])
    with pytest.raises(DataError, match="batch"):
        model(eeg[:1], faces)
    with pytest.raises(DataError, match="face_mask must have shape"):
        model(eeg, faces, face_mask=torch.ones(2, 3, dtype=torch.bool))


@pytest.mark.parametrize(("mil", "fusion"), [("weighted_topk", "cross_attention"), ("topk", "none"),
                                             ("amil", "mlp"), ("mean", "cross_attention"), ("first", "none"),
                                             ("gated_amil", "cross_attention"), ("global_weights", "mlp")])
def test_every_tiny_parameter_receives_gradient(mil, fusion):
    model = tiny_model(mil=mil, fusion=fusion, channel_embedding=True).train()
    eeg, faces = make_batch(model.config, batch=2)
    out = model(eeg, faces)
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 3])).backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    if mil in ("first", "mean"):
        assert not any(n.startswith("mil.") for n, _ in model.named_parameters())
    assert without == []


@pytest.mark.slow
def test_every_paper_parameter_receives_gradient():
    torch.manual_seed(0)
    model = create_model("paper").train()
    # Three frames per bag keep this cheap; the weighted top-3 still spreads weight over several frames.
    eeg, faces = make_batch(model.config, batch=2, instances=3)
    out = model(eeg, faces)
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])).backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []
    assert any(n.startswith("mil.scorer") for n, _ in model.named_parameters())


def cached_matches_full(model: Milmer, batch: int, instances: int) -> None:
    eeg, faces = make_batch(model.config, batch=batch, instances=instances, seed=3)
    face_mask = torch.ones(batch, instances, dtype=torch.bool)
    face_mask[0, -1] = False
    with torch.no_grad():
        full = model(eeg, faces, face_mask=face_mask)
        cache = {(b, i): model.embed_frames(faces[b, i][None])[0] for b in range(batch) for i in range(instances)}
        tokens = torch.stack([torch.stack([cache[b, i] for i in range(instances)]) for b in range(batch)])
        cached = model.forward_embedded(eeg, tokens, face_mask=face_mask)
    torch.testing.assert_close(cached.logits, full.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(cached.instance_weights, full.instance_weights, rtol=0, atol=1e-5)


def test_cached_embeddings_equal_full_forward_tiny():
    cached_matches_full(tiny_model(), batch=2, instances=4)


@pytest.mark.slow
def test_cached_embeddings_equal_full_forward_paper():
    torch.manual_seed(0)
    cached_matches_full(create_model("paper").eval(), batch=1, instances=4)


def test_tiny_model_learns_a_fixed_batch():
    model = tiny_model().train()
    eeg, faces = make_batch(model.config, batch=4)
    labels = torch.arange(4)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(eeg, faces).logits, labels)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_device_resolution_and_cpu_autocast():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(MilmerError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(MilmerError, match="CUDA is not available"):
            resolve_device("cuda")
    with autocast(torch.device("cpu")):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("mil", ["topk", "weighted_topk"])
def test_bf16_autocast_forward_and_backward(mil):
    # CPU bf16 autocast stands in for the GPU path: the same mixed dtypes meet in the MIL step.
    model = tiny_model(mil=mil)
    eeg, faces = make_batch(model.config, batch=2)
    face_mask = torch.tensor([[True, False, True, True], [False, False, False, False]])
    with torch.no_grad():
        reference = model(eeg, faces, face_mask=face_mask).logits
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(eeg, faces, face_mask=face_mask)
    out.logits.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(eeg, faces, face_mask=face_mask).logits
    torch.testing.assert_close(mixed.float(), reference, rtol=0, atol=0.05)


@pytest.mark.slow
def test_paper_sequence_is_cls_147_image_and_32_eeg_tokens_with_their_types():
    torch.manual_seed(0)
    model = create_model("paper").eval()
    tokenizer = model.eeg_tokens
    assert tokenizer.norm.normalized_shape == (384,) and tokenizer.channel is None
    assert (tokenizer.proj.in_features, tokenizer.proj.out_features) == (384, 768)
    assert model.balancer.queries.shape == (147, 768)
    assert model.balancer.queries.std().item() == pytest.approx(0.02, abs=1e-3)
    layers = model.encoder.layers
    assert len(layers) == 2 and all(
        (layer.self_attn.num_heads, layer.linear1.out_features, layer.dropout.p) == (12, 2048, 0.2) for layer in layers)
    assert model.head_dropout.p == 0.1 and model.head.out_features == 4 and model.token_type.num_embeddings == 2

    seen = {}
    model.balancer.register_forward_pre_hook(lambda module, args: seen.update(selected=args[0].shape))
    model.balancer.register_forward_hook(lambda module, args, output: seen.update(image=output[0]))
    model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(sequence=args[0], padding=kwargs["src_key_padding_mask"]),
        with_kwargs=True)
    gen = torch.Generator().manual_seed(0)
    eeg = torch.randn(1, 32, 384, generator=gen)
    frame_tokens = torch.randn(1, 10, 49, 768, generator=gen)  # what the Swin-T backbone gives per frame
    eeg_mask = torch.ones(1, 32, dtype=torch.bool)
    eeg_mask[0, 3] = False
    with torch.no_grad():
        model.forward_embedded(eeg, frame_tokens, eeg_mask=eeg_mask)
        eeg_tokens = torch.relu(tokenizer.proj(tokenizer.norm(eeg.masked_fill(~eeg_mask[:, :, None], 0.0))))
    assert seen["selected"] == (1, 3 * 49, 768)  # the weighted top-3 frames' tokens
    sequence = seen["sequence"]
    assert sequence.shape == (1, 1 + 147 + 32, 768)
    torch.testing.assert_close(sequence[:, 0], model.cls_token[:, 0])
    torch.testing.assert_close(sequence[:, 1:148], seen["image"] + model.token_type.weight[0])
    torch.testing.assert_close(sequence[:, 148:], eeg_tokens + model.token_type.weight[1])
    assert seen["padding"][0].tolist() == [False] * 148 + [i == 3 for i in range(32)]
