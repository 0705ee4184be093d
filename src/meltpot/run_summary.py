"""A one-page Markdown summary of a run folder: what was computed and the numbers to look at.

Reads the stage outputs that exist under ``results/<run_id>/`` (dataset index, evaluation
metrics, λ path choice, feature-set comparison, LAMMPS validation, nucleation and transport
tables, manifest) and writes ``summary.md`` with one section per stage; a stage that has not
run is listed as such. Units: energies in meV/atom (metal) or ε/atom (lj), forces in eV/Å or ε/σ.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> list[str]:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = ["—" if pd.isna(v) else floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _dataset(run: Path, units: str) -> list[str]:
    idx = run / "dataset" / "index.parquet"
    if not idx.exists():
        return ["not run"]
    index = pd.read_parquet(idx)
    out = [f"{len(index)} frames, {index['state_id'].nunique()} states, "
           f"{int(index['n_atoms'].sum()) if 'n_atoms' in index else '?'} atom environments"]
    splits = run / "dataset" / "splits.parquet"
    if splits.exists():
        counts = pd.read_parquet(splits)["split"].value_counts()
        out.append("splits: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return out


def _model(run: Path, units: str) -> list[str]:
    m = _json(run / "evaluation" / "dense" / "metrics.json")
    if m is None:
        return ["not run"]
    scale, e_unit, f_unit = (1.0, "meV/atom", "eV/Å") if units == "metal" else (1e3, "10⁻³ ε/atom", "ε/σ")
    rows = []
    for split, v in m["splits"].items():
        rows.append({"split": split, "frames": v.get("n_frames"),
                     f"energy RMSE ({e_unit})": float(v["energy_rmse"]) * scale,
                     f"force RMSE ({f_unit})": float(v.get("force_rmse", float("nan")))})
    return _table(pd.DataFrame(rows))


def _selection(run: Path, units: str) -> list[str]:
    chosen = _json(run / "selection" / "agl" / "chosen.json")
    if chosen is None:
        return ["not run"]
    out = [f"AGL chose {chosen['n_features']} features at λ = {chosen['lambda']:.4g} "
           f"({chosen.get('rule', 'rule')})"]
    margins = chosen.get("margins")
    if margins:   # how close each size is to the tolerance: how easily the choice would flip
        limit = 1 + chosen.get("tolerance", float("nan"))
        sizes = ", ".join(f"{m['n_features']}: {m['ratio']:.2f}×" for m in margins)
        out += ["", f"best retrained validation error per feature count relative to the retrained full set "
                    f"(the rule's limit {limit:.2f}×): {sizes}"]
    stability = _json(run / "selection" / "stability" / "stability.json")
    if stability:   # the same path with other seeds: does the choice hold?
        from .selection.stability import stability_sentence

        out += ["", stability_sentence(stability) + " (selection/stability/)"]
    comp = run / "selection" / "comparison" / "comparison.csv"
    if comp.exists():
        scale = 1e3
        df = pd.read_csv(comp)
        df = pd.DataFrame({"set": df["set"], "features": df["n_features"], "angular": df["n_angular"],
                           "test RMSE mean": df["test_rmse_mean"] * scale, "std": df["test_rmse_std"] * scale,
                           "seeds": df["seeds"]})
        out += ["", f"test RMSE in {'meV/atom' if units == 'metal' else '10⁻³ ε/atom'}:", ""] + _table(df)
    return out


def _pm(mean, std=None, digits: str = ".4g") -> str:
    """``mean ± std`` (just the mean without a finite std; — for a missing value)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return format(mean, digits)
    return f"{format(mean, digits)} ± {std:.2g}"


#: the quantities of the validation table, in order (the extrapolation count only when counted)
_VAL_QUANTITIES = ("density", "pe_per_atom", "T", "r_min", "g_peak_r", "g_peak", "g_first_min", "cn", "D",
                   "extrapolation_atom_steps", "gr_mse")


def _validation_condition(comp: dict) -> list[str]:
    """Checks, verdicts and the replica table (mean ± std per label, difference ± se) of one
    `meltpot md compare` comparison.json."""
    from .md.compare import UNITS, verdict_shown

    runs, verdicts = comp["runs"], comp.get("verdicts") or {}
    labels = list(runs)
    ref, others = labels[0], labels[1:]
    unit = UNITS.get(comp.get("units"), {})
    counts = ", ".join(f"{lab} {runs[lab]['n_replicas']}" for lab in labels)
    overall = comp.get("outcome") or ("pass" if comp.get("pass") else "fail")
    out = [f"replicas: {counts} ({runs[ref]['n_atoms']} atoms each); overall: {verdict_shown({'verdict': overall})}"]
    for label, chk in (comp.get("checks") or {}).items():
        verdict = "stable" if chk["stable"] else "NOT stable: " + "; ".join(chk["problems"])
        out.append(f"- {label}: {verdict}" + (f" ({'; '.join(chk['notes'])})" if chk.get("notes") else ""))
    for name, v in verdicts.items():
        out.append(f"- {name}: {verdict_shown(v)} — {v.get('detail', '')}")
    rows = []
    for q in _VAL_QUANTITIES:
        if q == "extrapolation_atom_steps" and all(runs[lab]["mean"].get(q) is None for lab in labels):
            continue
        row = {"quantity": q, "unit": unit.get(q, "")}
        for lab in labels:
            row[f"{lab} (mean ± std)"] = "" if q == "gr_mse" else _pm(runs[lab]["mean"].get(q), runs[lab]["std"].get(q))
        for lab in others:
            if q == "gr_mse":
                row[f"{lab} − {ref} (± se)"] = _pm((comp.get("gr_mse") or {}).get(lab, {}).get("value"), digits=".3g")
            else:
                d = comp["differences"][lab][q]
                row[f"{lab} − {ref} (± se)"] = _pm(d["difference"], d["se"], ".3g")
            v = verdicts.get(q if len(others) == 1 else f"{lab}:{q}")
            row[f"{lab} verdict" if len(others) > 1 else "verdict"] = "" if v is None else verdict_shown(v)
        rows.append(row)
    return out + [""] + _table(pd.DataFrame(rows))


