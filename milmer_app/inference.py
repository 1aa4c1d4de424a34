"""The inference worker: one thread, the newest bag wins, per-frame embeddings cached.

Bags arrive in a one-slot mailbox: a bag that is still waiting when a newer one
comes is dropped (counted in `dropped`), so the worker never queues behind stale
work. The face backbone runs once per new frame (`Milmer.embed_frames`); frames
shared by overlapping windows reuse their tokens from an LRU cache and only the
rest of the network runs (`Milmer.forward_embedded`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable

import numpy as np
import torch

from milmer_app.bags import Bag, FrameKey
from milmer_app.clock import local_clock
from milmer_app.prediction import Prediction
from milmer_app.stopping import join_or_warn
from models.device import LIVE_AUTOCAST, autocast
from models.errors import DataError
from models.milmer import Milmer

log = logging.getLogger(__name__)


class NonFiniteOutput(DataError):
    """The model gave NaN/Inf for a window: no prediction is emitted for it."""


class EmbeddingCache:
    """Backbone tokens per frame key (LRU)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[FrameKey, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: FrameKey) -> torch.Tensor | None:
        tokens = self._items.get(key)
        if tokens is not None:
            self._items.move_to_end(key)
        return tokens

    def put(self, key: FrameKey, tokens: torch.Tensor) -> None:
        self._items[key] = tokens
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


class Predictor:
    """Runs the model on bags (synchronously); the worker thread and the bench share it."""

    def __init__(self, model: Milmer, class_names: list[str], model_name: str, demo_model: bool,
                 use_cache: bool = True, cache_windows: int = 4):
        self.model = model.eval()
        self.config = model.config
        self.class_names = class_names
        self.model_name = model_name
        self.demo_model = demo_model
        self.cache = EmbeddingCache(cache_windows * self.config.num_instances) if use_cache else None
        self._token_shape: tuple[tuple[int, ...], torch.dtype] | None = None

    def _frame_tokens(self, bag: Bag) -> torch.Tensor:
        device = self.model.device
        present = [i for i in range(len(bag.face_mask)) if bag.face_mask[i]]
        wanted: dict[int, torch.Tensor] = {}
        todo = []
        for i in present:
            key = bag.frame_keys[i]
            cached = self.cache.get(key) if self.cache is not None and key is not None else None
            if cached is not None:
                wanted[i] = cached
                self.cache.hits += 1
            else:
                todo.append(i)
        if todo:
            frames = torch.from_numpy(np.ascontiguousarray(bag.crops[todo])).permute(0, 3, 1, 2)
            tokens = self.model.embed_frames(frames.to(device))
            for row, i in enumerate(todo):
                wanted[i] = tokens[row]
                key = bag.frame_keys[i]
                if self.cache is not None and key is not None:
                    self.cache.put(key, tokens[row])
                    self.cache.misses += 1
        if self._token_shape is None:
            if wanted:
                sample = next(iter(wanted.values()))
            else:  # no face yet: learn the token shape from a blank frame
                size = self.config.image_size
                sample = self.model.embed_frames(torch.zeros(1, 3, size, size, dtype=torch.uint8, device=device))[0]
            self._token_shape = (tuple(sample.shape), sample.dtype)
        shape, dtype = self._token_shape
        out = torch.zeros((1, len(bag.face_mask), *shape), dtype=dtype, device=device)
        for i, tokens in wanted.items():
            out[0, i] = tokens
        return out

    def warm(self, items: list[tuple[FrameKey, np.ndarray]]) -> int:
        """Embed face crops (key, RGB (S, S, 3)) ahead of their window; returns how many were new."""
        if self.cache is None or not self.config.uses_face:
            return 0
        todo = [(key, crop) for key, crop in items if self.cache.get(key) is None]
        if not todo:
            return 0
        frames = torch.from_numpy(np.stack([crop for _, crop in todo])).permute(0, 3, 1, 2)
        with torch.inference_mode(), autocast(self.model.device, LIVE_AUTOCAST):
            tokens = self.model.embed_frames(frames.to(self.model.device))
        for row, (key, _) in enumerate(todo):
            self.cache.put(key, tokens[row])
        return len(todo)

    def predict(self, bag: Bag) -> Prediction:
        device = self.model.device
        with torch.inference_mode(), autocast(device, LIVE_AUTOCAST):
            frame_tokens = self._frame_tokens(bag) if self.config.uses_face else None
            eeg = torch.from_numpy(bag.eeg)[None].to(device) if self.config.uses_eeg else None
            eeg_mask = torch.from_numpy(bag.eeg_mask)[None].to(device) if self.config.uses_eeg else None
            face_mask = torch.from_numpy(bag.face_mask)[None].to(device) if self.config.uses_face else None
            output = self.model.forward_embedded(eeg, frame_tokens, eeg_mask, face_mask)
            probabilities = torch.softmax(output.logits.float(), dim=-1)[0].cpu().numpy()
            weights = output.instance_weights.float()[0].cpu().numpy()
        if not (np.isfinite(probabilities).all() and np.isfinite(weights).all()):
            raise NonFiniteOutput(f"the model's output for the window ending {bag.window_end:.3f} is not finite")
        emitted = local_clock()
        quadrant = int(np.argmax(probabilities))
        return Prediction(
            window_start=bag.window_start, window_end=bag.window_end, emitted=emitted,
            quadrant=quadrant, label=self.class_names[quadrant],
            probabilities=[float(p) for p in probabilities], instance_weights=[float(w) for w in weights],
            face_mask=[bool(m) for m in bag.face_mask], latency=emitted - bag.window_end, truth=bag.truth,
            demo_model=self.demo_model, crops=bag.crops, model=self.model_name,
            eeg_channels_used=int(bag.eeg_mask.sum()), source=bag.source, delay=bag.delay,
            eeg_channels_masked=list(bag.eeg_masked), eeg=bag.eeg, eeg_mask=bag.eeg_mask, media_time=bag.media_time,
            face_quality=bag.face_quality, face_problems=list(bag.face_problems))


