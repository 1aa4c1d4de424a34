"""`--eeg brainflow:...`: a BrainFlow board (the source itself: `milmer_app.sources.brainflow_board`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any

from milmer_app.sources.channel_options import UNITS, ChannelOptions
from milmer_app.sources.registry import BuildContext, OptionError, SourceKind, SourceSpec, option, register
from models.errors import SourceError


@dataclass(frozen=True, kw_only=True)
class BrainFlowOptions(ChannelOptions):
    """The board, and BrainFlowInputParams' fields by their own names (`connection()`)."""

    board: str = option(help="'synthetic', a BoardIds number or name", metavar="ID|NAME")
    serial_port: str | None = option(None, "serial port, e.g. /dev/ttyUSB0")
    mac_address: str | None = option(None, "Bluetooth MAC address")
    ip_address: str | None = option(None, "IP address")
    ip_address_aux: str | None = option(None, "auxiliary IP address")
    ip_address_anc: str | None = option(None, "ancillary IP address")
    ip_port: int | None = option(None, "IP port", low=0, high=65535)
    ip_port_aux: int | None = option(None, "auxiliary IP port", low=0, high=65535)
    ip_port_anc: int | None = option(None, "ancillary IP port", low=0, high=65535)
    ip_protocol: int | None = option(None, "BrainFlow IpProtocolTypes number", low=0, high=16)
    other_info: str | None = option(None, "board-specific extra information")
    timeout: int | None = option(None, "board discovery timeout in seconds", above=0, high=3600, metavar="S")
    serial_number: str | None = option(None, "device serial number")
    file: str | None = option(None, "file for playback/streaming boards", metavar="PATH")
    file_aux: str | None = option(None, "auxiliary file", metavar="PATH")
    file_anc: str | None = option(None, "ancillary file", metavar="PATH")
    master_board: int | None = option(None, "master board id (playback/streaming boards)")
    unit: str | None = option(None, "what the board's EEG rows are in [default uV, as BrainFlow returns them]",
                              choices=UNITS)

    def check(self) -> None:
        if not self.board.lstrip("-").isdigit() and not self.board.replace("-", "_").replace("_", "").isalnum():
            raise OptionError("board", f"must be a BoardIds number or name, got '{self.board}'")

    def connection(self) -> dict[str, Any]:
        """The BrainFlowInputParams fields given (every option but the board, its unit and the channel mapping)."""
        skip = {"board", "unit"} | {f.name for f in fields(ChannelOptions)}
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in skip and getattr(self, f.name) is not None}


def board_id(board: str) -> int:
    """A board given as a BoardIds number or name (`synthetic`, `cyton`, `CYTON_BOARD`, ...) -> its id."""
    text = board.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    with warnings.catch_warnings():   # brainflow finds its library through the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from brainflow.board_shim import BoardIds
    name = text.upper().replace("-", "_")
    for candidate in (name, f"{name}_BOARD"):
        if candidate in BoardIds.__members__:
            return BoardIds[candidate].value
    raise SourceError(f"unknown BrainFlow board '{board}'", hint="use a BoardIds number or name, e.g. board=synthetic")


def brainflow_boards() -> list[tuple[str, int]]:
    """(name, id) of every board BrainFlow knows, the synthetic board first (the Sources panel's list)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brainflow.board_shim import BoardIds

    boards = [(board.name.lower(), int(board.value)) for board in BoardIds if board.value >= -3]
    return sorted(boards, key=lambda item: (item[1] != -1, item[0]))


def check_brainflow(spec: SourceSpec, eeg: SourceSpec) -> None:
    board = spec.options.board
    if board.strip().lower() != "synthetic":   # the one name known without loading BrainFlow
        board_id(board)


def build_brainflow(spec: SourceSpec, context: BuildContext):
    from milmer_app.sources.brainflow_board import BrainFlowSource

    o: BrainFlowOptions = spec.options
    return BrainFlowSource(board_id(o.board), o.connection(), unit=o.unit)


register(SourceKind("brainflow", "eeg", "BrainFlow board",
                    "a BrainFlow board ('synthetic' needs no hardware) with its connection parameters",
                    BrainFlowOptions, build_brainflow, "milmer_app.gui.source_pages:BrainFlowPage",
                    grammar="brainflow:synthetic|board=ID|NAME[,OPTION=VALUE...]", head="board",
                    check=check_brainflow, example="brainflow:board=0,serial_port=/dev/ttyUSB0", order=30))
