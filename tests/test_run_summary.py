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
