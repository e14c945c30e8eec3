"""Data sources, membership splits and the training set of one split part."""

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
from ganleaks.data.training_set import IdDataset, TrainingSet

__all__ = [
    "PARTS",
    "IdDataset",
    "MembershipSplit",
    "SampleSet",
    "SplitError",
    "TrainingSet",
    "check_disjoint",
    "load_manifest",
    "make_split",
    "save_manifest",
    "verify_manifest",
]
