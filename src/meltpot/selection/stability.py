"""How stable the AGL choice is across path seeds.

The λ path from one dense model still has random parts: the minibatch order of the GL, AGL and
retraining runs and the initialisation of cold restarts. ``meltpot select path --path-seed K``
reruns the whole path with seeds derived from K (K = 0 is the run's own path); this module
compares the choices of several such paths: the chosen feature count per seed, the kept sets'
overlap with the first path's (Jaccard index |A ∩ B| / |A ∪ B|), the functions every path kept and
those only some kept. A count that changes between seeds is a choice to quote with care (see also
``chosen.json["margins"]``: how far each size is from the tolerance).

Writes ``stability.csv`` (one row per path) and ``stability.json`` (the rows and the summary).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import MeltpotError
from ..manifest import write_json


def _angular(label: str) -> bool:
    """Angular functions carry an angular exponent ζ in their label (G3/G9: ``zeta=``)."""
    return "zeta=" in label


def _kept_labels(chosen: dict) -> set[str]:
    return {f"{lab}@{el}" if len(chosen["kept_labels"]) > 1 else lab
            for el, labs in chosen["kept_labels"].items() for lab in labs}


def path_stability(folders, out_dir) -> dict:
    """Compare the choices of the λ paths in ``folders`` (each a ``meltpot select path`` output
    folder with ``chosen.json`` and ``path.csv``; the first is the reference path) and write
    ``stability.csv`` / ``stability.json`` into ``out_dir``. Returns the JSON's content."""
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise MeltpotError(f"path stability needs at least two λ paths, got {len(folders)}")
    rows, sets = [], []
    for f in folders:
        for name in ("chosen.json", "path.csv"):
            if not (f / name).exists():
                raise MeltpotError(f"{f / name} does not exist (is {f} a `meltpot select path` folder?)")
        chosen = json.loads((f / "chosen.json").read_text())
        path = pd.read_csv(f / "path.csv").sort_values("lambda")
        kept = _kept_labels(chosen)
        sets.append(kept)
        n_full = int(path["n_full"].iloc[0]) if "n_full" in path else None
        counts = ([n_full] if n_full is not None else []) + [int(n) for n in path["n_total"]]
        rows.append({"path_seed": int(chosen.get("path_seed", 0)), "folder": str(f),
                     "n_features": int(chosen["n_features"]), "n_angular": sum(map(_angular, kept)),
                     "lambda": float(chosen["lambda"]),
                     "val_force_rmse_retrained": chosen.get("val_force_rmse_retrained"),
                     "val_rmse_retrained": chosen.get("val_rmse_retrained"),
                     "path": " → ".join(map(str, counts)),
                     "jaccard_vs_first": len(kept & sets[0]) / len(kept | sets[0]) if kept | sets[0] else 1.0,
                     "kept": sorted(kept)})
    seeds = [r["path_seed"] for r in rows]
    if len(set(seeds)) != len(seeds):
        raise MeltpotError(f"path stability: the paths' seeds repeat ({seeds}); give paths of distinct --path-seed")
    table = pd.DataFrame(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.assign(kept=[";".join(r["kept"]) for r in rows]).to_csv(out / "stability.csv", index=False)
    counts = [r["n_features"] for r in rows]
    always = set.intersection(*sets)
    summary = {
        "path_seeds": seeds, "n_features": counts, "n_angular": [r["n_angular"] for r in rows],
        "same_count": len(set(counts)) == 1, "same_set": all(s == sets[0] for s in sets),
        "count_min": min(counts), "count_max": max(counts),
        "jaccard_vs_first": [r["jaccard_vs_first"] for r in rows],
        "kept_by_all": sorted(always), "kept_by_some": sorted(set.union(*sets) - always),
        "paths": rows,
    }
    write_json(out / "stability.json", summary)
    return summary


def stability_sentence(summary: dict) -> str:
    """One line for people: the chosen counts per seed and how much the kept sets overlap."""
    counts = ", ".join(f"{n} ({a} angular)" for n, a in zip(summary["n_features"], summary["n_angular"]))
    verdict = ("the same set" if summary["same_set"] else "the same count" if summary["same_count"]
               else f"counts {summary['count_min']}–{summary['count_max']}")
    jac = ", ".join(f"{j:.2f}" for j in summary["jaccard_vs_first"][1:])
    return (f"λ paths with {len(summary['path_seeds'])} seeds chose {counts}: {verdict}; "
            f"overlap with the first path's set (Jaccard) {jac}; kept by every path: {len(summary['kept_by_all'])}")
