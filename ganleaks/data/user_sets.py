"""Records a user brings: member / non-member query sets and generated sample sets.

A set is an image folder (searched recursively, sorted by path), a ``.npy`` / ``.npz`` array
(``(N, C, H, W)``, ``(N, H, W, C)``, ``(N, H, W)`` images or ``(N, D)`` rows) or a CSV of numeric
rows (a header row is optional; an ``id_column`` names a column of record ids). Everything is
converted to the project's ``float32`` in ``[-1, 1]`` here, where the data enters, and every
mismatch a user can cause (sizes, channels, value ranges, overlapping sets) is refused with a
message that names the option to change.

Record ids are strings and stable: an image's path, an array or CSV row's number, or the value of
the id column. In a :class:`QuerySet` the paths and row numbers are written relative to the
folder that holds both sets (``train/0001.png``, ``holdout.npy:3``), so two sets that share a
record (the same folder twice, one folder inside the other) share ids and are refused, while
``train/0001.png`` and ``holdout/0001.png`` stay apart. The engines and batch files key queries
by ``int64``: :attr:`QuerySet.keys` is a hash of each id, so a query's key (and the random
starting latent seeded by it) does not change when other files are added, removed or reordered.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ganleaks.data.bit_depth import to_8_bit
from ganleaks.data.sample_set import SampleSet
from ganleaks.data.sources import (
    GREY_MODES,
    IMAGE_SUFFIXES,
    _is_number,
    _load_npz,
    _to_array,
    _uint8_to_unit,
    csv_header,
    read_csv_rows,
)

log = logging.getLogger(__name__)

ARRAY_SUFFIXES = (".npy", ".npz")
#: The value range assumed for an array or CSV without ``value_range``, by dtype; floats: the project's.
DEFAULT_RANGES = {"uint8": (0.0, 255.0), "uint16": (0.0, 65535.0), "bool": (0.0, 1.0)}


@dataclass
class Records:
    """The records of one user file or folder, in ``[-1, 1]``.

    Attributes:
        data: ``float32`` ``(N, C, H, W)`` images or ``(N, D)`` rows in ``[-1, 1]``.
        ids: ``N`` record ids, unique within the set: paths relative to ``path`` (a folder), row
            numbers (an array or CSV) or the values of the CSV's id column.
        kind: ``"image"`` or ``"tabular"``.
        path: where the records came from.
        named_ids: the ids came from an id column (global names such as patient ids), not from
            the records' places in ``path``.
        what: the config key that named ``path`` (for messages), e.g. ``"queries.members"``.
    """

    data: Tensor
    ids: list[str]
    kind: str
    path: Path
    named_ids: bool = False
    what: str = "records"

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one record."""
        return tuple(self.data.shape[1:])


