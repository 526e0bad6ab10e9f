"""The model card's generated parts (no torch needed: it reads manifests)."""

from __future__ import annotations

from models.training.model_card import wall_time_text


def test_wall_time_is_shown_per_device_kind() -> None:
    assert wall_time_text({"train_wall_s": 789.6, "device": "cpu",
                           "train_wall_s_by_device": {"cuda": 488.8, "cpu": 300.8}}) == \
        "8 min on a GPU + 5 min on 2 CPU cores"


def test_a_manifest_without_the_split_reads_its_one_device() -> None:
    assert wall_time_text({"train_wall_s": 488.8, "device": "cuda"}) == "8 min on a GPU"
    assert wall_time_text({"train_wall_s": 4542.4}) == "76 min on 2 CPU cores"
