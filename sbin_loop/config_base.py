"""What every config section shares: the strict base model, names used as paths, tagged unions.

Each subsystem's settings live beside the subsystem (``sbin_loop.model.config``, ``sbin_loop.oracles.config``,
...); they import only pydantic, the standard library and this module, so validating a campaign config loads no
torch, pandas or jobflow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Tag

from sbin_loop import limits


def _not_only_dots(name: str) -> str:
    if not name.strip("."):
        raise ValueError("must contain a letter, digit, '-' or '_': it is used as a directory name")
    return name


PathComponent = Annotated[
    str,
    Field(min_length=1, max_length=limits.MAX_NAME_LENGTH, pattern=r"^[A-Za-z0-9_.-]+$"),
    AfterValidator(_not_only_dots),
]
"""A name used as one directory or file name: letters, digits, ``-_.``, not ``.`` or ``..``, at most 100 chars."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, and numbers must be finite.

    Infinity and NaN are refused: JSON stores them as null, and a stored campaign config must read back as written.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def kind_or(default: str) -> Callable[[object], str]:
    """Discriminator reading ``kind`` from a mapping or model, with a default when a section leaves it out."""

    def kind(value: object) -> str:
        return value.get("kind", default) if isinstance(value, dict) else getattr(value, "kind", default)

    return kind


UNION_TAGS: set[str] = set()
"""Tags of tagged unions; pydantic puts them in error locations, where users do not write them."""


def tagged(model: type[BaseModel], tag: str) -> object:
    """``model`` as the member ``tag`` of a tagged union; the tag is left out of error locations."""
    UNION_TAGS.add(tag)
    return Annotated[model, Tag(tag)]


Bounds = tuple[float | None, float | None]
"""A quantity's support ``(low, high)``; None for an open end."""


def explicit_fields(config: BaseModel, prefix: str = "") -> set[str]:
    """Dotted paths of the settings given explicitly (in the file), not left to their defaults.

    A nested section given in the file contributes the paths of its own explicit settings; a list of sections (e.g.
    ``oracles``) counts as one setting.
    """
    paths = set()
    for name in config.model_fields_set:
        value = getattr(config, name)
        path = f"{prefix}.{name}" if prefix else name
        paths |= explicit_fields(value, path) if isinstance(value, BaseModel) else {path}
    return paths
