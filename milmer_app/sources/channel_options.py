"""Options shared by the EEG kinds whose device channels are mapped onto the model's by label."""

from __future__ import annotations

from dataclasses import dataclass

from milmer_app.sources.registry import Options, option
from models.pipeline.channels import MONTAGES
from models.pipeline.units import SPEC_UNITS as UNITS

__all__ = ["UNITS", "ChannelOptions", "channel_options"]


@dataclass(frozen=True, kw_only=True)
class ChannelOptions(Options):
    map: str = option("label", "match the model's channels by label, or feed them in the device's order",
                      choices=("label", "position"))
    min_channels: float | None = option(None, "fraction of the model's channels that must be found "
                                              "(default: the engine's, 0.25)", above=0.0, high=1.0,
                                        metavar="FRACTION")
    montage: str | None = option(None, "read BioSemi position codes (A1..A32, B1..B32) as the cap's 10-20 names "
                                       "(MNE's standard montages)", choices=MONTAGES)

    @property
    def by_position(self) -> bool:
        return self.map == "position"


def channel_options(spec) -> ChannelOptions:
    """How a spec's channels map onto the model's: its own options, or the defaults for a kind without them."""
    return spec.options if isinstance(spec.options, ChannelOptions) else ChannelOptions()