def load_records(
    path: str | os.PathLike,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    value_range: Sequence[float] | None = None,
    id_column: str | None = None,
    what: str = "records",
    options: str = "queries",
    convertible: bool = True,
) -> Records:
    """Load an image folder, a ``.npy`` / ``.npz`` array or a CSV of rows into ``[-1, 1]``.

    Args:
        path: the folder or file.
        resolution: image side. Images are centre-cropped to a square and resized to it, as
            ``data=image_folder`` does; ``None``: images are used as stored and must all be
            square and of one size. Arrays are never resized: a different size is refused.
        channels: 1 (grey) or 3 (RGB); images are converted to it. ``None``: from the first image
            (all must agree); an array's own channels.
        value_range: ``[low, high]`` of an array's or CSV's values, mapped onto ``[-1, 1]``.
            ``None``: ``[0, 255]`` for ``uint8``, ``[0, 65535]`` for ``uint16``, ``[0, 1]`` for
            bool, else ``[-1, 1]``. Image files are always 8 or 16 bit and need none.
        id_column: a CSV column holding record ids (needs a header row); the other columns are the data.
        what: the config key that named ``path``, used in messages (``"queries.members"``).
        options: the config node holding ``resolution`` / ``channels`` / ``value_range``, for
            messages (``"queries"``, ``"victim"``).
        convertible: ``options`` has ``resolution`` and ``channels`` keys a user can set to convert
            images; False (a sample set, used as stored): messages say to re-save the files instead.

    Raises:
        FileNotFoundError: no such file or folder, or a folder without images.
        ValueError: an unreadable file, or records that disagree in size, channels or range
            (the message says which option to set).
    """
    source = Path(path).expanduser()
    if channels is not None and int(channels) not in (1, 3):
        raise ValueError(f"{options}.channels must be 1 (grey) or 3 (RGB), got {channels}")
    if source.is_dir():
        if id_column is not None:
            raise ValueError(f"{options}.id_column applies to a CSV file; {what}={source} is an image folder")
        if value_range is not None:
            log.warning(
                "%s.value_range (%s) is not used for %s (%s): image files are 8 or 16 bit and read as such",
                options,
                list(value_range),
                what,
                source,
            )
        data, ids = _load_image_folder(source, resolution, channels, what, options if convertible else None)
        return Records(data, ids, "image", source, what=what)
    if not source.is_file():
        raise FileNotFoundError(
            f"{what}={source} does not exist; pass an image folder, a .npy/.npz array or a .csv file of rows"
        )
    suffix = source.suffix.lower()
    if suffix == ".csv":
        values, ids, named = _read_csv(source, id_column, what, options)
        data = _scale(values, value_range, source, what, options)
        return Records(data, ids, "tabular", source, named_ids=named, what=what)
    if id_column is not None:
        raise ValueError(f"{options}.id_column applies to a CSV file, not to {what}={source}")
    if suffix in ARRAY_SUFFIXES:
        array, kind = _array_layout(_read_array(source, what), source, what, resolution, channels, options)
        scaled = _scale(array, value_range, source, what, options)
        return Records(scaled, [str(i) for i in range(len(scaled))], kind, source, what=what)
    raise ValueError(
        f"{what}={source}: unsupported file type {suffix!r}; pass an image folder, a .npy/.npz array or a .csv file"
    )


def records_from_array(
    array,
    *,
    name: str = "array",
    value_range: Sequence[float] | None = None,
    what: str = "records",
    options: str = "queries",
) -> Records:
    """Records from an in-memory array or tensor (``ganleaks.audit``), with :func:`load_records`'s checks.

    ``array``: ``(N, D)`` rows or ``(N, C, H, W)`` / ``(N, H, W, C)`` / ``(N, H, W)`` images; ids are row numbers.
    """
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what} holds {array.dtype} values; pass a numeric array or tensor")
    source = Path(name)
    shaped, kind = _array_layout(array, source, what, None, None, options)
    data = _scale(shaped, value_range, source, what, options)
    return Records(data, [str(i) for i in range(len(data))], kind, source, what=what)


# --------------------------------------------------------------------------- images


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"corrupt or unreadable image file {path}: {error}; remove or replace it") from error
    return to_8_bit(image, path)


