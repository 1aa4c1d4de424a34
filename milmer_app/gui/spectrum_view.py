"""Power spectrum (mean over channels) and relative band power of the recent EEG."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from milmer_app.gui import theme
from milmer_app.gui.no_data import NoDataOverlay
from milmer_app.gui.spectra import BANDS, power_spectrum, relative_band_powers


class SpectrumView(QtWidgets.QWidget):
    """Left: log power spectral density; right: band power as a share of the total."""

    seconds = 4.0   # data the spectrum is computed from

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.psd_plot = pg.PlotWidget()
        self.psd_plot.setMenuEnabled(False)
        self.psd_plot.hideButtons()
        self.psd_plot.setLogMode(x=False, y=True)
        self.psd_plot.setLabel("bottom", "frequency", units="Hz")
        self.psd_plot.setLabel("left", "power")
        self.psd_plot.setTitle("spectrum (mean of channels)", size="9pt")
        self.psd_curve = self.psd_plot.plot(pen=pg.mkPen(theme.ACCENT, width=1.5))

        self.band_plot = pg.PlotWidget()
        self.band_plot.setMenuEnabled(False)
        self.band_plot.hideButtons()
        self.band_plot.setMouseEnabled(x=False, y=False)
        self.band_plot.setYRange(0, 1, padding=0.02)
        self.band_plot.setTitle("band power share", size="9pt")
        self.band_names = list(BANDS)
        symbols = {"delta": "δ", "theta": "θ", "alpha": "α", "beta": "β", "gamma": "γ"}
        self.band_plot.getAxis("bottom").setTicks([[(i, symbols.get(n, n)) for i, n in enumerate(self.band_names)], []])
        self.band_plot.setToolTip(", ".join(f"{symbols[n]} {n} {lo:g}-{hi:g} Hz" for n, (lo, hi) in BANDS.items()))
        self.bars = pg.BarGraphItem(x=np.arange(len(self.band_names)), height=np.zeros(len(self.band_names)),
                                    width=0.7, brush=theme.ACCENT)
        self.band_plot.addItem(self.bars)
        self.shares: dict[str, float] = {}
        self.psd_empty = NoDataOverlay(self.psd_plot, "no EEG")
        self.band_empty = NoDataOverlay(self.band_plot, "no EEG")
        self.bars.setVisible(False)   # zero-height bars still draw their outlines

        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.psd_plot, 3)
        layout.addWidget(self.band_plot, 2)

    def draw(self, data: np.ndarray, srate: float) -> None:
        """Recompute from (C, n) samples at `srate` Hz."""
        if data.size == 0 or data.shape[1] < 16 or srate <= 0:
            return
        freqs, psd = power_spectrum(data, srate)
        keep = (freqs >= 0.5) & (freqs <= min(60.0, srate / 2))
        mean = psd[:, keep].mean(axis=0)
        self.psd_curve.setData(freqs[keep], np.maximum(mean, 1e-12))
        names, shares = relative_band_powers(freqs, psd)
        self.shares = dict(zip(names, (float(s) for s in shares), strict=True))
        heights = np.array([self.shares.get(name, 0.0) for name in self.band_names])
        self.bars.setOpts(height=heights)
        self.bars.setVisible(True)
        self.psd_empty.set_empty(False)
        self.band_empty.set_empty(False)

    def clear(self) -> None:
        """Nothing to show (no EEG source): a centred "no EEG" instead of empty axes."""
        self.psd_curve.setData([], [])
        self.bars.setOpts(height=np.zeros(len(self.band_names)))
        self.bars.setVisible(False)
        self.shares = {}
        self.psd_empty.set_empty(True)
        self.band_empty.set_empty(True)
