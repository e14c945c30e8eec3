import json

import pytest
import torch

from ganleaks.data import SampleSet, SplitError, load_manifest, make_split, save_manifest
from ganleaks.data.sources import load_celeba


def toy(n=100, groups=None):
    data = torch.linspace(-1, 1, n * 4).reshape(n, 4)
    return SampleSet(data, torch.arange(n), "toy", "tabular", groups)


def test_parts_disjoint_sized_deterministic():
    samples = toy()
    split = make_split(samples, 20, 30, 40, seed=3)
    members, nonmembers, reference = (set(split.parts[p]) for p in ("members", "nonmembers", "reference"))
    assert (len(members), len(nonmembers), len(reference)) == (20, 30, 40)
    assert not (members & nonmembers) and not (members & reference) and not (nonmembers & reference)
    assert make_split(samples, 20, 30, 40, seed=3).parts == split.parts
    assert make_split(samples, 20, 30, 40, seed=4).parts["members"] != split.parts["members"]


def test_splits_are_nested_across_train_sizes():
    samples = toy()
    small, large = make_split(samples, 10, 30, 40, 0), make_split(samples, 30, 30, 40, 0)
    assert small.parts["nonmembers"] == large.parts["nonmembers"]
    assert small.parts["reference"] == large.parts["reference"]
    assert set(small.parts["members"]) < set(large.parts["members"])


def test_too_many_samples_says_the_numbers():
    with pytest.raises(SplitError, match=r"100 samples.*50 members \+ 30 non-members \+ 40 reference = 120"):
        make_split(toy(), 50, 30, 40, 0)


def test_zero_members_refused():
    with pytest.raises(SplitError, match="train_size"):
        make_split(toy(), 0, 10, 10, 0)


def test_groups_never_straddle_parts():
    groups = torch.arange(100) // 5  # 20 groups of 5
    split = make_split(toy(groups=groups), 12, 12, 12, seed=1)
    part_of_group = {}
    for part, ids in split.parts.items():
        for i in ids:
            assert part_of_group.setdefault(int(groups[i]), part) == part


def test_manifest_round_trip_and_fingerprint(tmp_path):
    samples = toy()
    split = make_split(samples, 10, 10, 10, 0)
    path = save_manifest(split, tmp_path)
    raw = json.loads(path.read_text())
    assert raw["sizes"] == {"members": 10, "nonmembers": 10, "reference": 10}
    assert raw["length"] == 100 and raw["seed"] == 0 and len(raw["fingerprint"]) == 64
    assert load_manifest(tmp_path, samples).parts == split.parts
    changed = SampleSet(samples.data.clone(), samples.ids, "toy", "tabular")
    changed.data[7, 0] = 0.123
    with pytest.raises(SplitError, match="has changed"):
        load_manifest(tmp_path, changed)


def test_manifest_with_overlapping_parts_refused(tmp_path):
    split = make_split(toy(), 10, 10, 10, 0)
    raw = split.to_json()
    raw["parts"]["nonmembers"][0] = raw["parts"]["members"][0]
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(SplitError, match="both"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_celeba_split_by_identity(celeba_root, seed):
    celeba = load_celeba(str(celeba_root), resolution=8)
    split = make_split(celeba, 3, 3, 3, seed=seed)
    identity = {i: int(celeba.groups[i]) for i in range(12)}
    assert all(len(ids) == 3 for ids in split.parts.values())
    seen = {}
    for part, ids in split.parts.items():
        for i in ids:
            assert seen.setdefault(identity[i], part) == part


def test_celeba_image_level_split_when_allowed(celeba_root):
    """With the flag and no identity file the split is by image: the requested sizes, disjoint ids."""
    (celeba_root / "identity_CelebA.txt").unlink()
    celeba = load_celeba(str(celeba_root), resolution=8, allow_image_level_split=True)
    split = make_split(celeba, 4, 4, 4, seed=0)
    assert [len(ids) for ids in split.parts.values()] == [4, 4, 4]
    assert len(set().union(*map(set, split.parts.values()))) == 12


def test_nan_rows_refused():
    data = torch.zeros(4, 2)
    data[1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        SampleSet(data, torch.arange(4), "bad", "tabular")