def _load_image_folder(
    folder: Path, resolution: int | None, channels: int | None, what: str, options: str | None
) -> tuple[Tensor, list[str]]:
    """The images of ``folder``, all of one size and mode unless ``resolution`` / ``channels`` ask to convert.

    ``options``: the config node whose ``resolution`` / ``channels`` convert (named in messages);
    None: a set used as stored, whose images must already agree.
    """
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(
            f"{what}={folder} holds no images ({', '.join(IMAGE_SUFFIXES)}, searched recursively); "
            "point it at the folder of your image files, or at a .npy/.npz/.csv file"
        )

    first: tuple[Path, int, tuple[int, int]] | None = None
    arrays = []
    transparent: list[Path] = []
    for path in paths:
        image = _open(path)
        own_channels = _channels_of(image)
        if _transparent(image):
            transparent.append(path)
        if first is None:
            first = (path, own_channels, image.size)
            if resolution is None and image.width != image.height:
                raise ValueError(
                    f"{path} is {image.width}x{image.height}, not square; "
                    + (
                        f"{what} is used as stored: save every image square, at one size"
                        if options is None
                        else f"set {options}.resolution=N to centre-crop and resize every image to NxN (as "
                        "data=image_folder does)"
                    )
                )
        if channels is None and own_channels != first[1]:
            raise ValueError(
                f"{path} is {_channel_name(own_channels)} (mode {image.mode}) but {first[0]} is "
                f"{_channel_name(first[1])}; "
                + (
                    f"the folder mixes grey and colour images and {what} is used as stored: save every image in "
                    "one mode"
                    if options is None
                    else f"set {options}.channels=1 (grey) or {options}.channels=3 (RGB) to convert every image"
                )
            )
        if resolution is None and image.size != first[2]:
            raise ValueError(
                f"{path} is {image.width}x{image.height} but {first[0]} is {first[2][0]}x{first[2][1]}; "
                + (
                    f"the folder mixes sizes and {what} is used as stored: save every image at one size"
                    if options is None
                    else f"set {options}.resolution=N to centre-crop and resize every image to NxN"
                )
            )
        target = int(channels or first[1])
        side = int(resolution or image.width)
        arrays.append(_to_array(image.convert("L" if target == 1 else "RGB"), side, None))
    if transparent:
        log.warning(
            "%s: %d of %d images have transparent pixels (e.g. %s); the alpha channel is dropped and the colour "
            "under it is used",
            what,
            len(transparent),
            len(paths),
            transparent[0],
        )
    ids = [path.relative_to(folder).as_posix() for path in paths]
    return _uint8_to_unit(np.stack(arrays)), ids


def _channels_of(image: Image.Image) -> int:
    """1 for a grey image (a grey mode, or a palette of greys only), else 3."""
    if image.mode == "P":
        palette = np.asarray(image.convert("RGB"))
        return 1 if (palette[..., 0] == palette[..., 1]).all() and (palette[..., 1] == palette[..., 2]).all() else 3
    return 1 if image.mode in GREY_MODES else 3


def _transparent(image: Image.Image) -> bool:
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return False
    return bool((np.asarray(image.convert("RGBA"))[..., 3] < 255).any())


def _channel_name(channels: int) -> str:
    return "grey" if channels == 1 else "colour (RGB)"


# --------------------------------------------------------------------------- arrays and CSV


def _read_array(file: Path, what: str) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False) if file.suffix.lower() == ".npy" else _load_npz(file)
    except ValueError as error:
        raise ValueError(
            f"{what}={file} cannot be read as a plain numeric array ({error}); save it with "
            "numpy.save(path, array) from a numeric array (object arrays are pickles and are never loaded)"
        ) from error
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what}={file} holds {array.dtype} values; save a numeric array")
    return array


def _array_layout(
    array: np.ndarray, file: Path, what: str, resolution: int | None, channels: int | None, options: str
) -> tuple[np.ndarray, str]:
    """``(N, D)`` rows or ``(N, C, H, W)`` images from the layouts users save arrays in."""
    if array.ndim == 2:
        return array, "tabular"
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[1] not in (1, 3) and array.shape[-1] in (1, 3):
        array = array.transpose(0, 3, 1, 2)  # (N, H, W, C), as PIL and most image libraries store it
    elif array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ValueError(
            f"{what}={file} has shape {array.shape}; expected (N, D) rows or (N, C, H, W), (N, H, W, C) or "
            "(N, H, W) images with 1 or 3 channels"
        )
    _, c, h, w = array.shape
    if channels is not None and c != int(channels):
        raise ValueError(
            f"{what}={file} holds {c}-channel images but {options}.channels={channels}; arrays are used as "
            f"stored: set {options}.channels={c} (or null), or save the array with {channels} channels"
        )
    if resolution is not None and (h, w) != (int(resolution), int(resolution)):
        raise ValueError(
            f"{what}={file} holds {h}x{w} images but {options}.resolution={resolution}; arrays are never "
            f"resized: set {options}.resolution={h if h == w else 'null'}, or save the array at "
            f"{resolution}x{resolution}"
        )
    return array, "image"


