"""The Milmer network: Swin face tokens -> MIL selection -> balancing -> fusion with EEG tokens.

Differences from the published code (see docs and the reference notes):
- the top-k MIL scorer is a gated-attention MLP on each instance's mean-pooled token
  (d_model -> mil_hidden -> 1), not a Linear over 49*768 features, and it is trained:
  "weighted_topk" (and "global_weights", whose scores are one learned logit per frame
  position) scales the selected instances' tokens by their attention weights (renormalised
  over the selected, times their count so the mean scale stays 1); "topk" uses a
  straight-through estimator (tokens * (1 + w - w.detach()): the values are unchanged, the
  gradient reaches the scorer). "amil" is the published attention pooling of mean-pooled
  frame features into one token (hidden width mil_hidden instead of d_model); "gated_amil"
  is ours: gated attention weights pooling whole token sets.
- all B x N frames go through the backbone in one batch, normalised on the device;
- the CLS token is a registered parameter;
- optional learned per-electrode embedding with a key-padding mask for absent channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import Tensor, nn

from models.config import MilmerConfig
from models.contract import IMAGENET_MEAN, IMAGENET_STD
from models.errors import DataError

IMAGE_TOKEN, EEG_TOKEN = 0, 1


@dataclass
class MilmerOutput:
    logits: Tensor  # (B, K)
    instance_weights: Tensor  # (B, N): how much each face frame counted in the MIL step


@dataclass
class Selection:
    tokens: Tensor  # (B, S*L, D)
    token_mask: Tensor  # (B, S*L) True = valid
    instance_weights: Tensor  # (B, N)


def build_backbone(config: MilmerConfig) -> nn.Module:
    """A timm Swin with random weights and no classifier; weights come from our own files only."""
    return timm.create_model(config.backbone, pretrained=False, num_classes=0,
                             img_size=config.image_size, **config.backbone_kwargs)


class AttentionScorer(nn.Module):
    """Ilse et al. (2018) attention on one pooled feature per instance: w^T tanh(V h), or with
    ``gated`` their gated variant w^T (tanh(V h) * sigmoid(U h))."""

    def __init__(self, dim: int, hidden: int, gated: bool):
        super().__init__()
        self.value = nn.Linear(dim, hidden)
        self.gate = nn.Linear(dim, hidden) if gated else None
        # No bias: the softmax over instances ignores a shared offset, so it would never learn.
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, pooled: Tensor) -> Tensor:
        hidden = torch.tanh(self.value(pooled))
        if self.gate is not None:
            hidden = hidden * torch.sigmoid(self.gate(pooled))
        return self.score(hidden).squeeze(-1)


class MilSelector(nn.Module):
    """Turns a bag of per-frame token sets (B, N, L, D) into the tokens the fusion sees.

    first: the first present frame's tokens. mean: the present frames' tokens averaged.
    global_weights: one learned logit per frame position (the same for every bag), top-k positions
    among the present frames, scaled like weighted_topk. amil (published): each frame mean-pooled
    to one feature, attention-pooled over the frames into ONE token. gated_amil: gated attention
    weights pooling the frames' whole token sets (L tokens). topk / weighted_topk: an attention
    scorer on each frame's pooled feature picks the top-k frames' token sets.
    """

    def __init__(self, config: MilmerConfig):
        super().__init__()
        self.mode = config.mil
        self.top_k = config.top_k
        self.scorer = None
        self.position_logits = None
        if self.mode == "global_weights":
            # Zeros: every frame position starts with the same weight, as the published ones(1, N) under softmax.
            self.position_logits = nn.Parameter(torch.zeros(config.num_instances))
        elif self.mode != "first" and self.mode != "mean":
            self.scorer = AttentionScorer(config.d_model, config.mil_hidden, gated=self.mode != "amil")

    def forward(self, feats: Tensor, face_mask: Tensor) -> Selection:
        b, n, length, dim = feats.shape
        present = face_mask.to(feats.dtype)
        any_face = face_mask.any(dim=1)
        if self.mode == "first":
            first = face_mask.to(torch.int8).argmax(dim=1)  # index of the first present frame (0 if none)
            weights = nn.functional.one_hot(first, n).to(feats.dtype) * any_face[:, None].to(feats.dtype)
            pooled = feats.gather(1, first[:, None, None, None].expand(b, 1, length, dim))
            return self._single(pooled, any_face, weights)
        if self.mode == "mean":
            weights = present / present.sum(dim=1, keepdim=True).clamp_min(1.0)
            return self._single(torch.einsum("bn,bnld->bld", weights, feats)[:, None], any_face, weights)

        if self.position_logits is not None:
            if n != self.position_logits.shape[0]:
                raise DataError(f"global_weights MIL learned {self.position_logits.shape[0]} frame positions; "
                                f"a bag of {n} frames cannot use them")
            scores = self.position_logits.to(feats.dtype).unsqueeze(0).expand(b, n)
        else:
            scores = self.scorer(feats.mean(dim=2))
        # A finite fill keeps the softmax (and its gradient) finite for bags without any face.
        scores = scores.masked_fill(~face_mask, torch.finfo(scores.dtype).min)
        attention = torch.softmax(scores.float(), dim=1).to(feats.dtype) * present
        if self.mode == "amil":
            token = torch.einsum("bn,bnd->bd", attention, feats.mean(dim=2))
            return Selection(token[:, None], any_face[:, None], attention)
        if self.mode == "gated_amil":
            return self._single(torch.einsum("bn,bnld->bld", attention, feats)[:, None], any_face, attention)

        k = min(self.top_k, n)
        index = scores.topk(k, dim=1).indices  # (B, k)
        chosen_present = face_mask.gather(1, index)
        chosen_weight = attention.gather(1, index)
        if self.mode in ("weighted_topk", "global_weights"):
            total = chosen_weight.sum(dim=1, keepdim=True)
            normalised = chosen_weight / total.clamp_min(torch.finfo(total.dtype).tiny)
            scale = normalised * chosen_present.sum(dim=1, keepdim=True).to(feats.dtype)
        else:  # straight-through: value 1 for every present chosen frame, gradient d/dw = 1 to the scorer
            scale = (1.0 + chosen_weight - chosen_weight.detach()) * chosen_present.to(feats.dtype)
            normalised = chosen_weight / chosen_weight.sum(dim=1, keepdim=True).clamp_min(
                torch.finfo(chosen_weight.dtype).tiny)
        chosen = feats.gather(1, index[:, :, None, None].expand(b, k, length, dim)) * scale[:, :, None, None]
        weights = torch.zeros_like(attention).scatter(1, index, normalised.detach() * chosen_present)
        token_mask = chosen_present[:, :, None].expand(b, k, length).reshape(b, k * length)
        return Selection(chosen.reshape(b, k * length, dim), token_mask, weights)

    @staticmethod
    def _single(pooled: Tensor, any_face: Tensor, weights: Tensor) -> Selection:
        b, _, length, dim = pooled.shape
        return Selection(pooled.reshape(b, length, dim), any_face[:, None].expand(b, length), weights)


class CrossAttentionBalancer(nn.Module):
    """num_queries learned queries attend over the selected tokens: a fixed-size token set."""

    def __init__(self, config: MilmerConfig):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(config.num_queries, config.d_model) * 0.02)
        # Published: the encoder's dropout on the attention weights (0.2 in the paper preset).
        self.attention = nn.MultiheadAttention(config.d_model, config.num_heads, dropout=config.dropout,
                                               batch_first=True)

    def forward(self, tokens: Tensor, token_mask: Tensor) -> tuple[Tensor, Tensor]:
        b = tokens.shape[0]
        has_any = token_mask.any(dim=1)
        # A bag without faces would have every key masked (NaN); let it attend, then mask its outputs.
        key_padding = ~(token_mask | ~has_any[:, None])
        queries = self.queries.unsqueeze(0).expand(b, -1, -1)
        out, _ = self.attention(queries, tokens, tokens, key_padding_mask=key_padding, need_weights=False)
        return out, has_any[:, None].expand(b, out.shape[1])


class TokenMlp(nn.Module):
    """The published MLP alternative: d -> mlp_hidden -> d with GELU, per token."""

    def __init__(self, config: MilmerConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(config.d_model, config.mlp_hidden), nn.GELU(),
                                 nn.Linear(config.mlp_hidden, config.d_model))

    def forward(self, tokens: Tensor, token_mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(tokens), token_mask


class EegTokenizer(nn.Module):
    """One token per electrode: LayerNorm(T) -> Linear(T -> d) -> ReLU (published), + optional channel embedding."""

    def __init__(self, config: MilmerConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.eeg_samples)
        self.proj = nn.Linear(config.eeg_samples, config.d_model)
        self.channel = nn.Embedding(config.eeg_channels, config.d_model) if config.channel_embedding else None

    def forward(self, eeg: Tensor, eeg_mask: Tensor) -> Tensor:
        # Zero absent channels so that NaN/inf in them cannot leak through masked attention (0 * NaN).
        eeg = eeg.masked_fill(~eeg_mask[:, :, None], 0.0)
        tokens = torch.relu(self.proj(self.norm(eeg)))
        if self.channel is not None:
            tokens = tokens + self.channel.weight.unsqueeze(0)
        return tokens


class Milmer(nn.Module):
    """Multimodal MIL emotion classifier. Build with `Milmer(config)` or `models.create_model`.

    forward(eeg (B,C,T) float, faces (B,N,3,S,S) uint8 0-255 or float 0-1, eeg_mask (B,C), face_mask (B,N))
    -> MilmerOutput. Masks are bool, True = present. N may differ from config.num_instances (at least
    top_k for the top-k modes). An EEG-only model ignores `faces` (pass None) and returns zero instance
    weights of width num_instances; a face-only model ignores `eeg`. For live use, `embed_frames` runs
    the backbone on single frames whose tokens can be cached and fed to `forward_embedded`.
    """

    def __init__(self, config: MilmerConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.token_type = nn.Embedding(2, d)
        if config.uses_face:
            self.backbone = build_backbone(config)
            width = self.backbone.num_features
            self.backbone_proj = nn.Identity() if width == d else nn.Linear(width, d)
            self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
            self.mil = MilSelector(config)
            balancers = {"cross_attention": CrossAttentionBalancer, "mlp": TokenMlp}
            self.balancer = balancers[config.fusion](config) if config.fusion in balancers else None
        if config.uses_eeg:
            self.eeg_tokens = EegTokenizer(config)
        layer = nn.TransformerEncoderLayer(d, config.num_heads, config.ff_dim, config.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.encoder_layers, enable_nested_tensor=False)
        self.head_dropout = nn.Dropout(config.cls_dropout)
        self.head = nn.Linear(d, config.num_classes)
        # torch.channels_last where it is faster for the backbone's patch embedding (chosen per device by training).
        self.image_memory_format = torch.contiguous_format

    @property
    def device(self) -> torch.device:
        return self.cls_token.device

    def embed_frames(self, frames: Tensor) -> Tensor:
        """(M, 3, S, S) uint8 0-255 or float 0-1 -> backbone tokens (M, L, d_model), on the model's device."""
        return self.backbone_proj(self.frame_features(frames))

    def frame_features(self, frames: Tensor) -> Tensor:
        """(M, 3, S, S) uint8 0-255 or float 0-1 -> the backbone's own tokens (M, L, width), before the
        projection to d_model: what a frozen backbone's cache stores (`training.embeddings`)."""
        if not self.config.uses_face:
            raise DataError("this model uses EEG only: it has no face backbone")
        size = self.config.image_size
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (3, size, size):
            raise DataError(f"face frames must have shape (M, 3, {size}, {size}), got {tuple(frames.shape)}")
        frames = frames.to(self.device, non_blocking=True)
        dtype = self.cls_token.dtype
        images = frames.to(dtype) / 255.0 if frames.dtype == torch.uint8 else frames.to(dtype)
        images = (images - self.image_mean.to(dtype)) / self.image_std.to(dtype)
        images = images.contiguous(memory_format=self.image_memory_format)
        tokens = self.backbone.forward_features(images)  # (M, h, w, C) for timm Swin
        return tokens.flatten(1, -2)

    def forward(self, eeg: Tensor | None, faces: Tensor | None, eeg_mask: Tensor | None = None,
                face_mask: Tensor | None = None) -> MilmerOutput:
        frame_tokens = None
        if self.config.uses_face:
            if faces is None or faces.dim() != 5:
                raise DataError("faces must have shape (B, N, 3, S, S), got "
                                f"{None if faces is None else tuple(faces.shape)}")
            b, n = faces.shape[:2]
            frame_tokens = self.embed_frames(faces.reshape(b * n, *faces.shape[2:]))
            frame_tokens = frame_tokens.reshape(b, n, *frame_tokens.shape[1:])
        return self.forward_embedded(eeg, frame_tokens, eeg_mask, face_mask)

    def forward_frame_features(self, eeg: Tensor | None, features: Tensor | None, eeg_mask: Tensor | None = None,
                               face_mask: Tensor | None = None) -> MilmerOutput:
        """Everything after the backbone itself; features (B, N, L, width) from `frame_features` (any float
        dtype, e.g. a float16 cache). A model with a frozen backbone trains through this."""
        if features is not None and self.config.uses_face:
            features = self.backbone_proj(features.to(self.device, self.cls_token.dtype))
        return self.forward_embedded(eeg, features, eeg_mask, face_mask)

    def forward_embedded(self, eeg: Tensor | None, frame_tokens: Tensor | None, eeg_mask: Tensor | None = None,
                         face_mask: Tensor | None = None) -> MilmerOutput:
        """Everything after the backbone; frame_tokens (B, N, L, d_model) from `embed_frames`."""
        cfg = self.config
        dtype = self.cls_token.dtype
        batch = self._batch_size(eeg, frame_tokens)
        parts = [self.cls_token.expand(batch, -1, -1)]
        valid = [torch.ones(batch, 1, dtype=torch.bool, device=self.device)]
        num_frames = frame_tokens.shape[1] if frame_tokens is not None else cfg.num_instances
        weights = torch.zeros(batch, num_frames, dtype=dtype, device=self.device)

        if cfg.uses_face:
            if frame_tokens is None or frame_tokens.dim() != 4:
                raise DataError("frame tokens must have shape (B, N, tokens, d_model), got "
                                f"{None if frame_tokens is None else tuple(frame_tokens.shape)}")
            frame_tokens = frame_tokens.to(self.device, dtype)
            n = frame_tokens.shape[1]
            if n < cfg.selected_instances:
                raise DataError(f"a bag needs at least {cfg.selected_instances} face frames, got {n}")
            face_mask = self._mask(face_mask, (batch, n), "face_mask")
            selection = self.mil(frame_tokens, face_mask)
            tokens, token_mask = selection.tokens, selection.token_mask
            if self.balancer is not None:
                tokens, token_mask = self.balancer(tokens, token_mask)
            parts.append(tokens + self.token_type.weight[IMAGE_TOKEN])
            valid.append(token_mask)
            weights = selection.instance_weights

        if cfg.uses_eeg:
            expected = (batch, cfg.eeg_channels, cfg.eeg_samples)
            if eeg is None or tuple(eeg.shape) != expected:
                raise DataError(f"EEG must have shape {expected}, got {None if eeg is None else tuple(eeg.shape)}")
            eeg_mask = self._mask(eeg_mask, expected[:2], "eeg_mask")
            tokens = self.eeg_tokens(eeg.to(self.device, dtype), eeg_mask)
            parts.append(tokens + self.token_type.weight[EEG_TOKEN])
            valid.append(eeg_mask)

        sequence = torch.cat(parts, dim=1)
        encoded = self.encoder(sequence, src_key_padding_mask=~torch.cat(valid, dim=1))
        logits = self.head(self.head_dropout(encoded[:, 0]))
        return MilmerOutput(logits=logits, instance_weights=weights)

    def _batch_size(self, eeg: Tensor | None, frame_tokens: Tensor | None) -> int:
        sizes = {t.shape[0] for t in (eeg, frame_tokens) if t is not None}
        if len(sizes) != 1:
            raise DataError(f"EEG and face batches disagree or are both missing (batch sizes {sorted(sizes)})")
        return sizes.pop()

    def _mask(self, mask: Tensor | None, shape: tuple[int, int], name: str) -> Tensor:
        if mask is None:
            return torch.ones(shape, dtype=torch.bool, device=self.device)
        if tuple(mask.shape) != shape:
            raise DataError(f"{name} must have shape {shape}, got {tuple(mask.shape)}")
        return mask.to(self.device, torch.bool)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
