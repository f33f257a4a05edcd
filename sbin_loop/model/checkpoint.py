"""Surrogate checkpoints as plain tensors (safetensors) plus JSON metadata, versioned.

A checkpoint is a directory with ``weights.safetensors`` (every parameter and buffer of the surrogate, by state-dict
name), ``metadata.json`` (format version, descriptor count and names, target names and transforms, the full model
config, the number of training rows), one ``boosted_inputs_<j>.txt.gz`` per output ``j`` that has a booster
(``ModelConfig.boosted_input_rows``) and one ``floor_mass_<j>.txt.gz`` per output with a classifier of values at its
lower bound (``ModelConfig.floor_mass_rows``, ``sbin_loop.model.floor_mass``), in LightGBM's text model format,
gzip-compressed: a campaign keeps one checkpoint per round, and at 10,896 SuperCon rows the classifier's forest is
9.6 MB of text and the booster 3.1 MB, 2.5 and 1.1 MB compressed.
Loading never unpickles anything, so a checkpoint from an untrusted source cannot run code. Nothing in it is trusted
either: the metadata is validated (types, ranges, the model config as a campaign config's ``model`` section), and the
tensor names and shapes in the weights file's header must be exactly those of the architecture it describes before
any model is allocated, so a checkpoint can neither exhaust memory nor fail with a traceback.
"""

from __future__ import annotations

import gzip
import io
import json
import reprlib
import zlib
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from sbin_loop.atomic import write_atomic
from sbin_loop.files import FileLimitError, read_small_file
from sbin_loop.model.boosted_inputs import BoostedInputs
from sbin_loop.model.config import ModelConfig, stored_model_config
from sbin_loop.model.surrogate import BNNSurrogate, ModelOutputError
from sbin_loop.model.transforms import TRANSFORMS

CHECKPOINT_FORMAT = "sbin-bnn-surrogate"
CHECKPOINT_VERSION = 11
"""Bumped whenever the files, tensors or metadata of a checkpoint change meaning."""

READABLE_VERSIONS = (3, 4, 5, 6, 7, 8, 9, 10, CHECKPOINT_VERSION)
"""Versions this sbin loads. Version 3 predates ``ModelConfig.likelihood`` (its noise heads are Gaussian standard
deviations); its config is read with ``LEGACY_MODEL_DEFAULTS``. Version 4 predates cross-fitted members (its config
may name ``REMOVED_MODEL_FIELDS``, which are dropped) and ``training_rows``. Version 5 predates quantile input
scaling (``ModelConfig.quantile_rows``: its config lacks the field and reads as null, so its inputs stay
standardised; it has no ``x_knots`` or ``x_quantile``). Version 6 predates boosted inputs (its config lacks
``boosted_input_rows`` and reads as null: the networks read the descriptors alone). Version 7 predates the
conformal shape of recalibration (``conformal_template``): its intervals keep the per-level factors. Version 8 predates
the classifiers of values at the lower bound (``floor_outputs``): its draws carry no extra mass there. Versions up to
9 store their boosters as plain text (``boosted_inputs_<j>.txt``). Version 10 predates the skew of the conformal shape
(``conformal_skew``): its shapes are symmetric."""

COMPRESSED_FROM_VERSION = 10
"""The first version whose booster files are gzip-compressed."""

WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"
MAX_METADATA_BYTES = 1 << 20
"""Largest ``metadata.json`` read; a real one is a few kilobytes (descriptor names and model config)."""
MAX_BOOSTER_BYTES = 256 << 20
"""Largest booster text read, compressed or not; 500 trees of 63 leaves are a few megabytes, the classifier's forest
of 100 trees about 10 MB at 10^4 rows."""
MAX_FEATURES = 100_000
MAX_TARGETS = 1000


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message says why."""


class CheckpointMetadata(BaseModel):
    """What ``metadata.json`` must hold to be loaded; other keys are ignored.

    The format and version are checked before (``read_metadata``), for a message naming both.

    Attributes:
        n_features: Input descriptors.
        target_names: One name per output.
        transforms: One of ``TRANSFORMS`` per output.
        config: The model config (validated as ``ModelConfig`` by ``model_config_of``).
        feature_names: Names of the input descriptors, if recorded.
        training_rows: Rows the model was trained on (every row it was given), if recorded.
        boosted_outputs: The outputs with a ``boosted_inputs_<j>.txt`` booster (none if absent).
        floor_outputs: The outputs with a ``floor_mass_<j>.txt`` classifier (none if absent).
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    n_features: int = Field(gt=0, le=MAX_FEATURES)
    target_names: list[str] = Field(min_length=1, max_length=MAX_TARGETS)
    transforms: list[Literal[TRANSFORMS]]  # type: ignore[valid-type]
    config: dict
    feature_names: list[str] | None = None
    training_rows: int | None = Field(default=None, ge=0)
    boosted_outputs: list[int] = Field(default_factory=list, max_length=MAX_TARGETS)
    floor_outputs: list[int] = Field(default_factory=list, max_length=MAX_TARGETS)

    @model_validator(mode="after")
    def _one_transform_per_target(self) -> CheckpointMetadata:
        if len(self.transforms) != len(self.target_names):
            raise ValueError("transforms: need one per target name")
        for key in ("boosted_outputs", "floor_outputs"):
            if any(not 0 <= j < len(self.target_names) for j in getattr(self, key)):
                raise ValueError(f"{key}: each must be the index of a target name")
        return self


