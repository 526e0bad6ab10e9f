"""The model card's presence section (``python -m models.training.presence_check``), on a few real
images: a row per model for the test fold, and per BUS-BRA scanner for validation."""

from __future__ import annotations

import re
from pathlib import Path

from models.training.presence_check import presence_section


def test_the_section_scores_normals_lesions_and_crops_per_scanner(shared_data: Path) -> None:
    text = presence_section(shared_data, ["emt_net"], crops=1, limit=12)
    test_rows = [line for line in text.splitlines() if "| BUSI fold 0 |" in line]
    assert len(test_rows) == 1 and test_rows[0].startswith("| emt_net (lesion threshold 0.")
    cells = [c.strip() for c in test_rows[0].split("|")[3:6]]
    for cell in cells:  # a share and its count, e.g. "0.000 (2)"
        assert re.fullmatch(r"[01]\.\d{3} \(\d+\)", cell), cell
    scanners = [line for line in text.splitlines() if "| BUS-BRA kFold 1, " in line]
    assert scanners and all(line.split("|")[3].strip() == "–" for line in scanners)  # BUS-BRA: no normal image
    assert "| emt_net | BUSI fold 1 |" in text and "kernels" in text
