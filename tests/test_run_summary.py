"""``meltpot summary``: a run folder with some stages done → summary.md names what ran and its numbers."""

from __future__ import annotations

import json

import pandas as pd

from meltpot.cli import main


def test_summary_lists_stages_that_ran_and_marks_the_others(tmp_path):
    run = tmp_path / "results" / "r"
    (run / "evaluation" / "dense").mkdir(parents=True)
    (run / "evaluation" / "dense" / "metrics.json").write_text(json.dumps(
        {"splits": {"test": {"n_frames": 7, "energy_rmse": 1.25, "force_rmse": 0.2}}}))
    (run / "md" / "transport").mkdir(parents=True)
    (run / "md" / "transport" / "arrhenius.json").write_text(json.dumps(
        {"E_a": 0.22, "E_a_err": 0.01, "E_unit": "eV", "D0": 8.5, "D_unit": "Å²/ps"}))
    pd.DataFrame({"T": [1000.0, 1400.0], "D": [0.6, 1.3], "D_err": [float("nan")] * 2}).to_csv(
        run / "md" / "transport" / "arrhenius.csv", index=False)
    (run / "md" / "transport" / "T1000" / "viscosity").mkdir(parents=True)
    pd.DataFrame({"eta": [1.13]}).to_csv(run / "md" / "transport" / "T1000" / "viscosity" / "viscosity.csv",
                                         index=False)
    assert main(["summary", str(run)]) == 0
    text = (run / "summary.md").read_text()
    assert "| test | 7 | 1.25 | 0.2 |" in text
    assert "## Dataset\n\nnot run" in text and "## Nucleation\n\nnot run" in text
    assert "E_a = 0.22 ± 0.01 eV" in text and "| 1000 | 0.6 | — | 1.13 |" in text and "| 1400 | 1.3 | — | — |" in text


def test_summary_shows_the_validation_replicas_and_verdicts(tmp_path):
    """Real EAM runs (2 replicas per label, tiny): the validation table has mean ± std per label,
    the difference ± se and the verdicts; several temperatures give one table each."""
    from pathlib import Path

    from meltpot.config import load_config
    from meltpot.md.compare import combine_comparisons, compare_runs
    from meltpot.md.execute import run_protocol
    from meltpot.md.plan import apply_overrides

    root = Path(__file__).resolve().parents[1]
    cfg = apply_overrides(load_config(root / "config" / "config.yaml"), "nvt",
                          ["T=1000", "n_atoms=108", "melt_steps=200", "cool_steps=200", "equilibration_steps=100",
                           "production_steps=200", "dump_every=10", "volume=fixed", "density=2.37"])
    folders = [tmp_path / "md" / f"r{k}" for k in range(4)]
    for k, f in enumerate(folders):
        assert run_protocol(cfg, "nvt", f, replica=k)["status"] == "ok"
    run = tmp_path / "results" / "r"
    val = run / "md" / "validation"
    compare_runs({"reference": folders[:2], "model": folders[2:]}, val / "comparison", {1: "Al"}, 0.002)
    assert main(["summary", str(run)]) == 0
    text = (run / "summary.md").read_text()
    section = text.split("## LAMMPS validation")[1].split("## Nucleation")[0]
    assert "replicas: reference 2, model 2 (108 atoms each); overall: " in section
    assert "- model: stable" in section and "- D: " in section and "- gr_mse: " in section
    assert "| quantity | unit | reference (mean ± std) | model (mean ± std) | model − reference (± se) | verdict |" \
        in section
    row = next(line for line in section.splitlines() if line.startswith("| density |"))
    assert row.endswith("| pass |") and " ± " in row          # fixed volume: equal densities
    assert next(line for line in section.splitlines() if line.startswith("| T | K |")).endswith("|  |")
    assert "extrapolation_atom_steps" not in section      # not the meltpot pair style
    # two temperatures (here the same runs twice): a merged comparison, one table each
    (val / "T1000").mkdir()
    (val / "comparison").rename(val / "T1000" / "comparison")
    combine_comparisons({"T1000": val / "T1000" / "comparison", "T1250": val / "T1000" / "comparison"},
                        val / "comparison")
    assert main(["summary", str(run)]) == 0
    section = (run / "summary.md").read_text().split("## LAMMPS validation")[1].split("## Nucleation")[0]
    assert "(2 conditions)" in section and "### T1000" in section and "### T1250" in section
    assert section.count("| quantity | unit |") == 2