BOOSTER_FILES = {
    "boosted": ("boosted_inputs_{}.txt.gz", "boosted inputs"),
    "floor_mass": ("floor_mass_{}.txt.gz", "floor mass"),
}
"""File name pattern and name in messages of each ``BoostedInputs`` attribute's per-output boosters."""


def booster_file(output: int, kind: str = "boosted", version: int = CHECKPOINT_VERSION) -> str:
    """The file name of output ``output``'s booster of ``kind`` (a ``BOOSTER_FILES`` key) in checkpoint ``version``."""
    name = BOOSTER_FILES[kind][0].format(output)
    return name if version >= COMPRESSED_FROM_VERSION else name.removesuffix(".gz")


def _validation_message(error: ValidationError) -> str:
    """The first problem of a validation error, as ``key: reason``."""
    item = error.errors()[0]
    key = ".".join(str(part) for part in item["loc"]) or "(top level)"
    return f"{key}: {item['msg'].removeprefix('Value error, ')}"


def save_surrogate(surrogate: BNNSurrogate, directory: str | Path, feature_names: list[str] | None = None) -> Path:
    """Write a trained surrogate to ``directory`` (created if needed).

    Each file is written under a temporary name and renamed, so a crash never leaves a half-written checkpoint.

    Args:
        surrogate: The trained model.
        directory: Destination.
        feature_names: Names of the input descriptors, kept so a later prediction can check it computes the same.

    Returns:
        The directory.
    """
    try:
        surrogate.check_finite()
    except ModelOutputError as error:
        raise CheckpointError(
            f"training diverged: {error}; nothing saved. Check the targets' scale, or lower model.learning_rate"
        ) from None
    tensors = {name: tensor.detach().contiguous() for name, tensor in surrogate.state_dict().items()}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def write_weights(path: Path) -> None:
        try:
            save_file(tensors, str(path))
        except SafetensorError as error:  # an I/O failure (full disk, file-size limit), reported as one
            raise OSError(None, f"cannot write ({error})", str(directory / WEIGHTS_FILE)) from None

    write_atomic(directory / WEIGHTS_FILE, write_weights)
    texts = {kind: getattr(surrogate, kind).to_text() for kind in BOOSTER_FILES}
    for kind, kind_texts in texts.items():
        for j, text in enumerate(kind_texts):
            if text is not None:
                write_atomic(directory / booster_file(j, kind), gzip.compress(text.encode(), compresslevel=6, mtime=0))
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "n_features": surrogate.n_features,
        "target_names": list(surrogate.target_names),
        "transforms": list(surrogate.transforms),
        "config": surrogate.config.model_dump(mode="json"),
        "feature_names": feature_names,
        "training_rows": surrogate.n_train_rows,
        "boosted_outputs": [j for j, text in enumerate(texts["boosted"]) if text is not None],
        "floor_outputs": [j for j, text in enumerate(texts["floor_mass"]) if text is not None],
    }
    write_atomic(directory / METADATA_FILE, json.dumps(metadata, indent=2))
    return directory


