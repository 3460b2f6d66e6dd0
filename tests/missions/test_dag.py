"""The plan's picture: a layered layout of model-written dependencies, and its SVG with every text escaped."""

import math
from types import SimpleNamespace

import pytest
from django.template import Context, Template

from missions.dag import MAX_COLUMNS, NODE_H, NODE_W, layered_layout


def _steps(graph: dict[str, object], status: str = "pending") -> list[SimpleNamespace]:
    return [
        SimpleNamespace(key=key, title=f"Step {key}", status=status, depends_on=deps) for key, deps in graph.items()
    ]


def _layers(layout) -> dict[str, int]:
    return {node.key: node.layer for node in layout.nodes}


def _inside(layout) -> None:
    for node in layout.nodes:
        assert 0 <= node.x and node.x + NODE_W <= layout.width, node
        assert 0 <= node.y and node.y + NODE_H <= layout.height, node


def _overlaps(layout) -> list:
    boxes = [(node.x, node.y) for node in layout.nodes]
    return [box for box in boxes if boxes.count(box) > 1]


def test_it_layers_a_chain_top_to_bottom():
    """a → b → c: one step per layer, each below its dependency, one column wide."""
    layout = layered_layout(_steps({"a": [], "b": ["a"], "c": ["b"]}))
    assert _layers(layout) == {"a": 0, "b": 1, "c": 2}
    ys = [node.y for node in layout.nodes]
    assert ys == sorted(ys) and len(set(ys)) == 3
    assert len({node.x for node in layout.nodes}) == 1
    assert [(e.source, e.target, e.back) for e in layout.edges] == [("a", "b", False), ("b", "c", False)]
    assert layout.width == NODE_W + 12
    _inside(layout)


def test_it_lays_out_a_diamond_by_longest_path():
    """a → (b, c) → d, and a → d directly: d is below both b and c, not beside them."""
    layout = layered_layout(_steps({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c", "a"]}))
    assert _layers(layout) == {"a": 0, "b": 1, "c": 1, "d": 2}
    nodes = {node.key: node for node in layout.nodes}
    assert nodes["b"].y == nodes["c"].y and nodes["b"].x != nodes["c"].x
    assert len(layout.edges) == 5
    assert not _overlaps(layout)
    _inside(layout)


def test_it_fans_out_and_wraps_a_wide_layer():
    """One root with twelve dependants: the layer wraps onto rows, so the width stays MAX_COLUMNS boxes."""
    graph = {"root": []} | {f"s{i}": ["root"] for i in range(12)}
    layout = layered_layout(_steps(graph))
    assert set(_layers(layout).values()) == {0, 1}
    assert layout.width <= 12 + MAX_COLUMNS * NODE_W + (MAX_COLUMNS - 1) * 16
    assert len({node.y for node in layout.nodes}) == 1 + math.ceil(12 / MAX_COLUMNS)  # the root's row, then 12 wrapped
    assert not _overlaps(layout)
    _inside(layout)


def test_it_orders_a_layer_by_its_parents_to_avoid_crossings():
    """Children listed in the opposite order to their parents are placed under them, so edges do not cross."""
    layout = layered_layout(_steps({"a": [], "b": [], "under_b": ["b"], "under_a": ["a"]}))
    nodes = {node.key: node for node in layout.nodes}
    assert nodes["a"].x < nodes["b"].x
    assert nodes["under_a"].x < nodes["under_b"].x


@pytest.mark.parametrize(
    "graph",
    [
        {"a": ["b"], "b": ["a"]},
        {"a": ["c"], "b": ["a"], "c": ["b"], "d": ["c"]},
        {"a": ["a"]},
        {"a": [], "b": ["a", "c"], "c": ["b"]},
    ],
    ids=["two", "three-and-a-tail", "self", "cycle-below-a-root"],
)
def test_it_places_every_step_of_a_cycle_and_marks_a_back_edge(graph):
    """A cycle never loops or crashes: every step is placed once, and the edges that close a cycle are marked."""
    layout = layered_layout(_steps(graph))
    assert [node.key for node in layout.nodes] == list(graph)
    assert not _overlaps(layout)
    _inside(layout)
    if graph != {"a": ["a"]}:
        assert any(edge.back for edge in layout.edges)
        for edge in layout.edges:
            nodes = {node.key: node for node in layout.nodes}
            if not edge.back:
                assert nodes[edge.source].layer < nodes[edge.target].layer, edge


@pytest.mark.parametrize(
    "depends_on",
    [["ghost"], "a", None, 7, [7, None, {"x": 1}], ["a", "a", "ghost"]],
    ids=["unknown", "a-string", "none", "a-number", "not-strings", "repeated"],
)
def test_it_ignores_dependencies_it_cannot_draw(depends_on):
    """Unknown, repeated or malformed depends_on is ignored; known repeats give one edge."""
    layout = layered_layout(_steps({"a": [], "b": depends_on}))
    edges = [(edge.source, edge.target) for edge in layout.edges]
    assert edges == ([("a", "b")] if depends_on == ["a", "a", "ghost"] else [])
    assert len(layout.nodes) == 2


def test_it_keeps_a_repeated_key_once():
    """Two steps with one key are one box (the first)."""
    steps = _steps({"a": []}) + [SimpleNamespace(key="a", title="again", status="failed", depends_on=[])]
    layout = layered_layout(steps)
    assert [(node.key, node.title) for node in layout.nodes] == [("a", "Step a")]


def test_it_bounds_the_size_of_forty_steps():
    """Forty steps, chained and fanned, stay MAX_COLUMNS wide and at most one row per step tall."""
    graph = {f"s{i}": ([f"s{i - 1}"] if i % 3 else [f"s{j}" for j in range(max(0, i - 6), i)]) for i in range(40)}
    layout = layered_layout(_steps(graph))
    assert len(layout.nodes) == 40
    assert layout.width <= 12 + MAX_COLUMNS * NODE_W + (MAX_COLUMNS - 1) * 16
    assert layout.height <= 12 + 40 * (NODE_H + 34)
    assert not _overlaps(layout)
    _inside(layout)


def test_it_lays_out_nothing_without_steps():
    """No steps, no picture."""
    layout = layered_layout([])
    assert (layout.nodes, layout.edges, layout.width, layout.height) == ([], [], 0, 0)


def _render(steps) -> str:
    return Template("{% load plan_graph %}{% plan_dag steps %}").render(Context({"steps": steps}))


def test_it_renders_an_svg_node_per_step_with_its_status_and_link():
    """Each step is a link to its row, classed by status, with arrows for its dependencies."""
    steps = _steps({"core": [], "api": ["core"]})
    steps[0].status = "succeeded"
    html = _render(steps)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="dag-svg" viewBox="0 0 ' in html
    assert '<a href="#step-core" class="node status-succeeded" id="dag-node-core" data-status="succeeded">' in html
    assert '<a href="#step-api" class="node status-pending" id="dag-node-api"' in html
    assert 'marker-end="url(#dag-arrow)" data-from="core" data-to="api"' in html


def test_it_escapes_hostile_titles_inside_the_svg():
    """A model-written title with markup is text in the picture, truncated, and whole in the node's <title>."""
    title = '<script>alert(1)</script><a href="javascript:alert(2)">x</a>' + "y" * 50
    html = _render([SimpleNamespace(key="core", title=title, status="running", depends_on=[])])
    assert "<script" not in html
    assert 'javascript:alert(2)">' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;a href=&quot;javascript:alert(2)&quot;&gt;x&lt;/a&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;…</text>" in html


def test_it_renders_nothing_without_steps():
    """No plan yet: no empty picture."""
    assert _render([]).strip() == ""
