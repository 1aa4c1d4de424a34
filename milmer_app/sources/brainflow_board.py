"""An EEG board through BrainFlow: any board id and its connection parameters.

`brainflow:synthetic` is BrainFlow's synthetic board (no hardware). BrainFlow
stamps samples with wall-clock seconds; they are moved onto the LSL clock by
the offset between the two clocks measured at connect. BrainFlow gives EEG rows
in microvolts; a spec's `unit=` overrides that for a board that does not.
Markers (`BoardShim.insert_marker`, or a board's own trigger input) arrive in the
board's marker channel: every non-zero value there becomes a marker at its
sample's time, its text the number (`3`, `2.5`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from milmer_app.clock import wall_to_lsl_offset
from milmer_app.sources.base import EEGSource
from models.errors import SourceError
from models.pipeline.units import factor_to_microvolts, parse_unit

log = logging.getLogger(__name__)

def _brainflow():
    """brainflow.board_shim with its native library loaded and its logger silenced.

    BrainFlow finds its library through the deprecated pkg_resources on first use; the
    warning that causes is noise for our users.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from brainflow import board_shim

        board_shim.BoardShim.disable_board_logger()
    return board_shim


class BrainFlowSource(EEGSource):
    """Board `board_id` opened with `params` (BrainFlowInputParams fields by name); `unit`: what its EEG
    rows are in when not BrainFlow's microvolts."""

    def __init__(self, board_id: int, params: dict[str, Any] | None = None, *, unit: str | None = None):
        input_params = _brainflow().BrainFlowInputParams()
        self.board_id = int(board_id)
        super().__init__(f"BrainFlow board {self.board_id}")
        for key, value in (params or {}).items():
            if not hasattr(input_params, key):
                raise SourceError(f"BrainFlow board {self.board_id}: unknown BrainFlow parameter '{key}'")
            setattr(input_params, key, value)
        self._params = input_params
        forced = parse_unit(unit) if unit is not None else None
        self.unit, self.unit_origin = (forced, "spec") if forced is not None else ("µV", "device")
        self._scale = factor_to_microvolts(self.unit)
        self._board = None
        self._eeg_rows: list[int] = []
        self._ts_row = 0
        self._marker_row: int | None = None
        self._offset = 0.0

    def _open(self) -> None:
        board_shim = _brainflow()
        BoardShim, BrainFlowError = board_shim.BoardShim, board_shim.BrainFlowError
        board = None
        try:
            self.srate = float(BoardShim.get_sampling_rate(self.board_id))
            self._eeg_rows = list(BoardShim.get_eeg_channels(self.board_id))
            self._ts_row = BoardShim.get_timestamp_channel(self.board_id)
            try:
                self._marker_row = BoardShim.get_marker_channel(self.board_id)
            except BrainFlowError:
                self._marker_row = None      # a board without a marker channel
            board = BoardShim(self.board_id, self._params)
            log.info("%s: starting the board session", self.name)
            board.prepare_session()
            board.start_stream(int(self.srate * 60))
        except BrainFlowError as exc:
            if board is not None and board.is_prepared():   # the stream failed to start: free the device
                board.release_session()
            raise SourceError(f"{self.name}: cannot start the board: {exc}",
                              hint="check the board id, serial port or address, "
                                   "and that no other program holds the board") from exc
        try:
            names = list(BoardShim.get_eeg_names(self.board_id))
        except BrainFlowError:
            names = []
        if len(names) != len(self._eeg_rows):
            log.warning("%s: board has no electrode names; naming them ch1..ch%d", self.name, len(self._eeg_rows))
            names = [f"ch{i + 1}" for i in range(len(self._eeg_rows))]
        self.channel_names = names
        self._board = board
        self._offset = wall_to_lsl_offset()
        log.info("%s: %d EEG channels at %g Hz: %s", self.name, len(names), self.srate, ", ".join(names))

    def _pull(self) -> bool:
        assert self._board is not None
        data = self._board.get_board_data()
        if data.shape[1] == 0:
            self._stop.wait(0.02)
            return True
        eeg = np.ascontiguousarray(data[self._eeg_rows], dtype=np.float32)
        if self._scale != 1.0:
            eeg *= self._scale
        stamps = data[self._ts_row].astype(np.float64) + self._offset
        self.push(eeg, stamps)
        if self._marker_row is not None:
            values = data[self._marker_row]
            for index in np.flatnonzero(values):
                self.emit_marker(f"{values[index]:g}", float(stamps[index]))
        self._stop.wait(0.02)
        return True

    def _close(self) -> None:
        if self._board is not None:
            BrainFlowError = _brainflow().BrainFlowError
            try:
                self._board.stop_stream()
                self._board.release_session()
            except BrainFlowError:
                log.warning("%s: board did not stop cleanly", self.name, exc_info=True)
            self._board = None
