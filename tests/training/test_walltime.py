"""Training wall time per device kind (no torch needed)."""

from __future__ import annotations

from models.training.walltime import add_wall, device_kind, wall_time_text


def test_a_fine_tune_adds_its_wall_time_to_its_start_by_device() -> None:
    """A CPU fine-tune of GPU-trained weights reads "8 min on a GPU + 5 min on 2 CPU cores", not 13
    minutes on the CPU (hgm_net 1.1.0 starts from emt_net 1.1.0's GPU weights)."""
    assert [device_kind(d) for d in ("cuda", "cuda:1", "cpu")] == ["cuda", "cuda", "cpu"]
    start = {"cuda": 488.8}
    by_device = add_wall(start, "cpu", 300.84)
    assert by_device == {"cuda": 488.8, "cpu": 300.8}
    assert add_wall(start, "cuda", 10.0) == {"cuda": 498.8} and start == {"cuda": 488.8}  # a new dict
    assert wall_time_text({"train_wall_s": 789.6, "device": "cpu", "train_wall_s_by_device": by_device}) == \
        "8 min on a GPU + 5 min on 2 CPU cores"


def test_a_manifest_without_the_split_reads_its_one_device() -> None:
    assert wall_time_text({"train_wall_s": 488.8, "device": "cuda"}) == "8 min on a GPU"
    assert wall_time_text({"train_wall_s": 4542.4}) == "76 min on 2 CPU cores"
