"""Data sources, membership splits and the datamodule."""

from ganleaks.data.datamodule import IdDataset, MembershipDataModule
from ganleaks.data.sample_set import SampleSet
from ganleaks.data.split import (
    PARTS,
    MembershipSplit,
    SplitError,
    check_disjoint,
    load_manifest,
    make_split,
    save_manifest,
    verify_manifest,
)

__all__ = [
    "PARTS",
    "IdDataset",
    "MembershipDataModule",
    "MembershipSplit",
    "SampleSet",
    "SplitError",
    "check_disjoint",
    "load_manifest",
    "make_split",
    "save_manifest",
    "verify_manifest",
]