def _read_csv(file: Path, id_column: str | None, what: str, options: str) -> tuple[np.ndarray, list[str], bool]:
    rows = read_csv_rows(file)
    if not rows:
        raise ValueError(f"{what}={file} has no rows")
    header, index_column = csv_header(rows)
    if index_column:  # pandas' to_csv() index: row labels, not a feature
        log.info("%s=%s: the unnamed first column is read as a row index (pandas' to_csv) and left out", what, file)
        rows = [row[1:] for row in rows]
        header = header[1:] if header is not None else None
    elif header is not None and all(_is_number(cell) for cell in header if cell):
        log.info("%s=%s: the first row %s is read as a header of column numbers", what, file, header[:5])
    body = rows[1:] if header is not None else rows
    id_index = None
    if id_column is not None:
        if header is None or id_column not in header:
            raise ValueError(
                f"{options}.id_column={id_column!r} but {file} has "
                f"{'no header row' if header is None else f'the columns {header}'}; name a column of its header"
            )
        id_index = header.index(id_column)
    width = len(rows[0])
    values = np.empty((len(body), width - (id_index is not None)), dtype=np.float64)
    ids = []
    for n, row in enumerate(body):
        line = n + 1 + (header is not None)
        if len(row) != width:
            raise ValueError(f"{what}={file} line {line} has {len(row)} fields, the first line {width}")
        cells = [cell for i, cell in enumerate(row) if i != id_index]
        try:
            values[n] = [float(cell) if cell.strip() else np.nan for cell in cells]
        except ValueError as error:
            raise ValueError(
                f"{what}={file} line {line}: non-numeric value ({error}){_decimal_comma_hint(cells)}; every column but "
                f"{options}.id_column must hold numbers"
            ) from error
        ids.append(row[id_index].strip() if id_index is not None else str(n))
    if id_index is not None:
        empty = [i for i, value in enumerate(ids) if not value]
        if empty:
            raise ValueError(f"{what}={file}: rows {empty[:5]} have no id in column {id_column!r}")
        repeated = sorted({value for value in ids if ids.count(value) > 1})
        if repeated:
            raise ValueError(f"{what}={file}: ids {repeated[:5]} appear in more than one row; ids must be unique")
    return values, ids, id_index is not None


def _decimal_comma_hint(cells: Sequence[str]) -> str:
    if any(cell.strip().lstrip("-").replace(",", "", 1).isdigit() and "," in cell for cell in cells):
        return " (a decimal comma: save the file with decimal points, e.g. from a spreadsheet in an English locale)"
    return ""


def _scale(array: np.ndarray, value_range: Sequence[float] | None, file: Path, what: str, options: str) -> Tensor:
    """Map ``array`` from its declared (or dtype's) value range onto ``[-1, 1]``, refusing values outside it."""
    values = np.asarray(array, dtype=np.float64)
    if len(values) == 0:
        raise ValueError(f"{what}={file} holds no records")
    bad_rows = np.nonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0]
    if len(bad_rows):
        raise ValueError(
            f"{what}={file} has NaN, inf or empty values in {len(bad_rows)} records (first rows: "
            f"{bad_rows[:5].tolist()}); fill or drop them"
        )
    if value_range is None:
        low, high = DEFAULT_RANGES.get(np.asarray(array).dtype.name, (-1.0, 1.0))
        said = f"the default for {np.asarray(array).dtype} values"
    else:
        if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
            raise ValueError(f"{options}.value_range must be [low, high] with low < high, got {list(value_range)}")
        low, high = float(value_range[0]), float(value_range[1])
        said = f"{options}.value_range"
    tolerance = 1e-6 * (high - low)
    found_low, found_high = float(values.min()), float(values.max())
    if found_low < low - tolerance or found_high > high + tolerance:
        raise ValueError(
            f"{what}={file} has values in [{found_low:g}, {found_high:g}], outside [{low:g}, {high:g}] "
            f"({said}); set {options}.value_range=[low,high] to the range your data is scaled to, e.g. "
            f"{options}.value_range=[0,1] or [0,255]"
        )
    check_declared_range(
        found_low,
        found_high,
        (low, high),
        declared=value_range is not None,
        integers=bool(np.all(values == np.round(values))),
        what=f"{what}={file}",
        key=f"{options}.value_range",
    )
    scaled = 2.0 * (values - low) / (high - low) - 1.0
    return torch.from_numpy(np.clip(scaled, -1.0, 1.0).astype(np.float32))


