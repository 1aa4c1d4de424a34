"""Colours shared by the window's views (one dark theme, readable on screenshots)."""

from __future__ import annotations

BACKGROUND = "#1e1f22"
FOREGROUND = "#d8dade"
MUTED = "#6f737a"
ACCENT = "#4fa3ff"
GOOD = "#4cc38a"
WARNING = "#f0a03c"
ERROR = "#ef5350"
DEMO_BADGE = "background:#f0c000;color:#111;font-weight:bold;padding:1px 6px;border-radius:3px;"
TRACE_COLORS = ["#8ab4f8", "#c6d0e0"]
CLASS_COLORS = ["#ef8f3c", "#4cc38a", "#6fa8ff", "#e0607e", "#b48ef0", "#d6d65c"]


def configure_pyqtgraph() -> None:
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=False, background=BACKGROUND, foreground=FOREGROUND)


def style_sheet() -> str:
    return f"""
    QWidget {{ background: {BACKGROUND}; color: {FOREGROUND}; }}
    QGroupBox {{ border: 1px solid #3a3d42; border-radius: 4px; margin-top: 14px; padding-top: 4px; }}
    QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; color: {ACCENT}; }}
    QPushButton {{ background: #2c2f34; border: 1px solid #464a51; border-radius: 3px; padding: 3px 10px; }}
    QPushButton:hover {{ background: #363a40; }}
    QPushButton:checked {{ background: #6b2d2d; border-color: {ERROR}; }}
    QPushButton:disabled {{ color: {MUTED}; }}
    QLineEdit, QComboBox, QSpinBox, QDoubleSpinBox, QTableWidget, QListWidget {{
        background: #26282c; border: 1px solid #3a3d42; border-radius: 3px; padding: 1px 3px; }}
    QHeaderView::section {{ background: #2c2f34; color: {FOREGROUND}; border: none; padding: 2px 4px; }}
    QStatusBar QLabel {{ padding: 0 6px; }}
    QToolBar {{ border: none; spacing: 6px; }}
    QSlider::groove:horizontal {{ height: 4px; background: #3a3d42; border-radius: 2px; }}
    QSlider::handle:horizontal {{ width: 12px; margin: -5px 0; background: {ACCENT}; border-radius: 6px; }}
    QSlider::handle:horizontal:disabled {{ background: {MUTED}; }}
    QSplitter::handle {{ background: #2c2f34; }}
    """
