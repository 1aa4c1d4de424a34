"""The live engine's parts on their own: ring buffers, monitors, channel mapping, specs, bags, the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from milmer_app.bags import Bag
from milmer_app.buffers import Frame, FrameBuffer, SampleBuffer, StreamMonitor
from milmer_app.clock import local_clock
from milmer_app.inference import InferenceWorker, Predictor
from milmer_app.sources.registry import option_strings
from milmer_app.specs import parse_eeg_spec, parse_video_spec
from models.config import MilmerConfig
from models.contract import GENEVA_CHANNELS, InputContract
from models.errors import SourceError
from models.milmer import Milmer
from models.pipeline.channels import map_channels, normalise_label
from models.pipeline.streaming import StreamingEEG

pytestmark = pytest.mark.opencv  # run again under OpenCV 5 by the test command


def test_sample_buffer_wraps_without_losing_order():
    buffer = SampleBuffer(2, 10)
    seen = []
    buffer.add_listener(lambda chunk, times: seen.append(len(times)))
    for start in range(0, 27, 3):
        values = np.arange(start, start + 3, dtype=np.float32)
        buffer.write(np.vstack([values, -values]), values.astype(np.float64))
    data, times = buffer.latest(10)
    assert buffer.count == 27
    np.testing.assert_array_equal(times, np.arange(17, 27))
    np.testing.assert_array_equal(data[1], -np.arange(17, 27))
    more, times_since, position = buffer.since(24)
    np.testing.assert_array_equal(times_since, [24, 25, 26])
    assert position == 27 and seen == [3] * 9
    # A chunk longer than the buffer keeps its newest samples.
    big = np.arange(100, 125, dtype=np.float32)
    buffer.write(np.vstack([big, big]), big.astype(np.float64))
    np.testing.assert_array_equal(buffer.latest(5)[1], np.arange(120, 125))
    assert buffer.count == 52


def test_frame_buffer_keeps_the_newest_frames():
    frames = FrameBuffer(3)
    image = np.zeros((2, 2, 3), np.uint8)
    for i in range(5):
        frames.write(Frame(image, float(i), (1, i)))
    assert [f.timestamp for f in frames.between(0, 10)] == [2.0, 3.0, 4.0]
    assert frames.latest().key == (1, 4)


def test_monitor_counts_gaps_and_reports_loss_and_return():
    monitor = StreamMonitor(100.0, lost_after=0.05)
    now = local_clock()
    monitor.record(now - 1.0 + np.arange(50) / 100.0)
    monitor.record(now - 0.3 + np.arange(10) / 100.0)   # 0.21 s gap: 20 samples missing
    report, transition = monitor.check()
    assert report.gaps == 1 and report.dropped == 20 and transition is None
    deadline = local_clock() + 2.0
    while transition != "lost" and local_clock() < deadline:
        report, transition = monitor.check()
    assert transition == "lost" and report.lost
    monitor.record(np.array([local_clock()]))
    assert monitor.check()[1] == "back"


def test_labels_match_case_insensitively_with_aliases_and_decorations():
    assert normalise_label("EEG T3-REF") == "t7"
    assert normalise_label("t6") == "p8" and normalise_label("FCz") == "fcz"
    device = ["EEG FP1-REF", "t3", "Oz", "x1", "STI 014", "P8"]
    mapping = map_channels(device, ["Fp1", "T7", "Oz", "P8", "Cz"], "test stream", min_fraction=0.5)
    assert list(mapping.source_index) == [0, 1, 2, 5, -1]
    assert mapping.missing == ["Cz"] and mapping.ignored == ["x1", "STI 014"]
    data = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(mapping.apply(data)[:, 0], [0, 1, 2, 5, 0])


def test_too_few_matching_channels_is_a_clear_error():
    with pytest.raises(SourceError) as error:
        map_channels(["A1", "B2", "Fp1"], list(GENEVA_CHANNELS), "LSL name=Headset")
    message = str(error.value)
    assert "LSL name=Headset" in message and "only 1 of the model's 32" in message
    assert "A1, B2, Fp1" in message and "Fp1, AF3" in message
    assert "map=position" in error.value.hint


def test_specs_parse_and_reject():
    deap = parse_eeg_spec("deap:/data/my:deap:s02:7").options
    assert (str(deap.path), deap.subject, deap.trial) == ("/data/my:deap", 2, 7)
    lsl = parse_eeg_spec("lsl:type=EEG,map=position,min_channels=0.1").options
    assert lsl.by_position and lsl.min_channels == 0.1 and lsl.type == "EEG"
    board = parse_eeg_spec("brainflow:board=0,serial_port=/dev/ttyUSB0").options
    assert option_strings(board) == {"board": "0", "serial_port": "/dev/ttyUSB0"}
    assert option_strings(parse_video_spec("webcam:1,width=640").options) == {"width": "640", "index": "1"}
    for bad in ("lsl:", "lsl:foo", "deap:/x:1", "bogus:1", "brainflow:serial_port=x"):
        with pytest.raises(SourceError):
            parse_eeg_spec(bad)
    with pytest.raises(SourceError):
        parse_video_spec("camera:0")
    synthetic = parse_eeg_spec("brainflow:synthetic,min_channels=0.3,map=position")
    assert (synthetic.options.board == "synthetic" and synthetic.options.min_channels == 0.3
            and synthetic.options.by_position)
    # A typo in a numeric option is a SourceError naming the spec, not a ValueError from deep inside a source.
    for parse, bad in ((parse_eeg_spec, "lsl:name=X,timeout=abc"), (parse_eeg_spec, "lsl:type=EEG,min_channels=2"),
                       (parse_eeg_spec, "brainflow:synthetic,min_channels=x"), (parse_video_spec, "webcam:0,fps=x")):
        with pytest.raises(SourceError, match=f"source spec '{bad}'"):
            parse(bad)


def test_preprocessing_maps_resamples_and_references():
    contract = InputContract.for_deap(MilmerConfig.tiny())
    labels = ["Cz", "Fp1", "O2", "T3"]
    mapping = map_channels(labels, list(contract.eeg_channels), "s", min_fraction=0.1)
    prep = StreamingEEG(contract, mapping, source_rate=256.0)
    t = np.arange(256 * 5) / 256.0
    data = np.vstack([np.sin(2 * np.pi * f * t) * 10 + 100 for f in (8, 10, 12, 20)]).astype(np.float32)
    prep.feed(data, 50.0 + t)
    window = prep.window()
    eeg, mask = window.eeg, window.mask
    assert eeg.shape == (32, 384) and mask.sum() == 4 and not window.problems
    assert np.allclose(eeg[mask].mean(axis=0), 0, atol=1e-4)       # average reference over present channels
    assert np.all(eeg[~mask] == 0)
    assert abs(eeg[mask].mean()) < 1 and eeg[mask].std() > 3        # DC removed
    assert window.end == pytest.approx(50.0 + t[-1] - prep.delay, abs=1 / 256)


@pytest.fixture(scope="module")
def tiny_model() -> Milmer:
    torch.manual_seed(0)
    return Milmer(MilmerConfig.tiny()).eval()


def _bag(model: Milmer, keys, face_mask, start: float, seed: int) -> Bag:
    cfg = model.config
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 255, (cfg.num_instances, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    eeg = rng.standard_normal((cfg.eeg_channels, cfg.eeg_samples)).astype(np.float32)
    return Bag(start, start + 3.0, eeg, np.ones(cfg.eeg_channels, bool), crops, np.asarray(face_mask),
               list(keys), None, "test", local_clock())


def test_embedding_cache_gives_the_same_prediction_and_reuses_frames(tiny_model):
    names = ["a", "b", "c", "d"]
    cached = Predictor(tiny_model, names, "tiny", False, use_cache=True)
    plain = Predictor(tiny_model, names, "tiny", False, use_cache=False)
    first = _bag(tiny_model, [(1, i) for i in range(4)], [True, True, False, True], 0.0, seed=1)
    second = _bag(tiny_model, [(1, i) for i in range(2, 6)], [True, True, True, True], 1.0, seed=2)
    # The second bag shares frames (1, 2) and (1, 3) with the first: same crops for the same keys.
    second.crops[0] = first.crops[2]
    second.crops[1] = first.crops[3]
    for bag in (first, second):
        a, b = cached.predict(bag), plain.predict(bag)
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
        np.testing.assert_allclose(a.instance_weights, b.instance_weights, atol=1e-5)
    assert cached.cache.misses == 3 + 3 and cached.cache.hits == 1   # (1,3) reused; (1,2) was masked before
    with torch.inference_mode():
        faces = torch.from_numpy(second.crops).permute(0, 3, 1, 2)[None]
        direct = tiny_model(torch.from_numpy(second.eeg)[None], faces)
    np.testing.assert_allclose(torch.softmax(direct.logits, -1)[0].numpy(), cached.predict(second).probabilities,
                               atol=1e-5)


def test_worker_drops_stale_bags_instead_of_queueing(tiny_model):
    predictor = Predictor(tiny_model, ["a", "b", "c", "d"], "tiny", False)
    release = __import__("threading").Event()
    out = []

    def slow_listener(prediction):
        out.append(prediction)
        release.wait(5.0)

    worker = InferenceWorker(predictor, slow_listener)
    worker.start()
    try:
        bags = [_bag(tiny_model, [(2, 10 * i + j) for j in range(4)], [True] * 4, float(i), seed=i) for i in range(5)]
        worker.submit(bags[0])
        deadline = local_clock() + 10
        while not out and local_clock() < deadline:   # the worker is busy in the listener with bag 0
            release.wait(0.01)
        for bag in bags[1:]:
            worker.submit(bag)
        release.set()
        deadline = local_clock() + 10
        while worker.done < 2 and local_clock() < deadline:
            release.wait(0.01)
    finally:
        worker.stop()
    assert worker.dropped == 3
    assert [p.window_start for p in out] == [0.0, 4.0]


def test_settled_frames_are_the_frames_later_bags_use():
    from types import SimpleNamespace

    from milmer_app.bags import BagAssembler, CropCache
    from models.pipeline.faces import FaceCropper
    from training.synth import TrialVideoComposer

    contract = InputContract.for_deap(MilmerConfig.tiny())       # 4 instances over 3 s: grid every 0.75 s
    video = SimpleNamespace(buffer=FrameBuffer(200), fps=10.0, replay=None)
    composer = TrialVideoComposer(quadrant=0, strength=1.0, size=(240, 180), rng=np.random.default_rng(1))
    assembler = BagAssembler(contract, None, None, video, CropCache(FaceCropper(64)))
    prefetched = []
    settled = None
    for i in range(100):                                       # 10 s of frames at 10 fps, slightly late
        video.buffer.write(Frame(composer.frame(i / 10), 1000.0 + i / 10 + 0.013, (7, i)))
        frames, settled = assembler.settled_instances(settled)
        prefetched += [f.key for f in frames]
    assert len(prefetched) == len(set(prefetched))             # each grid time is settled once
    bag = assembler.assemble()
    assert bag is not None and bag.face_mask.all()
    assert set(bag.frame_keys) <= set(prefetched[-6:])
    assert bag.window_end - bag.window_start == pytest.approx(3.0)


def test_the_bag_takes_its_faces_from_the_span_of_its_eeg_window():
    from types import SimpleNamespace

    from milmer_app.bags import BagAssembler, CropCache
    from models.pipeline.faces import FaceCropper
    from training.synth import TrialVideoComposer

    contract = InputContract.for_deap(MilmerConfig.tiny())       # 3 s windows, 4 instances
    mapping = map_channels(list(contract.eeg_channels), list(contract.eeg_channels), "s")
    eeg = SimpleNamespace(buffer=SampleBuffer(32, 128 * 20), segment_start=float("-inf"), replay=None, name="eeg")
    noise = np.random.default_rng(0).standard_normal((32, 128 * 10)).astype(np.float32) * 10
    eeg.buffer.write(noise, 1000.0 + np.arange(128 * 10) / 128.0)
    # The camera runs 5 s ahead of the EEG (its frames arrive sooner): the bag must still use the EEG's span.
    video = SimpleNamespace(buffer=FrameBuffer(400), fps=10.0, replay=None)
    composer = TrialVideoComposer(quadrant=0, strength=1.0, size=(240, 180), rng=np.random.default_rng(2))
    stamps = {}
    for i in range(150):
        stamps[(3, i)] = 1000.0 + i / 10
        video.buffer.write(Frame(composer.frame(i / 10), stamps[(3, i)], (3, i)))
    prep = StreamingEEG(contract, mapping, 128.0)
    assembler = BagAssembler(contract, eeg, prep, video, CropCache(FaceCropper(64)))
    bag = assembler.assemble()
    assert bag is not None and bag.face_mask.all()
    # The window ends the pipeline's delay (the linear-phase band-pass: 48 samples) before the newest sample.
    assert prep.delay == pytest.approx(48 / 128) and bag.delay == pytest.approx(prep.delay)
    assert bag.window_end == pytest.approx(1010.0 - 1 / 128 - prep.delay)
    assert bag.window_start == pytest.approx(bag.window_end - 383 / 128)
    used = sorted(stamps[key] for key in bag.frame_keys)
    assert bag.window_start - 0.05 <= used[0] and used[-1] <= bag.window_end + 0.05, used
    assert used[-1] - used[0] >= 2.0                                  # spread over the window, not bunched


def test_model_description_names_provenance_and_marks_leaky_checkpoints():
    from models.provenance import describe_model

    honest = describe_model("tiny", {"protocol": "trial", "fold": 0, "dataset": {"root": "/data/synth"}})
    assert honest == "tiny preset · trial protocol · fold 1 · trained on synth"
    assert "LEAKY" in describe_model("paper", {"protocol": "paper", "leaky": True})
    # Written before checkpoints carried the flag: the protocol alone says it.
    assert "LEAKY" in describe_model("paper", {"protocol": "paper"})
    assert describe_model("", {"protocol": 3, "fold": True, "dataset": None}) == "no provenance"
