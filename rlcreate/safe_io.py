"""Bounded readers for everything rlcreate loads from disk: YAML, JSON, ``.npz`` and safetensors.

A recipe or a run folder may come from someone else. Whatever is in it, reading it must stay small
and end with a :class:`rlcreate.errors.UserError` (one ``error:`` line at the command line), never
with gigabytes of memory, a ``RecursionError`` or a hang. The limits:

* size: a file is read only up to its cap (:data:`MAX_YAML_BYTES`, :data:`MAX_JSON_BYTES`);
* YAML: at most :data:`MAX_NODES` nodes *after* alias expansion (a 1 KB "billion laughs" document
  is refused while it is composed, before anything walks it), nesting at most :data:`MAX_DEPTH`
  deep, duplicate mapping keys refused (PyYAML silently keeps the last one), ``yaml.SafeLoader``
  underneath (no Python tags);
* JSON: nesting at most :data:`MAX_DEPTH` deep, checked by a bracket scan before ``json`` recurses
  (which raises ``RecursionError`` near depth 1000); ``finite=True`` refuses NaN / Infinity;
* ``.npz``: every member's declared ``.npy`` shape and dtype are read from its header, and the
  total is checked against a cap before numpy allocates; pickled (object) members are refused;
* safetensors: the JSON header's declared shapes and dtypes are checked against a cap (and against
  the expected shapes, when given) before the tensors are read;
* numbers read from state files: :func:`state_int` / :func:`state_float` check type, finiteness
  and range.

This module is the bottom layer: it imports nothing from rlcreate besides :mod:`rlcreate.errors`.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import yaml

from rlcreate.errors import UserError

__all__ = [
    "UnsafeInputError",
    "MAX_YAML_BYTES",
    "MAX_JSON_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_NPZ_BYTES",
    "MAX_SAFETENSORS_BYTES",
    "MAX_POLICY_PARAMS",
    "open_regular",
    "read_bounded",
    "load_yaml",
    "loads_yaml",
    "load_json",
    "loads_json",
    "check_npz",
    "check_safetensors",
    "state_int",
    "state_float",
    "check_param_budget",
]

#: Largest YAML file read (recipes and config.yaml are a few KB).
MAX_YAML_BYTES = 1 * 2**20
#: Largest JSON file read (policy.json, trainer_state.json, metrics, samples).
MAX_JSON_BYTES = 32 * 2**20
#: Deepest nesting of YAML or JSON (rlcreate's own files nest fewer than 10 levels).
MAX_DEPTH = 64
#: Most YAML nodes after alias expansion (a recipe has a few hundred).
MAX_NODES = 100_000
#: Largest total of the arrays an ``.npz`` state file may declare (reward state: archives, normalisers).
MAX_NPZ_BYTES = 256 * 2**20
#: Largest total of the tensors a safetensors file may declare (policy, optimizer, RNG state).
MAX_SAFETENSORS_BYTES = 512 * 2**20
#: Largest policy (parameters) rlcreate builds from a recipe or a run folder's ``policy.json``.
MAX_POLICY_PARAMS = 20_000_000


class UnsafeInputError(UserError):
    """A file is over a size, depth or alias budget, or declares more than rlcreate will allocate."""


# --------------------------------------------------------------------------------- reading bytes


def open_regular(path: str | Path, what: str = "file") -> BinaryIO:
    """``path`` opened for reading if it is a regular file. Devices, FIFOs and folders are refused
    before anything reads them: opening a FIFO planted in a run folder would wait forever, reading
    ``/dev/zero`` would never end."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO opens at once (and is refused)
    except FileNotFoundError:
        raise UnsafeInputError(f"{path}: no such file; pass an existing {what}") from None
    except OSError as exc:
        raise UnsafeInputError(f"{path}: cannot open it ({exc.strerror}); pass a readable {what}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeInputError(f"{path}: not a regular file; pass a {what}")
    return os.fdopen(fd, "rb")


def read_bounded(path: str | Path, cap: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes (never reads more than ``cap + 1``;
    devices, FIFOs and folders refused by :func:`open_regular`)."""
    path = Path(path)
    with open_regular(path, what) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size > cap:
                raise UnsafeInputError(
                    f"{path}: {size} bytes, over the {cap}-byte limit for a {what}; this is not a file rlcreate writes"
                )
            data = f.read(cap + 1)
        except OSError as exc:
            raise UnsafeInputError(f"{path}: cannot read it ({exc.strerror}); pass a readable {what}") from None
    if len(data) > cap:
        raise UnsafeInputError(f"{path}: over the {cap}-byte limit for a {what}")
    return data


def _text(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnsafeInputError(f"{source}: not UTF-8 text; save it as UTF-8") from None


# --------------------------------------------------------------------------------- YAML


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts nodes after alias expansion, caps depth and refuses
    duplicate keys (all while composing, so nothing large is ever built)."""

    def __init__(self, stream: Any, source: str = "<yaml>"):
        super().__init__(stream)
        self._source, self._depth, self._nodes = source, 0, 0
        self._sizes: dict[str, int] = {}  # anchor -> nodes it expands to

    def _charge(self, n: int) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise UnsafeInputError(
                f"{self._source}: more than {MAX_NODES} YAML nodes after expanding aliases "
                "(&anchor / *alias); write the values out, or use fewer aliases"
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._charge(self._sizes.get(self.peek_event().anchor, 1))
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise UnsafeInputError(
                f"{self._source}: YAML nested more than {MAX_DEPTH} levels deep (line {mark.line + 1}); flatten it"
            )
        start = self._nodes
        self._charge(1)
        anchor = getattr(self.peek_event(), "anchor", None)
        node = super().compose_node(parent, index)
        if anchor is not None:
            self._sizes[anchor] = self._nodes - start  # expanded size, nested aliases included
        self._depth -= 1
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if duplicate:
                    raise UnsafeInputError(
                        f"{self._source}: duplicate key {key!r} (line "
                        f"{key_node.start_mark.line + 1}); YAML would silently keep only "
                        "the last one: write each key once"
                    )
        return super().construct_mapping(node, deep)


def loads_yaml(text: str, source: str = "<yaml>") -> Any:
    """Parse YAML text under the node, depth and duplicate-key budgets (``yaml.YAMLError`` for
    malformed YAML, :class:`UnsafeInputError` for a budget)."""
    if len(text) > MAX_YAML_BYTES:
        raise UnsafeInputError(f"{source}: over the {MAX_YAML_BYTES}-byte limit for YAML")
    loader = _BoundedLoader(text, source)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Read and parse a YAML file under the size, node, depth and duplicate-key budgets; malformed
    YAML becomes an :class:`UnsafeInputError` naming the file."""
    text = _text(read_bounded(path, MAX_YAML_BYTES, what), str(path))
    try:
        return loads_yaml(text, str(path))
    except yaml.YAMLError as exc:
        raise UnsafeInputError(f"{path}: not valid YAML: {' '.join(str(exc).split())[:300]}") from None


# --------------------------------------------------------------------------------- JSON

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def _json_depth(text: str) -> int:
    """Deepest bracket nesting outside strings, without recursion (numpy cumulative sum)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    b = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "replace"), dtype=np.uint8)
    step = (b == ord("[")).astype(np.int32) + (b == ord("{")) - (b == ord("]")) - (b == ord("}"))
    return int(np.cumsum(step).max()) if step.size else 0


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def loads_json(text: str, source: str = "<json>", finite: bool = False) -> Any:
    """Parse JSON with a depth cap (and, with ``finite``, NaN / Infinity refused)."""
    depth = _json_depth(text)
    if depth > MAX_DEPTH:
        raise UnsafeInputError(
            f"{source}: JSON nested {depth} levels deep (at most {MAX_DEPTH}); this is not a file rlcreate writes"
        )
    try:
        return json.loads(text, parse_constant=_refuse_constant if finite else None)
    except (ValueError, RecursionError) as exc:
        raise UnsafeInputError(
            f"{source}: not valid JSON ({str(exc)[:160]}); it may be truncated or not written by rlcreate"
        ) from None


def load_json(path: str | Path, what: str = "JSON file", finite: bool = False, cap: int = MAX_JSON_BYTES) -> Any:
    """Read and parse a JSON file under the size and depth caps."""
    return loads_json(_text(read_bounded(path, cap, what), str(path)), str(path), finite=finite)


# --------------------------------------------------------------------------------- numbers in state files


def state_int(value: Any, field: str, low: int = 0, high: int = 2**62) -> int:
    """An integer from a state file (bools, floats, strings refused), in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UnsafeInputError(
            f"{field} = {str(value)[:60]!r}: must be an integer in [{low}, {high}]; "
            "the file is damaged or was not written by rlcreate"
        )
    return value


def state_float(value: Any, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number from a state file, in ``[low, high]`` (a ``repr`` string is accepted)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise UnsafeInputError(
            f"{field} = {str(value)[:60]!r}: must be a finite number in [{low}, {high}]; "
            "the file is damaged or was not written by rlcreate"
        )
    return float(value)


def check_param_budget(count: int, what: str) -> int:
    """Refuse a model of more than :data:`MAX_POLICY_PARAMS` parameters before it is allocated."""
    if count > MAX_POLICY_PARAMS:
        raise UnsafeInputError(
            f"{what}: {count:,} parameters, over the budget of {MAX_POLICY_PARAMS:,} "
            "(rlcreate.safe_io.MAX_POLICY_PARAMS); use smaller layers (net_arch) or spaces"
        )
    return count


# --------------------------------------------------------------------------------- arrays


def check_npz(path: str | Path, cap: int = MAX_NPZ_BYTES) -> None:
    """Refuse an ``.npz`` whose members declare more than ``cap`` bytes in total, hold objects
    (pickle), or are not ``.npy`` arrays, reading only the zip directory and each ``.npy`` header."""
    path = Path(path)

    def bad(detail: str) -> UnsafeInputError:
        return UnsafeInputError(
            f"{path}: not a readable rlcreate state file ({detail}); it may be truncated, "
            "damaged or not written by rlcreate"
        )

    try:
        with open_regular(path, "state file") as raw, zipfile.ZipFile(raw) as zf:
            infos = zf.infolist()
            if len(infos) > 100_000:
                raise bad(f"{len(infos)} members")
            declared = sum(i.file_size for i in infos)
            if declared > cap:
                raise bad(f"declares {declared} bytes uncompressed, over the {cap}-byte cap: possibly a zip bomb")
            total = 0
            for info in infos:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in ((1, 0), (2, 0), (3, 0)):
                        raise bad(f"unknown .npy version {version}")
                    reader = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = reader(f, max_header_size=10_000)
                if dtype.hasobject:
                    raise bad(f"member {info.filename!r} holds Python objects, i.e. pickle; rlcreate never unpickles")
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > info.file_size:
                    raise bad(
                        f"member {info.filename!r} declares shape {shape} ({nbytes} bytes) but holds {info.file_size}"
                    )
                total += nbytes
            if total > cap:
                raise bad(f"declares {total} bytes of arrays, over the {cap}-byte cap")
    except UnsafeInputError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, truncated headers, bad dtype descriptions
        raise bad(f"{type(exc).__name__}: {str(exc)[:120]}") from None


_ST_DTYPES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
    "BOOL": 1,
}


def check_safetensors(
    path: str | Path, expected: dict[str, tuple] | None = None, cap: int = MAX_SAFETENSORS_BYTES
) -> dict[str, tuple]:
    """Read a safetensors header (8-byte length + JSON) and check declared dtypes, shapes and
    offsets against the file size and ``cap`` (and ``expected`` ``{name: shape}`` when given),
    before any tensor is read. Returns ``{name: shape}``."""
    path = Path(path)
    try:
        with open_regular(path, "safetensors file") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise UnsafeInputError(
                    f"{path}: not a readable safetensors file (truncated); the checkpoint is damaged"
                )
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, MAX_JSON_BYTES):
                raise UnsafeInputError(
                    f"{path}: not a readable safetensors file (a header of {n} bytes does not fit "
                    "the file); it may be truncated or not written by rlcreate"
                )
            header = loads_json(_text(f.read(n), str(path)), str(path))
    except OSError as exc:
        raise UnsafeInputError(f"{path}: cannot read it ({exc.strerror})") from None
    if not isinstance(header, dict):
        raise UnsafeInputError(f"{path}: not a readable safetensors file (malformed header)")
    shapes, total = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        ok = (
            isinstance(entry, dict)
            and entry.get("dtype") in _ST_DTYPES
            and isinstance(entry.get("shape"), list)
            and len(entry["shape"]) <= 8
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 2**40 for s in entry["shape"])
        )
        if not ok:
            raise UnsafeInputError(f"{path}: tensor {str(name)[:60]!r} has a malformed header entry")
        shape = tuple(entry["shape"])
        nbytes = math.prod(shape) * _ST_DTYPES[entry["dtype"]]
        offsets = entry.get("data_offsets")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= size - 8 - n
            and offsets[1] - offsets[0] == nbytes
        ):
            raise UnsafeInputError(
                f"{path}: tensor {str(name)[:60]!r} declares shape {shape} that does not fit "
                "its data in the file; the file is damaged"
            )
        total += nbytes
        shapes[name] = shape
    if total > cap:
        raise UnsafeInputError(f"{path}: declares {total} bytes of tensors, over the {cap}-byte cap")
    if expected is not None:
        want = {k: tuple(v) for k, v in expected.items()}
        if want != shapes:
            diff = sorted(set(want.items()) ^ set(shapes.items()))[:3]
            raise UnsafeInputError(
                f"{path}: tensors do not match the policy described by policy.json "
                f"(first differences: {diff}); the checkpoint is damaged or foreign"
            )
    return shapes