class InferenceWorker:
    """A thread that predicts the newest submitted bag and hands each prediction to `on_prediction`.

    Between bags it embeds prefetched face crops (`prefetch`), so that when a window
    completes most of its frames are already in the cache. Bags always go first.
    """

    def __init__(self, predictor: Predictor, on_prediction: Callable[[Prediction], None]):
        self.predictor = predictor
        self.on_prediction = on_prediction
        self.dropped = 0
        self.done = 0
        self.non_finite = 0  # windows whose model output was NaN/Inf: counted, never emitted
        self._slot: Bag | None = None
        self._prefetch: deque[tuple[FrameKey, np.ndarray]] = deque(maxlen=4 * predictor.config.num_instances)
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            join_or_warn(self._thread, 30.0, "the inference worker", "its last prediction may still arrive")
            self._thread = None

    def use(self, predictor: Predictor) -> None:
        """Predict with `predictor` from the next bag on (the bag being predicted finishes with the old one)."""
        with self._cond:
            self.predictor = predictor
            self._prefetch.clear()

    def submit(self, bag: Bag) -> None:
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
                log.debug("inference busy: dropped the bag ending %.3f", self._slot.window_end)
            self._slot = bag
            self._cond.notify_all()

    def prefetch(self, key: FrameKey, crop: np.ndarray) -> None:
        """Queue a face crop for embedding ahead of its window (the oldest are dropped if it overflows)."""
        with self._cond:
            self._prefetch.append((key, crop))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slot is not None or self._prefetch or self._stopping)
                if self._stopping:
                    return
                bag, self._slot = self._slot, None
                early: list[tuple[FrameKey, np.ndarray]] = []
                if bag is None:
                    early = list(self._prefetch)
                    self._prefetch.clear()
            if bag is None:
                try:
                    self.predictor.warm(early)
                except Exception:
                    log.exception("embedding prefetched frames failed")
                continue
            try:
                prediction = self.predictor.predict(bag)
            except NonFiniteOutput as exc:
                self.non_finite += 1
                if self.non_finite == 1 or self.non_finite % 100 == 0:
                    log.warning("%s; no prediction emitted (%d such window(s) so far)", exc, self.non_finite)
                continue
            except Exception:  # keep predicting the next windows; the error is in the log
                log.exception("inference failed for the window ending %.3f", bag.window_end)
                continue
            self.done += 1
            self.on_prediction(prediction)
