"""`python -m milmer_app.sources README.md`: rewrite README's list of source specs from the registry."""

from __future__ import annotations

import sys
from pathlib import Path

from milmer_app.sources.registry import with_reference

readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
readme.write_text(with_reference(readme.read_text()))
