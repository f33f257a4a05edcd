"""Model checkpoints as plain tensors (safetensors) plus JSON metadata; no pickle anywhere.

A checkpoint directory holds ``weights.safetensors`` (every parameter and buffer of the surrogate) and
``model.json`` (format version, architecture config, target names and transforms, descriptor names). Loading
rebuilds the module from the JSON and fills it from the tensors, so a checkpoint from an untrusted source can at
worst hold wrong numbers, never code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from sbin_loop.config import ModelConfig
from sbin_loop.model.surrogate import BNNSurrogate

FORMAT_VERSION = 2
"""2: ensembles of variational networks (``members.K.layers...``), per-member noise, recalibration factor."""
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "model.json"


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message says which file and why."""


def save_surrogate(surrogate: BNNSurrogate, directory: str | Path, feature_names: list[str] | None = None) -> Path:
    """Write a surrogate to ``directory`` (created if needed); files are written to temporaries and renamed.

    Args:
        surrogate: The trained model.
        directory: Destination directory.
        feature_names: Names of the input descriptors, stored so predictions can check they use the same ones.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().contiguous() for name, tensor in surrogate.state_dict().items()}
    metadata = {
        "format_version": FORMAT_VERSION,
        "model_class": "BNNSurrogate",
        "n_features": surrogate.n_features,
        "target_names": list(surrogate.target_names),
        "transforms": list(surrogate.transforms),
        "config": surrogate.config.model_dump(mode="json"),
        "feature_names": feature_names,
    }
    weights_tmp = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(weights_tmp))
    os.replace(weights_tmp, directory / WEIGHTS_FILE)
    metadata_tmp = directory / f".{METADATA_FILE}.tmp"
    metadata_tmp.write_text(json.dumps(metadata, indent=2))
    os.replace(metadata_tmp, directory / METADATA_FILE)
    return directory


def load_metadata(directory: str | Path) -> dict:
    """Read and check a checkpoint's ``model.json``."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; not a sbin model directory")
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: not valid JSON: {error}") from None
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {metadata.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
        )
    return metadata


def load_surrogate(directory: str | Path) -> tuple[BNNSurrogate, dict]:
    """Rebuild a surrogate from a checkpoint directory.

    Returns:
        The surrogate in eval mode and its metadata.
    """
    directory = Path(directory)
    metadata = load_metadata(directory)
    surrogate = BNNSurrogate(
        metadata["n_features"],
        tuple(metadata["target_names"]),
        tuple(metadata["transforms"]),
        ModelConfig.model_validate(metadata["config"]),
    )
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing")
    try:
        surrogate.load_state_dict(load_file(str(weights)))
    except (RuntimeError, OSError) as error:
        raise CheckpointError(f"{weights}: does not match {METADATA_FILE}: {error}") from None
    surrogate.eval()
    return surrogate, metadata
