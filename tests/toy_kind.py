"""A toy EEG source kind written by docs/architecture.md's recipe ("Adding a source kind"): this one
module is all it takes. tests/test_source_registry.py loads it and uses it from the command line, the
preflight and the Sources panel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from milmer_app.clock import local_clock
from milmer_app.sources.base import EEGSource
from milmer_app.sources.registry import BuildContext, Options, SourceKind, SourceSpec, option, register
from models.errors import SourceError
from models.pipeline.eeg import GENEVA_CHANNELS


@dataclass(frozen=True, kw_only=True)
class ToyOptions(Options):
    seconds: float = option(4.0, "how long the toy plays", above=0.0, high=60.0, metavar="S")
    amplitude: float = option(20.0, "sine amplitude in microvolts", above=0.0, metavar="UV")


class ToySource(EEGSource):
    """32 Geneva channels of 10 Hz sine at 128 Hz, paced by the clock, for `seconds`."""

    def __init__(self, *, seconds: float, amplitude: float):
        super().__init__(f"toy {seconds:g} s")
        self.seconds, self.amplitude = seconds, amplitude

    def _open(self) -> None:
        self.channel_names = list(GENEVA_CHANNELS)
        self.srate = 128.0
        self._start = local_clock()
        self._sent = 0

    def _pull(self) -> bool:
        total = int(self.seconds * self.srate)
        due = min(int((local_clock() - self._start) * self.srate), total)
        if due > self._sent:
            index = np.arange(self._sent, due)
            wave = self.amplitude * np.sin(2 * np.pi * 10 * index / self.srate)
            self.push(np.tile(wave, (32, 1)).astype(np.float32), self._start + index / self.srate)
            self._sent = due
        if self._sent >= total:
            return False
        self._stop.wait(0.02)
        return True


def build_toy(spec: SourceSpec, context: BuildContext) -> ToySource:
    return ToySource(seconds=spec.options.seconds, amplitude=spec.options.amplitude)


def check_toy(spec: SourceSpec, eeg: SourceSpec) -> None:
    if spec.options.amplitude > 1000:
        raise SourceError(f"toy: {spec.options.amplitude:g} uV is no EEG")


register(SourceKind("toy", "eeg", "Toy sine", "a sine on every channel (tests)", ToyOptions, build_toy,
                    grammar="toy[:seconds=S,amplitude=UV]", check=check_toy))