#: A declared range this wide (or wider) is an 8- or 16-bit one: ``[0, 255]``, ``[0, 65535]``.
WIDE_RANGE = 255.0
#: Values that span less than this fraction of the declared range are flagged (a warning).
NARROW_FRACTION = 0.02


def suggested_range(found_low: float, found_high: float) -> tuple[float, float]:
    """The conventional range that holds values in ``[found_low, found_high]``: ``[0, 1]``, ``[-1, 1]``,
    ``[0, 255]``, ``[0, 65535]``, else the values' own bounds."""
    for low, high in ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (0.0, 65535.0)):
        if found_low >= low and found_high <= high:
            return low, high
    return found_low, found_high


def check_declared_range(
    found_low: float,
    found_high: float,
    bounds: tuple[float, float],
    *,
    declared: bool,
    integers: bool,
    what: str,
    key: str,
) -> None:
    """Refuse a declared (or default) value range the values contradict; warn on weaker evidence.

    The values already lie inside ``bounds`` (values outside it are refused before). Refused:

    * fractional values that all lie in ``[0, 1]`` (or ``[-1, 1]``) under a range at least
      :data:`WIDE_RANGE` wide (``[0, 255]``): every value of an honest 8-bit set would then be at
      most 1/255 of full scale and not a whole number, which no image or 8-bit table is; they are
      ``[0, 1]`` (or ``[-1, 1]``) data;
    * a range taken from the dtype (not declared) that is at least 255 times wider than the
      values' conventional range: ``uint8`` holding only 0 and 1 (binary codes or masks), ``uint16``
      holding only 0..255 (8-bit values saved as 16 bit). Declaring the range (``key=[0,255]``)
      accepts such data.

    Warned (a log line, the audit runs): values spanning less than :data:`NARROW_FRACTION` of the
    range (a dark image set, a nearly constant table, or a range declared too wide).
    """
    low, high = bounds
    suggested = suggested_range(found_low, found_high)
    width, suggested_width = high - low, suggested[1] - suggested[0]
    why = None
    if width >= WIDE_RANGE and not integers and found_low >= -1.0 and found_high <= 1.0:
        why = "every value lies in {sug} and is not a whole number: these are {sug} data, not {said} data"
    elif not declared and suggested_width > 0 and width / suggested_width >= WIDE_RANGE:
        why = "every value lies in {sug}, a 1/{ratio:.0f} part of {said} (the default for its dtype)"
    if why is not None:
        sug = f"[{suggested[0]:g}, {suggested[1]:g}]"
        said = f"[{low:g}, {high:g}]"
        ratio = width / suggested_width if suggested_width else 0.0
        confirm = "" if declared else f", or declare {key}=[{low:g},{high:g}] if that is what they are"
        raise ValueError(
            f"{what} has values in [{found_low:g}, {found_high:g}] but the range is {key}={said}: "
            f"{why.format(sug=sug, said=said, ratio=ratio)}, and read as {said} they would all map to a sliver "
            f"of [-1, 1] and measure nothing. Set {key}=[{suggested[0]:g},{suggested[1]:g}] (the range the data "
            f"suggests){confirm}"
        )
    if found_high - found_low < NARROW_FRACTION * width:
        example = f" (e.g. {key}=[{suggested[0]:g},{suggested[1]:g}])" if suggested != (low, high) else ""
        log.warning(
            "%s has values in [%g, %g], %.1f%% of %s=[%g, %g]: if the data are stored in a narrower range, set %s "
            "to it%s; a dark or nearly constant set is fine as it is",
            what,
            found_low,
            found_high,
            100.0 * (found_high - found_low) / width,
            key,
            low,
            high,
            key,
            example,
        )


# --------------------------------------------------------------------------- query sets


def stable_key(record_id: str) -> int:
    """A non-negative ``int64`` derived from a record id only (the same id gives the same key everywhere)."""
    digest = hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass
