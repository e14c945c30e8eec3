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
from ganleaks.io import atomic_write_text  # kept importable from here for evaluation/quality.py

__all__ = [
    "PARTS",
    "IdDataset",
    "MembershipDataModule",
    "MembershipSplit",
    "SampleSet",
    "SplitError",
    "atomic_write_text",
    "check_disjoint",
    "load_manifest",
    "make_split",
    "save_manifest",
    "verify_manifest",
]
