"""run.json's facts: what an attack ran on (from the victim's own records) and how."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from ganleaks.orchestration.run_record import FACT_KEYS, attack_facts, write_run_record
from ganleaks.victims.training_run import TrainingRunVictim
from ganleaks.victims.user_samples import SampleSetVictim


def attack_config(setting: dict, privacy_enabled: bool = False):
    return OmegaConf.create(
        {
            "setting": setting,
            "calibration": {"name": "none"},
            "distance": {"name": "l2"},
            "data": {"name": "digits", "train_size": 24},
            "model": {"name": "dcgan"},
            "privacy": {"enabled": privacy_enabled},
            "seed": 1,
        }
    )


def run_victim(run_dir: Path, privacy_enabled: bool = False) -> dict:
    """The facts a training run's victim gives about itself (``Victim.facts``)."""
    data = {"name": "digits", "train_size": 24}
    return TrainingRunVictim(str(run_dir), data, model="dcgan", privacy_enabled=privacy_enabled).facts()


def test_facts_of_a_dp_victim_come_from_its_records(tmp_path: Path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "privacy.json").write_text(json.dumps({"epsilon": 4.2, "delta": 1e-5, "noise_multiplier": 1.5}))
    (victim / "trained_on.json").write_text(json.dumps({"part": "members", "ids": [1, 2], "model": "dpgan"}))
    facts = attack_facts(attack_config({"name": "fullbb", "k": 256}), run_victim(victim), tmp_path / "reference")
    assert list(facts) == [key for key in FACT_KEYS if key in facts]
    assert facts["model"] == "dpgan"  # the victim's record, not the attack's model=
    assert (facts["privacy"], facts["epsilon"], facts["delta"], facts["noise_multiplier"]) == ("dp", 4.2, 1e-5, 1.5)
    assert (facts["k"], facts["seed"], facts["train_size"], facts["data"]) == (256, 1, 24, "digits")
    assert facts["reference_run_dir"] == str(tmp_path / "reference")


def test_facts_leave_out_what_does_not_apply(tmp_path: Path):
    facts = attack_facts(attack_config({"name": "discriminator"}), run_victim(tmp_path), None)
    assert facts["privacy"] == "none" and facts["model"] == "dcgan" and facts["reference_run_dir"] is None
    assert not {"k", "epsilon", "delta", "noise_multiplier"} & set(facts)


def test_the_record_holds_the_facts_the_metrics_carry(tmp_path: Path):
    cfg = attack_config({"name": "fullbb", "k": 8})
    metrics = {"auc": 0.5, **attack_facts(cfg, run_victim(tmp_path), None), "wall_seconds": 1.0}
    record = json.loads(write_run_record(tmp_path, cfg, metrics).read_text())
    assert record["facts"] == attack_facts(cfg, run_victim(tmp_path), None)
    assert record["metrics"] == metrics


def test_a_users_sample_set_says_its_privacy_is_unknown_unless_declared(tmp_path: Path):
    import torch

    from ganleaks.data.user_sets import build_query_set, records_from_array

    members = records_from_array(torch.zeros(3, 4), name="members", what="members")
    nonmembers = records_from_array(torch.ones(3, 4) * 0.5, name="nonmembers", what="nonmembers")
    queries = build_query_set(members, nonmembers)
    facts = attack_facts(
        attack_config({"name": "fullbb", "k": 8}), SampleSetVictim("s.npy", queries=queries).facts(), None
    )
    assert (facts["privacy"], facts["victim_kind"], facts["train_size"]) == ("unknown", "samples", 3)
    assert not {"epsilon", "delta"} & set(facts)  # nothing is known, so nothing is printed as a budget
    declared = SampleSetVictim("s.npy", queries=queries, privacy={"epsilon": 3.0, "delta": 1e-5}).facts()
    assert (declared["privacy"], declared["epsilon"], declared["delta"]) == ("declared", 3.0, 1e-5)


ROOT = Path(__file__).resolve().parents[2]


def test_the_record_names_the_networks_of_the_victim_not_the_model_groups_defaults(tmp_path: Path):
    """The DP study's no-DP baseline (width 16) was attacked under model=dpgan's defaults (width 64):
    its committed run.json says 64. A record written now says what the attack rebuilt: the victim's
    exported generator.json / discriminator.json."""
    committed = ROOT / "results/cpu_dp/attack/fashion_mnist/dpgan/n256/seed0/fullbb/none-l2/run.json"
    victim = ROOT / "results/cpu_dp/train/fashion_mnist/dpgan/n256/seed0"
    config = json.loads(committed.read_text())["config"]
    assert config["model"]["nets"]["image"]["generator"]["base_channels"] == 64  # the composed default
    config["victim"]["run_dir"] = str(victim)
    record = json.loads(write_run_record(tmp_path, OmegaConf.create(config), {"auc": 0.5}).read_text())
    nets = record["config"]["model"]["nets"]["image"]
    for role in ("generator", "discriminator"):
        exported = json.loads((victim / f"{role}.json").read_text())
        assert nets[role]["_target_"] == exported["class"]
        assert nets[role]["base_channels"] == exported["kwargs"]["base_channels"] == 16
    assert nets["discriminator"]["norm"] == "group"
    assert record["config"]["model"]["nets"]["tabular"] == config["model"]["nets"]["tabular"]  # not exported: kept
    # A victim folder without exported networks (a user's samples) leaves the composed nets as they are.
    config["victim"]["run_dir"] = str(tmp_path / "samples")
    record = json.loads(write_run_record(tmp_path, OmegaConf.create(config), {"auc": 0.5}).read_text())
    assert record["config"]["model"]["nets"] == config["model"]["nets"]