class QuerySet:
    """Members (label 1) and non-members (label 0) in one set, keyed by stable string ids.

    Attributes:
        data: ``float32`` ``(N, *shape)`` in ``[-1, 1]``.
        ids: ``N`` unique string ids, written to ``scores.csv``.
        labels: ``int64`` ``(N,)``: 1 = member, 0 = non-member.
        kind: ``"image"`` or ``"tabular"``.
        name: a name for messages and the dataset fingerprint.
        keys: ``int64`` ``(N,)``, :func:`stable_key` of each id: what the engines and batch files key by.
    """

    data: Tensor
    ids: list[str]
    labels: Tensor
    kind: str
    name: str = "queries"
    keys: Tensor = field(init=False)

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.data) or self.labels.shape != (len(self.data),):
            raise ValueError(f"{self.name}: data, ids and labels must have one entry per record")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"{self.name}: record ids are not unique")
        self.keys = torch.tensor([stable_key(i) for i in self.ids], dtype=torch.int64)
        if len(torch.unique(self.keys)) != len(self.keys):  # a 63-bit hash collision: never seen in practice
            raise ValueError(f"{self.name}: two record ids hash to the same key; rename one of the records")
        self.sample_set()  # SampleSet's shape, finiteness and [-1, 1] checks, once, here

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one record."""
        return tuple(self.data.shape[1:])

    def sample_set(self) -> SampleSet:
        """The records as a :class:`SampleSet` keyed by :attr:`keys` (what the attack runner consumes)."""
        return SampleSet(self.data, self.keys, self.name, self.kind, labels=self.labels)

    def ids_of(self, keys: Tensor | Sequence[int]) -> list[str]:
        """The string ids of ``keys`` (in that order); raises ``KeyError`` naming keys that are absent."""
        lookup = dict(zip(self.keys.tolist(), self.ids, strict=True))
        wanted = torch.as_tensor(keys, dtype=torch.int64).tolist()
        missing = [key for key in wanted if key not in lookup]
        if missing:
            raise KeyError(f"{self.name}: keys not in the query set: {missing[:10]}")
        return [lookup[key] for key in wanted]


def _common_parent(paths: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(p.resolve().parent if p.is_file() else p.resolve()) for p in paths]))


def _located_ids(records: Records, base: Path) -> list[str]:
    """Ids relative to ``base``: ``train/0001.png`` for a folder's files, ``holdout.npy:3`` for rows."""
    if records.named_ids:
        return list(records.ids)
    place = records.path.resolve().relative_to(base).as_posix()
    if records.path.is_dir():
        return [record if place == "." else f"{place}/{record}" for record in records.ids]
    return [f"{place}:{record}" for record in records.ids]


def check_same_scale(a: Tensor, b: Tensor, a_name: str, b_name: str, hint: str) -> None:
    """Refuse two sets in ``[-1, 1]`` of which one uses negative values and the other none at all.

    That is the mark of one set scaled from ``[0, 1]`` (or saved as ``[0, 1]``) and the other from
    ``[-1, 1]``: every distance between them would then measure the scaling, not membership.

    Args:
        a, b: ``(N, ...)`` values in ``[-1, 1]`` (records, or a generator's samples).
        a_name, b_name: what they are, for the message.
        hint: what to change, appended to the message.
    """
    a_low, b_low = float(a.min()), float(b.min())
    if (a_low <= -0.5 and b_low >= 0.0) or (b_low <= -0.5 and a_low >= 0.0):
        raise ValueError(
            f"{a_name} span [{a_low:.3g}, {float(a.max()):.3g}] but {b_name} span [{b_low:.3g}, {float(b.max()):.3g}] "
            f"in the project's [-1, 1]: one looks scaled from [0, 1], the other from [-1, 1]. {hint}"
        )


