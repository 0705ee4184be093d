#!/usr/bin/env python3
"""docs/reproduction.md's tables of a run folder, with the thesis's numbers beside meltpot's
(never copied by hand): the melting study (md/melting/, rule melting_compare) and D(T) of the
LAMMPS validation (md/validation/comparison/, with an Arrhenius fit per potential).

    python scripts/reproduction_report.py results/al-active            # print the blocks
    python scripts/reproduction_report.py results/al-active --write    # replace them in docs/reproduction.md
    python scripts/reproduction_report.py results/al-active --check    # exit 1 if the document differs

The blocks sit between ``<!-- numbers:melting-<run_id> -->`` (``diffusion-<run_id>``) and
``<!-- /numbers -->``; a run without one of the two studies writes only the other. --write also
copies melting.png to results/melting-<run_id>.png beside the document.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from active_report import run_config  # noqa: E402
from readme_numbers import _minutes, write_block  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
END = "<!-- /numbers -->"

#: the thesis's Al HDNNP (ch. 3, §3.3.2–3.3.3) and the experiments it quotes
#: thesis Table 3.1: D (Å²/ps) of its HDNNP and of its AIMD reference, 256 atoms, by T (K)
THESIS_D = {600: (0.15, 0.14), 950: (0.63, 0.62), 1500: (1.69, 1.61)}
THESIS = {
    "T_m": ("970 K (NPH coexistence, 5 488 atoms, 1 ns)", "933 K"),
    "T_heat": ("1 250 K (2 048 atoms, stepwise 50 K per 50 ps ≈ 1 K/ps)", "—"),
    "latent_at_T_m_kJ_per_mol": ("11.67 kJ/mol", "13.34 kJ/mol"),
    "cp_solid_J_per_gK": ("0.99 J/(g K)", "0.91 J/(g K)"),
    "cp_liquid_J_per_gK": ("1.158 J/(g K)", "1.127 J/(g K) (1.03–1.18)"),
}
LABELS = {"reference": "EAM (reference)", "model": "ML model"}


def _pm(x, e, nd=0, unit="") -> str:
    if x is None or not math.isfinite(x):
        return "—"
    err = f" ± {e:.{nd}f}" if e is not None and math.isfinite(e) else ""
    return f"{x:.{nd}f}{err}{unit}"


def _get(row, key):
    v = row.get(key, math.nan)
    return float(v) if v is not None and not (isinstance(v, str)) else math.nan


def section(run: Path) -> str:
    mlt = run / "md" / "melting"
    table = mlt / "melting.csv"
    if not table.exists():
        return f"Melting study of {run.name}: not run yet (md/melting/melting.csv missing)."
    cfg = run_config(run)
    m = cfg["melting_md"]
    t = pd.read_csv(table)
    tp = pd.read_csv(mlt / "melting_two_phase.csv") if (mlt / "melting_two_phase.csv").stat().st_size > 1 else None
    rp = pd.read_csv(mlt / "melting_ramps.csv") if (mlt / "melting_ramps.csv").stat().st_size > 1 else None
    dt = cfg["md"]["timestep"]
    model = cfg["validation_md"]["model"]
    lines = [f"Run `{cfg['run_id']}`; potentials: " + ", ".join(
        f"{LABELS.get(p, p)}" + (f" (`validation_md.model: {model}`)" if p == "model" else "") for p in m["potentials"])
        + f"; reference `{' '.join(cfg['reference'].get('pair_coeff', []))}`.", ""]
    if tp is not None and len(tp):
        n_atoms = int(tp["n_atoms"].iloc[0])
        lines.append(f"- Two-phase runs: {m['phase']} {'×'.join(map(str, m['cells']))} cells ({n_atoms} atoms), "
                     f"{m['ensemble'].upper()} at P = 0, set T {', '.join(f'{x:g}' for x in m['temperatures'])} K × "
                     f"{m['replicas']} replica(s), {m['production_steps'] * dt:g} ps of production after "
                     f"{(m['crystal_steps'] + m['melt_steps'] + m['liquid_steps']) * dt:g} ps of preparation; "
                     f"crystalline fraction by adaptive CNA every {m['dump_every'] * dt:g} ps.")
    if rp is not None and len(rp):
        ramps = ", ".join(f"{d} {m[f'ramp_{d}'][0]:g} → {m[f'ramp_{d}'][1]:g} K" for d in ("heat", "cool")
                          if m[f"ramp_{d}"] is not None)
        lines.append(f"- Ramps: {ramps} at {m['ramp_rate']:g} K/ps, {m['ramp_n_atoms']} atoms requested "
                     f"({int(rp['n_atoms'].iloc[0])} on the lattice), NPT at P = 0, {m['ramp_replicas']} replica(s) each.")
    lines += ["", "| quantity | " + " | ".join(LABELS.get(x, x) for x in t["label"])
              + (" | model − reference" if len(t) > 1 else "") + " | thesis HDNNP | experiment |",
              "|---|" + "---|" * len(t) + ("---|" if len(t) > 1 else "") + "---|---|"]

    def add(name, key, err, nd, diff=None, unit=""):
        cells = [_pm(_get(r, key), _get(r, err) if err else None, nd, unit) for _, r in t.iterrows()]
        if len(t) > 1:
            r1 = t.iloc[1]
            cells.append(_pm(_get(r1, diff), _get(r1, f"{diff}_err"), nd, unit) if diff else
                         _pm(_get(r1, key) - _get(t.iloc[0], key), None, nd, unit))
        thesis, exp = THESIS.get(key, ("—", "—"))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {thesis} | {exp} |")

    def text_row(name, cells, thesis=""):
        """A row of words: one cell per potential, an empty difference cell, the thesis, experiment."""
        lines.append(f"| {name} | " + " | ".join(cells) + (" | " if len(t) > 1 else "") + f" | {thesis} | |")

    if "T_m" in t:
        add("T_m (K), two-phase", "T_m", "T_m_err", 0, "dT_m")
        text_row("T_m method; bracket (K)", [f"{r['T_m_method']}; {_pm(_get(r, 'T_solid_grew'), None)}–"
                                             f"{_pm(_get(r, 'T_melted'), None)}" for _, r in t.iterrows()])
    if "T_heat" in t:
        add(f"melting on heating at {m['ramp_rate']:g} K/ps (K)", "T_heat", "T_heat_std", 0, "dT_heat")
        add("latent heat at the heating jump (eV/atom)", "latent_heat", "latent_heat_std", 4)
    cooled = "liquid_branch" in t and (t["liquid_branch"] == "cooling").all()
    solid = t["solid_branch"].iloc[0] if "solid_branch" in t else "heating, below the jump"
    if "cp_solid_J_per_gK" in t:
        add(f"C_P crystal, {solid.replace('heating', 'heating ramps')} (J/(g K))", "cp_solid_J_per_gK", None, 3)
    # the liquid line needs the cooling ramps: the heating ramps' short branch above the
    # superheated melting (with its tail) gives neither the liquid's C_P nor its H at T_m
    if cooled:
        if "latent_at_T_m_kJ_per_mol" in t:
            add("latent heat at T_m, liquid line from the cooling ramps (kJ/mol)", "latent_at_T_m_kJ_per_mol", None, 2)
        if "cp_liquid_J_per_gK" in t:
            add("C_P liquid, cooling ramps, T_m − 100 to T_m + 200 K (J/(g K))", "cp_liquid_J_per_gK", None, 3)
    if "T_cool" in t:
        text_row("crystallised on cooling (ramps)", [
            f"{int(r['cool_jumps'])} of {int(r['cool_runs'])}" + (f" at {r['T_cool']:.0f} K" if math.isfinite(
                _get(r, "T_cool")) else "") for _, r in t.iterrows()], "partial crystallisation below 600 K at ≈ 1 K/ps")
    if not cooled and "T_heat" in t:
        lines += ["", "No cooling ramps in this run: the latent heat at T_m and the liquid's C_P, which need the "
                      "liquid line near T_m, are not reported (melting.csv keeps the heating ramps' estimate, "
                      "`liquid_branch: heating`)."]
    if tp is not None and len(tp):
        lines += ["", "Two-phase runs (change of the crystalline fraction over the production, and the outcome):", "",
                  "| potential | " + " | ".join(f"{x:g} K" for x in sorted(tp["T_set"].unique())) + " |",
                  "|---|" + "---|" * tp["T_set"].nunique()]
        for label, sub in tp.groupby("label", sort=False):
            cells = []
            for T in sorted(tp["T_set"].unique()):
                rs = sub[sub["T_set"] == T]
                cells.append(", ".join(f"{b - a:+.2f} ({o})" for a, b, o in zip(rs["f_start"], rs["f_end"], rs["outcome"])))
            lines.append(f"| {LABELS.get(label, label)} | " + " | ".join(cells) + " |")
    walls = []
    for label in t["label"]:
        w = sum(_get(r, k) for _, r in t[t["label"] == label].iterrows()
                for k in ("two_phase_wall_s", "heat_wall_s", "cool_wall_s") if math.isfinite(_get(r, k)))
        walls.append(f"{LABELS.get(label, label)} {_minutes(w)}")
    lines += ["", f"MD wall time (one core each, LAMMPS single rank): {', '.join(walls)}."]
    return "\n".join(lines)


def diffusion_section(run: Path) -> str | None:
    """D(T) of the validation comparison: each potential's replica mean ± std, model − reference
    ± its standard error, the verdict, the thesis's HDNNP − AIMD at the nearest of its
    temperatures, and the Arrhenius fit of each potential over the temperatures run."""
    from meltpot.analysis.dynamics import arrhenius_fit

    table = run / "md" / "validation" / "comparison" / "comparison.csv"
    if not table.exists():
        return None
    cfg = run_config(run)
    vmd = cfg["validation_md"]
    t = pd.read_csv(table)
    d = t[t["quantity"] == "D"].copy()
    if d.empty:
        return None
    d["T"] = d["condition"].str.lstrip("T").astype(float) if d["condition"].str.startswith("T").all() \
        else float(vmd["T"])
    d = d.sort_values("T")
    box = "box from an NPT equilibration at P = 0" if vmd["volume_per_atom"] is None else \
        f"{vmd['volume_per_atom']:g} Å³/atom"
    lines = [f"Run `{cfg['run_id']}`: NVT liquids of {vmd['n_atoms']} atoms ({box}), "
             f"{vmd['production_steps'] * cfg['md']['timestep']:g} ps of production, {vmd['replicas']} replicas per "
             f"potential and temperature (velocity seeds; the model's replica k starts from the reference's); D from "
             f"the MSD (Å²/ps = 10⁻⁸ m²/s), means ± standard deviation over replicas, Δ ± its standard error; verdict at "
             f"|ΔD|/D ≤ {100 * vmd['thresholds']['D_relative']:g} % with {vmd['thresholds']['sigmas']:g}σ.", "",
             "| T (K) | D, EAM | D, model | ΔD | D verdict | thesis ΔD, HDNNP − AIMD (T) | Δρ/ρ | g(r) MSE |",
             "|---|---|---|---|---|---|---|---|"]
    other = {(r["condition"], r["quantity"]): r for _, r in t[t["quantity"].isin(["density", "gr_mse"])].iterrows()}
    for _, r in d.iterrows():
        near = min(THESIS_D, key=lambda x: abs(x - r["T"]))
        h, a = THESIS_D[near]
        thesis = f"{100 * (h - a) / a:+.1f} % ({near} K)" if abs(near - r["T"]) <= 100 else "—"
        rho, gr = other.get((r["condition"], "density")), other.get((r["condition"], "gr_mse"))
        drho = f"{100 * rho['model-reference'] / rho['reference']:+.2f} %" if rho is not None else "—"
        mse = f"{gr['model-reference']:.1e}" if gr is not None and pd.notna(gr["model-reference"]) else "—"
        lines.append(f"| {r['T']:g} | {r['reference']:.3f} ± {r['reference_std']:.3f} | {r['model']:.3f} ± "
                     f"{r['model_std']:.3f} | {100 * r['model-reference'] / r['reference']:+.1f} % ± "
                     f"{100 * r['model-reference_se'] / r['reference']:.1f} % | {r['model_verdict']} | {thesis} | "
                     f"{drho} | {mse} |")
    if len(d) >= 2:
        fits = {}
        for who in ("reference", "model"):
            f = arrhenius_fit(d["T"], d[who], d[f"{who}_sem"])
            fits[who] = f
        lines += ["", f"Arrhenius fits over {d['T'].min():g}–{d['T'].max():g} K (weighted by the standard errors): "
                  f"E_a = {fits['reference'].E_a:.3f} ± {fits['reference'].E_a_err:.3f} eV (EAM), "
                  f"{fits['model'].E_a:.3f} ± {fits['model'].E_a_err:.3f} eV (model)."]
    lines += ["", "g(r) MSE: model against reference on one grid, replica-averaged (the thesis: 6 × 10⁻⁴ for its "
              "liquids against AIMD)."]
    return "\n".join(lines)


def copy_figure(run: Path, dest: Path) -> None:
    """melting.png as ``dest``/melting-<run_id>.png (the document's results/ folder)."""
    import shutil

    src = run / "md" / "melting" / "melting.png"
    if src.exists():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / f"melting-{run_config(run)['run_id']}.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="run folder, e.g. results/al-active")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "reproduction.md")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    run_id = run_config(args.run)["run_id"]
    blocks = [(f"<!-- numbers:melting-{run_id} -->", section(args.run), "the melting numbers")]
    diffusion = diffusion_section(args.run)
    if diffusion is not None:
        blocks.append((f"<!-- numbers:diffusion-{run_id} -->", diffusion, "the D(T) numbers"))
    if not (args.write or args.check):
        print("\n\n".join(text for _, text, _ in blocks))
        return 0
    if args.write:
        copy_figure(args.run, args.doc.parent / "results")
    status = 0
    for start, text, what in blocks:
        status = max(status, write_block(args.doc, start, END, text, args.check, what, args.run))
    return status


if __name__ == "__main__":
    sys.exit(main())
