"""Surrogate checkpoints as plain tensors (safetensors) plus JSON metadata, versioned.

A checkpoint is a directory with ``weights.safetensors`` (every parameter and buffer of the surrogate, by state-dict
name) and ``metadata.json`` (format version, descriptor count and names, target names and transforms, the full model
config).
Loading never unpickles anything, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from sbin_loop.config import ModelConfig, stored_model_config
from sbin_loop.model.surrogate import BNNSurrogate

CHECKPOINT_FORMAT = "sbin-bnn-surrogate"
CHECKPOINT_VERSION = 4
"""Bumped whenever the tensors or metadata of a checkpoint change meaning."""

READABLE_VERSIONS = (3, CHECKPOINT_VERSION)
"""Versions this sbin loads. Version 3 predates ``ModelConfig.likelihood`` (its noise heads are Gaussian standard
deviations); its config is read with ``LEGACY_MODEL_DEFAULTS``."""

WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message says why."""


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
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().contiguous() for name, tensor in surrogate.state_dict().items()}
    weights = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(weights))
    os.replace(weights, directory / WEIGHTS_FILE)
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "n_features": surrogate.n_features,
        "target_names": list(surrogate.target_names),
        "transforms": list(surrogate.transforms),
        "config": surrogate.config.model_dump(mode="json"),
        "feature_names": feature_names,
    }
    temporary = directory / f".{METADATA_FILE}.tmp"
    temporary.write_text(json.dumps(metadata, indent=2))
    os.replace(temporary, directory / METADATA_FILE)
    return directory


def read_metadata(directory: str | Path) -> dict:
    """The checkpoint's metadata (format, targets, config, descriptor names).

    Raises:
        CheckpointError: If it is missing, unreadable, or of another format or version.
    """
    directory = Path(directory)
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{directory}: cannot read {METADATA_FILE}: {error}") from None
    if metadata.get("format") != CHECKPOINT_FORMAT or metadata.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{directory}: checkpoint format {metadata.get('format')!r} version {metadata.get('version')!r}; "
            f"this sbin reads {CHECKPOINT_FORMAT!r} versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    if isinstance(metadata.get("config"), dict):
        metadata["config"] = stored_model_config(metadata["config"])
    return metadata


def load_surrogate(directory: str | Path) -> BNNSurrogate:
    """Rebuild a surrogate saved by ``save_surrogate``.

    Raises:
        CheckpointError: If files are missing, the format or version is not this one, or the tensors do not match the
            architecture the metadata describes.
    """
    directory = Path(directory)
    metadata = read_metadata(directory)
    surrogate = BNNSurrogate(
        metadata["n_features"],
        tuple(metadata["target_names"]),
        tuple(metadata["transforms"]),
        ModelConfig(**metadata["config"]),
    )
    try:
        surrogate.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    except (OSError, RuntimeError) as error:
        raise CheckpointError(f"{directory}: cannot load {WEIGHTS_FILE}: {error}") from None
    return surrogate.eval()