def _read_text(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of a checkpoint file of at most ``max_bytes``, gzip-compressed where its name ends in ``.gz``.

    A compressed file is decompressed up to ``max_bytes`` and no further, so a small file cannot expand without bound.

    Raises:
        CheckpointError: ``<directory>: cannot read <file>: <reason>`` if it is missing, not a regular file, too large
            (compressed or decompressed), not gzip where named so, or not UTF-8.
    """
    try:
        data = read_small_file(path, max_bytes)
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
                data = handle.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise FileLimitError(f"larger than the {max_bytes:,} bytes allowed once decompressed")
        return data.decode()
    except (OSError, EOFError, zlib.error, FileLimitError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CheckpointError(f"{path.parent}: cannot read {path.name}: {reason}") from None


def read_metadata(directory: str | Path) -> dict:
    """The checkpoint's metadata (format, targets, config, descriptor names).

    Raises:
        CheckpointError: If it is missing, not a regular file, too large, not JSON, of another format or version, or
            a key is missing or invalid (the message names the key).
    """
    directory = Path(directory)
    path = directory / METADATA_FILE
    text = _read_text(path, MAX_METADATA_BYTES)
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{directory}: cannot read {METADATA_FILE}: {error}") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: a JSON object is required, got {type(metadata).__name__}")
    if metadata.get("format") != CHECKPOINT_FORMAT or metadata.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{directory}: checkpoint format {reprlib.repr(metadata.get('format'))} version "
            f"{reprlib.repr(metadata.get('version'))}; this sbin reads {CHECKPOINT_FORMAT!r} versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        CheckpointMetadata.model_validate(metadata)
    except ValidationError as error:
        raise CheckpointError(f"{path}: {_validation_message(error)}") from None
    metadata["config"] = stored_model_config(metadata["config"])
    return metadata


def model_config_of(metadata: dict, directory: Path) -> ModelConfig:
    """The checkpoint's model config, validated like a campaign's ``model`` section.

    Raises:
        CheckpointError: Naming the invalid key (``config.hidden``...).
    """
    try:
        return ModelConfig.model_validate(metadata["config"])
    except ValidationError as error:
        raise CheckpointError(f"{directory / METADATA_FILE}: config.{_validation_message(error)}") from None


def _check_tensor_shapes(surrogate: BNNSurrogate, weights: Path, directory: Path) -> None:
    """Compare the names and shapes in the weights file's header with ``surrogate`` (built on the meta device).

    Raises:
        CheckpointError: If the file is not a regular safetensors file, or a tensor is missing, extra or of another
            shape (the message names it).
    """
    if not weights.is_file():
        raise CheckpointError(f"{directory}: {WEIGHTS_FILE} is missing or not a regular file")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            stored = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (OSError, SafetensorError) as error:
        raise CheckpointError(f"{directory}: cannot read {WEIGHTS_FILE}: {error}") from None
    expected = {name: tuple(tensor.shape) for name, tensor in surrogate.state_dict().items()}
    for name in sorted(expected.keys() | stored.keys()):
        if name not in stored and name not in BNNSurrogate.OPTIONAL_BUFFERS:
            raise CheckpointError(f"{directory}: {WEIGHTS_FILE} lacks tensor {name!r} that {METADATA_FILE} implies")
        if name not in expected:
            raise CheckpointError(f"{directory}: {WEIGHTS_FILE} has tensor {name!r} that {METADATA_FILE} does not")
        if name in stored and stored[name] != expected[name]:
            raise CheckpointError(
                f"{directory}: tensor {name!r} has shape {list(stored[name])} in {WEIGHTS_FILE}, but {METADATA_FILE} "
                f"(n_features, target_names, config.hidden...) implies {list(expected[name])}"
            )


def load_surrogate(directory: str | Path) -> BNNSurrogate:
    """Rebuild a surrogate saved by ``save_surrogate``.

    Raises:
        CheckpointError: If files are missing, the format or version is not this one, or the tensors do not match the
            architecture the metadata describes.
    """
    directory = Path(directory)
    metadata = read_metadata(directory)
    arguments = (metadata["n_features"], tuple(metadata["target_names"]), tuple(metadata["transforms"]))
    config = model_config_of(metadata, directory)
    boosted = {"boosted": bool(metadata.get("boosted_outputs"))}
    with torch.device("meta"):  # shapes only: nothing is allocated until the file is known to hold them
        _check_tensor_shapes(BNNSurrogate(*arguments, config, **boosted), directory / WEIGHTS_FILE, directory)
    surrogate = BNNSurrogate(*arguments, config, **boosted)
    try:
        surrogate.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    except (OSError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f"{directory}: cannot load {WEIGHTS_FILE}: {error}") from None
    surrogate.n_train_rows = metadata.get("training_rows")
    version = metadata["version"]
    surrogate.boosted = _read_boosters(surrogate, "boosted", metadata.get("boosted_outputs", []), directory, version)
    surrogate.floor_mass = _read_boosters(
        surrogate, "floor_mass", metadata.get("floor_outputs", []), directory, version
    )
    return surrogate.eval()


def _read_boosters(
    surrogate: BNNSurrogate, kind: str, outputs: list[int], directory: Path, version: int
) -> BoostedInputs:
    """The boosters of ``outputs`` (``booster_file``) for ``surrogate``'s attribute ``kind`` (``BOOSTER_FILES``).

    Raises:
        CheckpointError: If a file is missing, too large or not a LightGBM model of the surrogate's input width.
    """
    texts: list[str | None] = [None] * len(getattr(surrogate, kind).boosters)
    for j in outputs:
        texts[j] = _read_text(directory / booster_file(j, kind, version), MAX_BOOSTER_BYTES)
    try:
        return BoostedInputs.from_text(texts, surrogate.n_features)
    except ValueError as error:
        raise CheckpointError(f"{directory}: {BOOSTER_FILES[kind][1]}: {error}") from None
