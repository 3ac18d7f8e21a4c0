"""Bounded YAML loading for configs, ``--set`` values and run directories.

``yaml.safe_load`` runs no code, but it is not bounded: a few hundred bytes of nested
aliases (the "billion laughs") name billions of nodes, which metarl's config code
would then walk and copy (minutes, gigabytes), and a key written twice silently
replaces the earlier value. :func:`load_yaml` parses with PyYAML's ``SafeLoader`` but counts
nodes as if every alias were expanded, and stops at the first limit broken or at the
first duplicate key, with a one-line message naming the source.
"""

from __future__ import annotations

from typing import Any, NoReturn

import yaml

# A shipped config has about 100 nodes and no aliases. The node bound is also a time
# bound: the pure-Python SafeLoader composes roughly 20-50 us per node, so 10,000 nodes
# are read (or refused) in well under a second even on a busy machine.
MAX_NODES = 10_000
MAX_ALIASES = 100
MAX_DEPTH = 50  # also keeps PyYAML's recursive composer far from Python's recursion limit

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLLimitError(ValueError):
    """A YAML document broke a limit of :func:`load_yaml` or repeats a key (one-line message)."""


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that counts expanded nodes, aliases and depth, and refuses duplicate keys."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.nodes = 0  # so far, each alias counted as the expanded size of the node it names
        self.aliases = 0
        self.depth = 0
        self.sizes: dict[int, int] = {}  # id(anchored node) -> expanded size, once composed
        # Keys as written: merge keys (<<) may legitimately be overridden, so duplicates
        # are looked for before flatten_mapping mixes merged keys in.
        self.written_keys: dict[int, list[yaml.Node]] = {}

    def fail(self, what: str, mark: Any, why: str) -> NoReturn:
        """Raise the one-line error: ``what`` was found at ``mark``, ``why`` it is refused."""
        raise YAMLLimitError(f"{self.source}: {what} at line {mark.line + 1}, "
                             f"column {mark.column + 1} ({why})")

    def count(self, size: int, mark: Any) -> None:
        """Add ``size`` expanded nodes; fail as soon as the total passes MAX_NODES."""
        self.nodes += size
        if self.nodes > MAX_NODES:
            if self.aliases:
                self.fail(f"YAML alias expansion exceeds {MAX_NODES} nodes", mark,
                          "an alias/anchor bomb?")
            self.fail(f"YAML document has more than {MAX_NODES} nodes", mark,
                      "a metarl config has a few hundred")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                self.fail(f"YAML document uses more than {MAX_ALIASES} aliases "
                          f"(*{event.anchor})", event.start_mark,
                          "a metarl config needs a few at most")
            if id(node) not in self.sizes:  # its anchor's node is still being composed
                self.fail(f"YAML alias *{event.anchor} refers to a node that contains it",
                          event.start_mark, "recursive structures are not allowed")
            self.count(self.sizes[id(node)], event.start_mark)
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"YAML nesting deeper than {MAX_DEPTH} levels", event.start_mark,
                      "a metarl config nests about 4 deep")
        start = self.nodes
        self.count(1, event.start_mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        if getattr(event, "anchor", None) is not None:
            self.sizes[id(node)] = self.nodes - start
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except YAMLLimitError:
            raise
        except ValueError as err:  # 0x_, 2001-13-45, !!int abc: PyYAML lets these escape
            what = repr(node.value)[:60] if isinstance(node, yaml.ScalarNode) else "node"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what} as {node.tag.rsplit(':', 1)[-1]} ({err})",
                node.start_mark) from None

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        self.written_keys[id(node)] = [key for key, _ in node.value if key.tag != _MERGE_TAG]
        return node

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # first, so that '=' keys are plain strings below
            seen: dict[Any, yaml.Node] = {}
            for key_node in self.written_keys.get(id(node), ()):
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # unhashable; SafeConstructor reports it below
                    continue
                if first is not key_node:
                    written = key_node.value if isinstance(key_node, yaml.ScalarNode) else key
                    self.fail(f"duplicate key {repr(written)[:60]}", key_node.start_mark,
                              f"first at line {first.start_mark.line + 1}; a key may appear "
                              "once per mapping, a repeat would silently replace the first")
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document like ``yaml.safe_load``, within MAX_NODES/MAX_ALIASES/MAX_DEPTH.

    ``source`` (a file path, or ``--set KEY``) starts every :class:`YAMLLimitError`
    message; syntax errors still raise ``yaml.YAMLError`` as ``yaml.safe_load`` does.
    """
    loader = _BoundedLoader(text, source)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