def _validation(run: Path) -> list[str]:
    comp = _json(run / "md" / "validation" / "comparison" / "comparison.json")
    table = run / "md" / "validation" / "comparison" / "comparison.csv"
    if comp is None or not table.exists():
        return ["not run"]
    if "conditions" in comp:  # several temperatures: one table each
        out = [f"overall: {'pass' if comp.get('pass') else 'FAIL'} ({len(comp['conditions'])} conditions)"]
        for name, part in comp["conditions"].items():
            out += ["", f"### {name}", "", *_validation_condition(part)]
        return out
    if "runs" in comp and all("mean" in r for r in comp["runs"].values()):
        return _validation_condition(comp)
    # a comparison.json of an older meltpot (one run per label): the checks and the table as written
    out = []
    for label, chk in comp.get("checks", {}).items():
        verdict = "stable" if chk["stable"] else "NOT stable: " + "; ".join(chk["problems"])
        out.append(f"{label}: {verdict}" + (f" ({'; '.join(chk['notes'])})" if chk.get("notes") else ""))
    df = pd.read_csv(table)
    df = df[~df["quantity"].isin(["atom_steps"])]
    return out + [""] + _table(df)


def _nucleation(run: Path) -> list[str]:
    f = run / "md" / "nucleation" / "ttt_fraction.csv"
    if not f.exists():
        return ["not run"]
    out = ["time to the crystalline fraction (from the isothermal start):", ""] + _table(pd.read_csv(f))
    onset = run / "md" / "nucleation" / "ttt_onset.csv"
    if onset.exists():
        out += ["", "onset (largest solid cluster):", ""] + _table(pd.read_csv(onset))
    rates = run / "md" / "nucleation" / "rates.csv"
    if rates.exists():
        df = pd.read_csv(rates)
        cols = [c for c in ("label", "T", "replicas", "events", "censored", "tau", "tau_lo", "tau_hi", "J", "J_lo",
                            "J_hi", "interval", "pathway_fcc", "pathway_hcp", "pathway_bcc") if c in df]
        unit = df["J_unit"].dropna().iloc[0] if "J_unit" in df and df["J_unit"].notna().any() else "?"
        tu = df["time_unit"].iloc[0] if "time_unit" in df and len(df) else "?"
        out += ["", f"nucleation rates (censored replicas kept; τ in {tu}, J in {unit}; "
                    f"pathway: CNA of the largest cluster at the onset):", ""] + _table(df[cols])
    return out


def _transport(run: Path) -> list[str]:
    fit = _json(run / "md" / "transport" / "arrhenius.json")
    if fit is None:
        return ["not run"]
    out = [f"Arrhenius: E_a = {fit['E_a']:.4g} ± {fit['E_a_err']:.2g} {fit['E_unit']}, "
           f"D0 = {fit['D0']:.4g} {fit['D_unit']}", ""]
    rows = pd.read_csv(run / "md" / "transport" / "arrhenius.csv")[["T", "D", "D_err"]]
    visc = []
    for T in rows["T"]:
        v = run / "md" / "transport" / f"T{T:g}" / "viscosity" / "viscosity.csv"
        visc.append(float(pd.read_csv(v)["eta"].iloc[0]) if v.exists() else float("nan"))
    rows["eta"] = visc
    return out + _table(rows)


def write_summary(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``summary.md`` for the run folder ``run_dir`` (default: inside it); returns its path."""
    run = Path(run_dir)
    manifest = _json(run / "manifest.json") or {}
    cfg = manifest.get("config") or {}
    units = cfg.get("units", "metal")
    lines = [f"# Run {cfg.get('run_id', run.name)}", ""]
    if manifest:
        lines += [f"- created {manifest.get('created')}, git commit {manifest.get('git_commit')}, "
                  f"config sha256 {str(manifest.get('config_sha256'))[:12]}…",
                  f"- elements {', '.join(cfg.get('elements', []))}, units {units}, reference "
                  f"{(cfg.get('reference') or {}).get('pair_style') or (cfg.get('reference') or {}).get('calculator')}",
                  ""]
    for title, body in (("Dataset", _dataset(run, units)), ("Dense model", _model(run, units)),
                        ("Feature selection", _selection(run, units)),
                        ("LAMMPS validation (reference vs model)", _validation(run)),
                        ("Nucleation", _nucleation(run)), ("Transport", _transport(run))):
        lines += [f"## {title}", "", *body, ""]
    times = manifest.get("rule_times") or {}
    if times:
        total = sum(v.get("wall_s", 0.0) for v in times.values())
        lines += ["## Compute", "", f"{len(times)} jobs, {total / 60:.1f} min of wall time in total "
                  "(benchmarks/ per rule)", ""]
    path = Path(out) if out else run / "summary.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
