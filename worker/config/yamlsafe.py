"""A YAML loader for configuration files that an attacker, or a tired engineer, cannot turn
against the worker.

PyYAML's `SafeLoader` (the well-kept parser we build on) constructs no Python objects, but
left alone it still:

- expands aliases without bound: anchors nested nine deep in a 1.7 KB file expand to billions
  of values once validated ("billion laughs");
- recurses once per nesting level, so `[[[[…]]]]` a few thousand deep ends in RecursionError;
- keeps the last of two equal keys without a word (a second `tenant:` silently switches the
  customer's rows);
- reads YAML 1.1 surprises: `01042` as the octal number 546, `10:42` as 642, `0x416` as 1046,
  and `2026-13-30` as a timestamp whose constructor raises a bare ValueError;
- honours explicit tags (`!!timestamp`, `!!binary`, `!!int abc`), whose constructors raise
  errors of their own.

`BoundedLoader` composes the node graph and stops with a `LimitError` (a located YAML error)
as soon as the graph, expanded as validation would walk it, passes `MAX_NODES` values or
`MAX_CHARS` characters, or nests deeper than `MAX_DEPTH`; it refuses recursive aliases,
duplicate keys (at the second occurrence), keys that are not scalars, and explicit tags. It
resolves only plain decimal integers as numbers and leaves dates as text, so the models parse
them with a message at their place. Ordinary anchors, aliases and merge keys (`<<: *base`)
keep working within the bounds.
"""

from __future__ import annotations

import re
from typing import Any, cast

import yaml
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# The shipped product mappings hold about 350 values in 3.5 KiB; these bounds leave room for a
# product of hundreds of tables, and keep the worst file under a few seconds of parsing (PyYAML
# reads about 20 000 values a second) and some tens of MB.
MAX_FILE_BYTES = 512 * 1024
MAX_DEPTH = 32  # nesting of mappings and lists, aliases expanded
MAX_NODES = 50_000  # values (mappings, lists, scalars), aliases expanded
MAX_CHARS = 2 << 20  # characters of all scalars, aliases expanded

_INT = "tag:yaml.org,2002:int"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_FLOAT = "tag:yaml.org,2002:float"

Path = tuple[str | int, ...]


class LimitError(yaml.MarkedYAMLError):
    """The file is valid YAML but not acceptable as configuration; `path` is where."""

    def __init__(self, problem: str, mark: Any, path: Path) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.path = path


class BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` with bounds, duplicate-key and tag refusal, and YAML 1.2-like scalars.

    Use through `load()`. Raises `yaml.YAMLError` (a `LimitError` for what this class adds)
    for every problem; never RecursionError, never unbounded memory.
    """

    # Resolvers: the safe ones minus timestamps and YAML 1.1 integers (octal, hex, binary,
    # sexagesimal, underscores); plain decimal integers are added back below.
    # PyYAML reads this class attribute (and add_implicit_resolver copies it per class).
    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _TIMESTAMP)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._costs: dict[int, tuple[int, int, int]] = {}  # id(node) → (nodes, chars, height)
        self._nodes = 0
        self._chars = 0
        self._depth = 0
        self._path: list[str | int] = []

    def _refuse(self, problem: str, mark: Any, part: str | int | None) -> LimitError:
        where = (*self._path, part) if part is not None else tuple(self._path)
        return LimitError(problem, mark, where)

    def _charge(self, nodes: int, chars: int, mark: Any, part: str | int | None) -> None:
        self._nodes += nodes
        self._chars += chars
        if self._nodes > MAX_NODES or self._chars > MAX_CHARS:
            raise self._refuse(
                f"the file expands to more than {MAX_NODES:,} values or {MAX_CHARS:,} characters "
                "(aliases counted each time they are used); a configuration file never needs "
                "that many: remove the aliases that repeat aliases, or split the file",
                mark,
                part,
            )

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        """Compose one node, keeping the running size, the depth and the path."""
        part: str | int | None = index.value if isinstance(index, ScalarNode) else index
        if isinstance(index, Node) and not isinstance(index, ScalarNode):
            part = "?"
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            return self._compose_alias(parent, index, part, event)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise self._refuse(
                f"the tag {tag} is not used in configuration files; remove it "
                "(quote a value to keep it as text: '01042')",
                event.start_mark,
                part,
            )
        nested = isinstance(event, CollectionStartEvent)
        if nested and index is None and isinstance(parent, MappingNode):
            raise self._refuse(
                "a key must be a plain name, not a list or mapping; write `name: value`",
                event.start_mark,
                part,
            )
        if part is not None:
            self._path.append(part)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise self._refuse(
                    f"nested more than {MAX_DEPTH} levels deep; a configuration file never "
                    "needs that: check the brackets and indentation",
                    event.start_mark,
                    None,
                )
        node = cast(Node, super().compose_node(parent, index))
        if nested:
            self._depth -= 1
        if part is not None:
            self._path.pop()
        self._costs[id(node)] = self._cost_of(node)
        self._charge(
            1, len(node.value) if isinstance(node, ScalarNode) else 0, event.start_mark, part
        )
        return node

    def _compose_alias(
        self, parent: Node | None, index: Any, part: str | int | None, event: AliasEvent
    ) -> Node:
        target = self.anchors.get(event.anchor)
        if target is not None:
            cost = self._costs.get(id(target))
            if cost is None:
                raise self._refuse(
                    f"the alias *{event.anchor} is used inside the value it names, which makes "
                    "a loop; repeat the value instead",
                    event.start_mark,
                    part,
                )
            if self._depth + cost[2] > MAX_DEPTH:
                raise self._refuse(
                    f"the alias *{event.anchor} nests the value more than {MAX_DEPTH} levels "
                    "deep; a configuration file never needs that",
                    event.start_mark,
                    part,
                )
            self._charge(cost[0], cost[1], event.start_mark, part)
        return cast(Node, super().compose_node(parent, index))  # an unknown anchor raises there

    def _cost_of(self, node: Node) -> tuple[int, int, int]:
        """(values, characters, height) of `node` with every alias expanded."""
        if isinstance(node, ScalarNode):
            return (1, len(node.value), 0)
        if isinstance(node, SequenceNode):
            children = list(node.value)
        else:
            children = [n for pair in node.value for n in pair]
        costs = [self._costs[id(child)] for child in children]
        return (
            1 + sum(c[0] for c in costs),
            sum(c[1] for c in costs),
            1 + max((c[2] for c in costs), default=0),
        )

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        """A mapping whose keys are all different, as YAML requires and PyYAML does not check."""
        node: MappingNode = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, Any], ScalarNode] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode):  # an alias to a collection used as a key
                raise self._refuse(
                    "a key must be a plain name, not a list or mapping; write `name: value`",
                    key.start_mark,
                    None,
                )
            same = _key_identity(key)
            if same in seen:
                first = seen[same].start_mark.line + 1
                raise self._refuse(
                    f"the key {key.value!r} appears a second time in this mapping (first at "
                    f"line {first}); YAML would silently keep only the last one: remove one",
                    key.start_mark,
                    key.value,
                )
            seen[same] = key
        return node


BoundedLoader.add_implicit_resolver(
    _INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]{0,99})$"), list("-+0123456789")
)


def _key_identity(key: ScalarNode) -> tuple[str, Any]:
    """What a key becomes once constructed: `true` and `True` are one key, so are `1` and `+1`."""
    if key.tag == _INT:
        return (key.tag, int(key.value))
    if key.tag == _BOOL:
        return (key.tag, key.value.lower() in ("yes", "true", "on"))
    if key.tag == _NULL:
        return (key.tag, None)
    if key.tag == _FLOAT:
        return (key.tag, key.value.lower())
    return (key.tag, key.value)


def load(text: str) -> tuple[Node | None, Any]:
    """Compose and construct one YAML document within the bounds of this module.

    Returns (node graph, data), (None, None) for an empty document. Raises `yaml.YAMLError`
    (`LimitError` with a `path` for a refused graph) for every problem in the text.
    """
    loader = BoundedLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        return node, data
    finally:
        loader.dispose()
