"""A plan's steps as a layered picture (a small Sugiyama-style layout; no graph library).

1. Keep each key once, and only dependencies on other steps that exist: ``depends_on`` is written by a
   model, so it may name missing steps, repeat one, name the step itself, or not be a list at all.
2. Layer by longest path from the roots, in Kahn's order. When only cycles are left, the earliest
   remaining step is placed anyway and its edges from steps not yet placed become back edges. Every round
   places one step, so this ends after as many rounds as there are steps.
3. Order each layer by the barycentre of its parents' x, which removes most crossings in plans this size.
4. Wrap a layer wider than MAX_COLUMNS onto more rows, so the picture's width stays bounded.
5. Coordinates, and each edge as a curve from the bottom of the dependency to the top of the step.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_COLUMNS = 3  # readable on a 390 px phone: the picture shrinks to the card, its text with it
NODE_W, NODE_H = 130, 44
GAP_X, GAP_Y, MARGIN = 16, 34, 6
KEY_CHARS, TITLE_CHARS = 17, 18


@dataclass
class DagNode:
    key: str
    title: str
    status: str
    step: Any
    layer: int = 0
    x: int = 0
    y: int = 0

    width = NODE_W
    height = NODE_H

    @property
    def short_key(self) -> str:
        return _truncate(self.key, KEY_CHARS)

    @property
    def short_title(self) -> str:
        return _truncate(self.title, TITLE_CHARS)

    @property
    def text_x(self) -> int:
        return self.x + 8

    @property
    def key_y(self) -> int:
        return self.y + 18

    @property
    def title_y(self) -> int:
        return self.y + 35


@dataclass
class DagEdge:
    source: str
    target: str
    path: str
    back: bool = False


@dataclass
class DagLayout:
    nodes: list[DagNode] = field(default_factory=list)
    edges: list[DagEdge] = field(default_factory=list)
    width: int = 0
    height: int = 0


def layered_layout(steps: Iterable[Any]) -> DagLayout:
    """Place ``steps`` (anything with key, title, status, depends_on) in layers; see the module docstring."""
    nodes: dict[str, DagNode] = {}
    for step in steps:
        key = str(step.key)
        if key not in nodes:
            nodes[key] = DagNode(key=key, title=str(step.title or ""), status=str(step.status), step=step)
    if not nodes:
        return DagLayout()
    order = {key: index for index, key in enumerate(nodes)}
    parents = {key: _known_dependencies(node.step, key, nodes) for key, node in nodes.items()}
    children: dict[str, list[str]] = {key: [] for key in nodes}
    for key, deps in parents.items():
        for dep in deps:
            children[dep].append(key)

    # 2. Longest-path layers; a cycle is broken at its earliest step.
    back: set[tuple[str, str]] = set()
    waiting = {key: len(deps) for key, deps in parents.items()}
    ready = [key for key in nodes if not waiting[key]]
    remaining = set(nodes)
    while remaining:
        if not ready:
            forced = min(remaining, key=order.__getitem__)
            back.update((dep, forced) for dep in parents[forced] if dep in remaining)
            ready = [forced]
        key = ready.pop(0)
        remaining.discard(key)
        forward = [dep for dep in parents[key] if (dep, key) not in back]
        nodes[key].layer = 1 + max((nodes[dep].layer for dep in forward), default=-1)
        for child in children[key]:
            if child in remaining and (key, child) not in back:
                waiting[child] -= 1
                if not waiting[child]:
                    ready.append(child)

    layers: list[list[str]] = [[] for _ in range(1 + max(node.layer for node in nodes.values()))]
    for key in nodes:
        layers[nodes[key].layer].append(key)
    columns = min(MAX_COLUMNS, max(len(layer) for layer in layers))
    width = 2 * MARGIN + columns * NODE_W + (columns - 1) * GAP_X

    # 3-4. Order by parents' barycentre, then place row by row, each row centred.
    y = MARGIN
    for layer in layers:

        def barycentre(key: str) -> tuple[float, int]:
            xs = [nodes[dep].x for dep in parents[key] if (dep, key) not in back]
            return (sum(xs) / len(xs) if xs else float(width), order[key])

        layer.sort(key=barycentre)
        for start in range(0, len(layer), MAX_COLUMNS):
            row = layer[start : start + MAX_COLUMNS]
            row_width = len(row) * NODE_W + (len(row) - 1) * GAP_X
            x = (width - row_width) // 2
            for key in row:
                nodes[key].x, nodes[key].y = x, y
                x += NODE_W + GAP_X
            y += NODE_H + GAP_Y
    height = y - GAP_Y + MARGIN

    edges = [
        DagEdge(source=dep, target=key, path=_edge_path(nodes[dep], nodes[key]), back=(dep, key) in back)
        for key in nodes
        for dep in parents[key]
    ]
    return DagLayout(nodes=list(nodes.values()), edges=edges, width=width, height=height)


def _known_dependencies(step: Any, key: str, nodes: dict[str, DagNode]) -> list[str]:
    depends_on = getattr(step, "depends_on", None)
    if not isinstance(depends_on, list | tuple):
        return []
    known: list[str] = []
    for dep in depends_on:
        if isinstance(dep, str) and dep in nodes and dep != key and dep not in known:
            known.append(dep)
    return known


def _edge_path(source: DagNode, target: DagNode) -> str:
    """A cubic curve between the facing sides of two boxes; an arch over the top when they share a row."""
    sx, tx = source.x + NODE_W // 2, target.x + NODE_W // 2
    if target.y > source.y:
        sy, ty = source.y + NODE_H, target.y
    elif target.y < source.y:
        sy, ty = source.y, target.y + NODE_H  # a back edge, pointing up
    else:
        sy = ty = source.y
        top = max(0, sy - GAP_Y)  # inside the picture, even on the first row
        return f"M{sx},{sy} C{sx},{top} {tx},{top} {tx},{ty}"
    middle = (sy + ty) / 2
    return f"M{sx},{sy} C{sx},{middle:g} {tx},{middle:g} {tx},{ty}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