def build_query_set(
    members: Records, nonmembers: Records, *, allow_identical: bool = False, options: str = "queries"
) -> QuerySet:
    """One query set from members and non-members, refusing sets that overlap or do not fit together.

    Args:
        members, nonmembers: from :func:`load_records`.
        allow_identical: accept records with identical values in both sets (distinct tabular
            records can coincide); identical ids are always refused.
        options: the config node of the query options, for messages.

    Raises:
        ValueError: different kinds, shapes or scales; an id in both sets; identical records in
            both sets (unless ``allow_identical``).
    """
    for records in (members, nonmembers):
        if len(records) == 0:
            raise ValueError(f"{records.what}={records.path} holds no records")
    if members.kind != nonmembers.kind or members.shape != nonmembers.shape:
        raise ValueError(
            f"{members.what} records are {members.kind} of shape {members.shape} but {nonmembers.what} records are "
            f"{nonmembers.kind} of shape {nonmembers.shape}; load both the same way (same file type, "
            f"{options}.resolution and {options}.channels)"
        )
    check_same_scale(
        members.data,
        nonmembers.data,
        f"{members.what} records",
        f"{nonmembers.what} records",
        "Save both sets with the same scaling (or the same value_range).",
    )
    base = _common_parent([members.path, nonmembers.path])
    member_ids, nonmember_ids = _located_ids(members, base), _located_ids(nonmembers, base)
    shared = sorted(set(member_ids) & set(nonmember_ids))
    if shared:
        raise ValueError(
            f"{len(shared)} record ids are both in {members.what}={members.path} and {nonmembers.what}="
            f"{nonmembers.path} (first: {shared[:3]}); a record cannot be both a member and a non-member: "
            "use two separate folders or files (neither inside the other) with no record in common"
        )
    if not allow_identical:
        _refuse_identical(members, nonmembers, member_ids, nonmember_ids, options)
    return QuerySet(
        data=torch.cat([members.data, nonmembers.data]).contiguous(),
        ids=member_ids + nonmember_ids,
        labels=torch.cat(
            [torch.ones(len(members), dtype=torch.int64), torch.zeros(len(nonmembers), dtype=torch.int64)]
        ),
        kind=members.kind,
        name=f"queries({members.path.name}|{nonmembers.path.name})",
    )


def _digests(data: Tensor) -> list[bytes]:
    flat = np.ascontiguousarray(data.reshape(len(data), -1).numpy(), dtype=np.float32)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def _refuse_identical(
    members: Records, nonmembers: Records, member_ids: list[str], nonmember_ids: list[str], options: str
) -> None:
    seen = dict(zip(_digests(members.data), member_ids, strict=True))
    pairs = [(seen[d], i) for d, i in zip(_digests(nonmembers.data), nonmember_ids, strict=True) if d in seen]
    if pairs:
        examples = ", ".join(f"{a} == {b}" for a, b in pairs[:3])
        raise ValueError(
            f"{len(pairs)} records of {nonmembers.what} are identical to records of {members.what} ({examples}); "
            "a record cannot be both a member and a non-member: remove the duplicates from one set. If they are "
            f"distinct records that happen to be equal (tabular rows can be), set {options}.allow_identical=true"
        )


def _varied(data: Tensor) -> list[bool]:
    """Whether each record holds more than one value (a blank image or an all-zero row does not)."""
    flat = data.reshape(len(data), -1)
    return (flat.max(dim=1).values > flat.min(dim=1).values).tolist()


def shared_records(reference: Tensor, other: Tensor) -> list[tuple[int, int]]:
    """``(reference position, other position)`` of each record of ``reference`` whose content (float32
    bytes) is also a record of ``other``. Constant records are left out: a blank image or an all-zero
    row is a degenerate output two honest sets can share."""
    index: dict[bytes, int] = {}
    for position, digest in enumerate(_digests(other)):
        index.setdefault(digest, position)
    return [
        (i, index[digest])
        for i, (digest, varied) in enumerate(zip(_digests(reference), _varied(reference), strict=True))
        if varied and digest in index
    ]


