"""The scientific checks of SPEC invariants 5 and 6: signal on a memorising victim, chance on a null control."""

import pytest

from ganleaks.workflows import attack, train
from tests.conftest import attack_overrides, compose_app

# 16 members, trained long enough (5,000 optimiser steps, ~35 s) for a tiny DCGAN to memorise them.
MEMORISE = ["data.train_size=16", "data.nonmember_size=16", "data.reference_size=64", "data.batch_size=16",
            "trainer.max_steps=5000"]


@pytest.fixture(scope="module")
def memorised_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("memorise")
    for part in ("members", "reference"):
        cfg, run_dir = compose_app("train", root, MEMORISE + [f"data.part={part}"])
        train(cfg, run_dir)
    return root


@pytest.mark.slow
def test_memorising_victim_is_exposed_in_white_box(memorised_root):
    cfg, out = compose_app("attack", memorised_root, MEMORISE + attack_overrides("whitebox", extra=["setting.max_iter=30"]))
    metrics = attack(cfg, out)
    assert metrics["auc"] >= 0.9, metrics


@pytest.mark.slow
def test_generator_that_never_saw_the_queries_is_at_chance(memorised_root, tmp_path):
    """Null control: the same attack on a model trained on the disjoint reference part."""
    reference = memorised_root / "train/digits/dcgan/reference_n64/seed0"
    cfg, _ = compose_app("attack", memorised_root, MEMORISE + attack_overrides(
        "whitebox", extra=["setting.max_iter=30", f"victim.run_dir={reference}", "attack.null_control=true"]))
    metrics = attack(cfg, tmp_path)
    assert 0.25 <= metrics["auc"] <= 0.75, metrics  # 16 vs 16 queries: chance has a wide spread


def test_null_control_refuses_a_model_that_saw_the_queries(memorised_root, tmp_path):
    victim = memorised_root / "train/digits/dcgan/n16/seed0"
    cfg, _ = compose_app("attack", memorised_root, MEMORISE + attack_overrides(
        "fullbb", extra=[f"victim.run_dir={victim}", "attack.null_control=true"]))
    with pytest.raises(ValueError, match="never saw the queries"):
        attack(cfg, tmp_path / "out")
