"""Reading a YAML file a user (or anyone) wrote, with bounded time and memory.

``yaml.safe_load`` never runs code, but a few lines of anchors and aliases ("billion laughs") describe a document
whose expansion does not fit in memory, and deep nesting overflows the recursion limit. ``load_yaml`` refuses a file
larger than ``MAX_BYTES``, a document whose aliases expand to more than ``MAX_NODES`` nodes, recursive aliases and
nesting deeper than ``MAX_DEPTH``, each with a one-line ``YamlLimitError``, before anything is built from it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sbin_loop.files import FileLimitError, read_small_file

MAX_BYTES = 1 << 20
"""Largest YAML file read (1 MiB); a campaign config is a few kilobytes."""

MAX_NODES = 100_000
"""Most nodes the document may have once every alias is expanded; a campaign config has a few hundred."""

MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences; a campaign config nests five levels."""


class YamlLimitError(ValueError):
    """A YAML file that is unreadable, not YAML, or beyond the limits above; the message says which."""


def _expanded_size(root: yaml.Node, max_nodes: int, max_depth: int) -> int:
    """Nodes of the document with every alias expanded, counted without expanding it (shared nodes are memoised).

    Raises:
        YamlLimitError: If the count passes ``max_nodes``, nesting passes ``max_depth``, or an alias refers to a
            node that contains it.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > max_depth:
            raise YamlLimitError(f"nested deeper than {max_depth} levels")
        if id(node) in open_nodes:
            raise YamlLimitError("an alias refers to a node that contains it (recursive structure)")
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key, depth + 1) + size(value, depth + 1) for key, value in node.value)
        open_nodes.discard(id(node))
        if total > max_nodes:
            raise YamlLimitError(f"expands to more than {max_nodes:,} nodes (aliases of aliases?)")
        sizes[id(node)] = total
        return total

    return size(root, 0)


def _read_text(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (never blocking on a FIFO or device)."""
    try:
        data = read_small_file(path, max_bytes)
    except FileLimitError as error:
        raise YamlLimitError(str(error)) from None
    except OSError as error:
        raise YamlLimitError(f"cannot read: {error.strerror or error}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlLimitError(f"not UTF-8 text ({error.reason} at byte {error.start})") from None


def load_yaml(
    path: str | Path, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> object:
    """Parse one YAML document from ``path`` with ``yaml.SafeLoader``, within the limits above.

    Raises:
        YamlLimitError: If the file cannot be read, is not YAML, or passes a limit; the message names the limit
            (not the path: callers add it).
    """
    text = _read_text(Path(path), max_bytes)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, max_nodes, max_depth)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise YamlLimitError(f"not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise YamlLimitError(f"nested deeper than {max_depth} levels") from None
    except (ValueError, OverflowError) as error:  # a scalar no Python value holds: a 5,000-digit integer, a 13th month
        raise YamlLimitError(f"not a usable YAML value: {' '.join(str(error).split())}") from None
    finally:
        loader.dispose()
