"""The shape of the package (docs/architecture.md): no import cycles between modules, the library
never imports the command line, every stage registers its commands the same way.

The import graph is built statically (``ast``) from every ``import``/``from … import`` in
``src/meltpot``, at module level and inside functions alike: an import deferred into a function
still ties the two modules together, it only hides the loop from Python's import machinery.
"""

from __future__ import annotations

import ast
from pathlib import Path


SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "meltpot"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package ``__init__``)."""
    out = {}
    for f in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (f, is_pkg)
    return out


def _absolute(module: str, is_pkg: bool, level: int, name: str | None) -> str:
    """The absolute name of a relative import ``from {'.' * level}{name} import …`` in ``module``."""
    base = module.split(".")
    if not is_pkg:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph() -> dict[str, set[str]]:
    """Module → the meltpot modules it imports (``from pkg import mod`` counts as ``pkg.mod``).
    Importing ``a.b.c`` implicitly runs ``a/b/__init__``; that implicit edge is not counted
    (a package that re-exports its submodules would otherwise always close a loop)."""
    mods = _modules()
    graph = {}
    for mod, (path, is_pkg) in mods.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    target = _absolute(mod, is_pkg, node.level, node.module)
                elif node.module and node.module.split(".")[0] == PACKAGE:
                    target = node.module
                else:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    targets.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        graph[mod] = {t for t in targets if t in mods and t != mod}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path a → … → a) per strongly connected component of more than
    one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        sccs.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for comp in sccs:  # a shortest path back to the start inside the component, for the message
        start = min(comp)
        paths, seen = {start: [start]}, {start}
        frontier = [start]
        cycle = None
        while frontier and cycle is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & comp):
                    if w == start:
                        cycle = paths[v] + [start]
                        break
                    if w not in seen:
                        seen.add(w)
                        paths[w] = paths[v] + [w]
                        nxt.append(w)
                if cycle:
                    break
            frontier = nxt
        cycles.append(cycle)
    return cycles


def test_cycle_finder_names_the_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_function_level_and_absolute_imports():
    graph = import_graph()
    # reference/__init__ imports the engines inside make_engine only
    assert "meltpot.reference.lammps_engine" in graph["meltpot.reference"]
    assert "meltpot.reference.ase_engine" in graph["meltpot.reference"]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles between modules:\n" + "\n".join(" → ".join(c) for c in cycles)


#: modules no other module imports, and why they exist
ENTRY_POINTS = {
    "meltpot.cli.__main__": "python -m meltpot.cli",
    "meltpot.config_history": "imported by the Snakefile",
    "meltpot.model.calculator": "public API: the ASE calculator of a model file (README)",
}


def test_library_never_imports_the_cli():
    graph = import_graph()
    bad = sorted(f"{m} → {t}" for m, ts in graph.items() if not m.startswith("meltpot.cli")
                 for t in ts if t == "meltpot.cli" or t.startswith("meltpot.cli."))
    assert not bad, "library modules import the command line:\n" + "\n".join(bad)


def test_every_module_is_used():
    graph = import_graph()
    imported = set().union(*graph.values())
    packages = {m for m, (_, is_pkg) in _modules().items() if is_pkg}
    unused = sorted(m for m in graph if m not in imported and m not in packages and m not in ENTRY_POINTS)
    assert not unused, f"modules nothing imports (wire them or delete them): {unused}"


def test_every_stage_registers_its_commands_the_same_way():
    import argparse

    from meltpot import cli

    modules = {m for m in _modules() if m.startswith("meltpot.cli.")}
    helpers = {"meltpot.cli.options", "meltpot.cli.__main__", "meltpot.cli.analyze.common"}
    stages = {s.__name__ for s in cli.stages()}
    from meltpot.cli.analyze import dynamics, order, structure, thermo

    groups = {m.__name__ for m in (dynamics, order, structure, thermo)}
    assert modules - helpers == stages | groups
    for name in sorted(stages | groups):
        module = __import__(name, fromlist=["add_commands"])
        assert callable(getattr(module, "add_commands", None)), f"{name} has no add_commands(subparsers)"
    parser = cli.build_parser()
    assert isinstance(parser, argparse.ArgumentParser)


#: json.dump(s) calls that write no JSON output: hashes of sorted keys, a string column, the
#: TorchScript file's feature-set string, values in n2p2 comment lines, a sampling checkpoint's
#: fingerprint and its metadata inside the .npz
JSON_NOT_OUTPUT = {
    "meltpot/config.py": 1, "meltpot/descriptors/cache.py": 1, "meltpot/descriptors/featureset.py": 1,
    "meltpot/selection/compare.py": 1, "meltpot/selection/path.py": 2, "meltpot/export/torchscript.py": 1,
    "meltpot/data/io.py": 1, "meltpot/manifest.py": 1, "meltpot/sampling/checkpoint.py": 2,
}


def test_every_json_output_is_strict():
    """Every JSON file or line meltpot writes goes through manifest.write_json/json_text (NaN →
    null, allow_nan=False); the json.dump(s) calls left are not outputs (counted above)."""
    import re

    calls = {}
    for f in sorted((SRC / PACKAGE).rglob("*.py")):
        n = len(re.findall(r"\bjson\.dumps?\(", f.read_text()))
        if n:
            calls[str(f.relative_to(SRC))] = n
    assert calls == JSON_NOT_OUTPUT


def test_write_json_is_strict(tmp_path):
    import json

    import numpy as np

    from meltpot.manifest import write_json
    from meltpot.selection.path import read_result

    data = {"a": float("nan"), "b": [np.float32(1.5), np.inf], "c": np.int64(3), "val_rmse_retrained": np.nan}
    write_json(tmp_path / "x.json", data, indent=1)

    def no_constants(name):
        raise ValueError(f"non-strict JSON constant {name}")

    back = json.loads((tmp_path / "x.json").read_text(), parse_constant=no_constants)
    assert back == {"a": None, "b": [1.5, None], "c": 3, "val_rmse_retrained": None}
    assert np.isnan(read_result(tmp_path / "x.json")["val_rmse_retrained"])
    assert not (tmp_path / "x.json.partial").exists()


def test_architecture_page_maps_every_rule():
    """docs/architecture.md names every rule of workflow/rules/ and every CLI module."""
    import re

    root = SRC.parent
    page = (root / "docs" / "architecture.md").read_text()
    rules = set()
    for smk in (root / "workflow" / "rules").glob("*.smk"):
        rules |= set(re.findall(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:", smk.read_text(), re.M))
    assert rules and not {r for r in rules if f"`{r}`" not in page}
    cli_modules = {str(f.relative_to(SRC / PACKAGE / "cli")) for f in (SRC / PACKAGE / "cli").rglob("*.py")}
    missing = {m for m in cli_modules - {"__init__.py", "analyze/__init__.py", "analyze/common.py"}
               if m not in page and m.split("/")[-1] not in page}
    assert not missing