def check_no_shared_records(
    reference: Records,
    victim_samples: Records | None,
    queries: Tensor,
    query_names: Sequence[str],
    query_labels: Tensor,
    key: str,
) -> None:
    """Refuse a calibration sample set that shares records with the victim's samples or the queries.

    Calibration subtracts the reference's loss from the victim's: a reference set that holds the
    victim's own samples, or the member queries, has the victim's signal and cancels it (AUC 0.5,
    "no leakage"). Records are compared by content (float32 bytes in ``[-1, 1]``), constant
    records left out. The rule:

    * images: any shared record is refused (two honest image sets never share an exact image);
    * tabular rows, where distinct records can be equal by chance (binary codes): refused when the
      reference is a copy of the victim's samples (the same records, as a multiset), or when it
      holds the member queries significantly more often than the non-members (a one-sided
      two-proportion z > 4 with at least 10 members found; chance duplicates hit both alike);
      any other overlap is a warning.

    Raises:
        ValueError: naming how many records are shared and an example of each pair's ids.
    """
    what = f"{key}={reference.path}"
    checks = []
    if victim_samples is not None:
        checks.append((f"the victim's samples ({victim_samples.path})", victim_samples.data, victim_samples.ids))
    labels = query_labels.bool()
    member_names = [n for n, m in zip(query_names, labels.tolist(), strict=True) if m]
    nonmember_names = [n for n, m in zip(query_names, labels.tolist(), strict=True) if not m]
    checks.append(("the member queries", queries[labels], member_names))
    checks.append(("the non-member queries", queries[~labels], nonmember_names))
    found = {name: (shared_records(reference.data, data), ids, len(data)) for name, data, ids in checks}

    def refusal(name: str, why: str) -> ValueError:
        pairs, ids, _ = found[name]
        example = f"its {reference.ids[pairs[0][0]]} is {ids[pairs[0][1]]} there" if pairs else ""
        return ValueError(
            f"{what} shares {len(pairs)} of its {len(reference)} records with {name} (identical content; e.g. "
            f"{example}){why}: a calibration set must be generated by a reference model that never saw a query, "
            "and holding the victim's records it would cancel the very signal the attack measures (a false 'no "
            f"leakage'). Point {key} at samples of such a model, or attack with calibration=none"
        )

    if reference.kind == "image":
        for name, (pairs, _, _) in found.items():
            if pairs:
                raise refusal(name, "")
        return
    if victim_samples is not None and sorted(_digests(reference.data)) == sorted(_digests(victim_samples.data)):
        raise refusal(checks[0][0], ", the very same records")
    members_in = len({j for _, j in found["the member queries"][0]})
    nonmembers_in = len({j for _, j in found["the non-member queries"][0]})
    n_m, n_n = found["the member queries"][2], found["the non-member queries"][2]
    if n_m and n_n and members_in >= 10:
        pooled = (members_in + nonmembers_in) / (n_m + n_n)
        spread = (pooled * (1 - pooled) * (1 / n_m + 1 / n_n)) ** 0.5
        if spread > 0 and (members_in / n_m - nonmembers_in / n_n) / spread > 4:
            raise refusal(
                "the member queries",
                f", {members_in} of {n_m} members against {nonmembers_in} of {n_n} non-members (more than chance "
                "duplicates of tabular rows explain)",
            )
    for name, (pairs, _, _) in found.items():
        if pairs:
            log.warning(
                "%s shares %d of its %d records with %s (identical rows); tabular rows can coincide by chance, "
                "but if the calibration set was generated from data that includes them, calibration hides leakage",
                what,
                len(pairs),
                len(reference),
                name,
            )


def load_query_set(
    members: str | os.PathLike,
    nonmembers: str | os.PathLike,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    value_range: Sequence[float] | None = None,
    id_column: str | None = None,
    allow_identical: bool = False,
    options: str = "queries",
) -> QuerySet:
    """Load ``members`` and ``nonmembers`` with :func:`load_records` (same options) and join them
    with :func:`build_query_set`."""
    loaded = [
        load_records(
            path,
            resolution=resolution,
            channels=channels,
            value_range=value_range,
            id_column=id_column,
            what=f"{options}.{part}",
            options=options,
        )
        for path, part in ((members, "members"), (nonmembers, "nonmembers"))
    ]
    return build_query_set(*loaded, allow_identical=allow_identical, options=options)
