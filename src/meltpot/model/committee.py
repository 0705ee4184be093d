"""A committee of HDNNPs in Python: per-model energies and forces, and their disagreement.

The independent reference of the LAMMPS pair style's committee deviation (``pair_style meltpot
COMMITTEE.pt deviation N FILE``, :mod:`meltpot.export.torchscript`): every member runs the
ordinary model evaluation (torch descriptors, autograd forces: :func:`meltpot.model.batch.
predict`) on the same neighbour list.

Definitions (DeePMD's ``model_devi``, as the plugin writes them), with K members, f_i^k the
force on atom i of member k (eV/Å or ε/σ), f̄_i = (1/K) Σ_k f_i^k and E^k the total energy of
member k (eV or ε) of a frame of N atoms:

* σ_F(i) = sqrt((1/K) Σ_k |f_i^k − f̄_i|²) (eV/Å); the frame's max, min and mean over atoms;
* σ_E = sqrt((1/K) Σ_k (E^k − Ē)²) / N (eV/atom), the standard deviation of the total energy
  per atom (population standard deviations, 1/K, as DeePMD's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .batch import frame_graph, predict

DEVIATION_COLUMNS = ("step", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e", "extrapolating")
"""Columns of the deviation file the plugin writes (and of :func:`read_deviation`): the step, the
force deviations (eV/Å), the energy deviation (eV/atom), the atoms extrapolating at that step
(a feature outside the export's training range; −1 when it holds none)."""


class Committee:
    """K HDNNPs on one feature set (:class:`~meltpot.model.hdnnp.HDNNP` objects or model files).

    ``evaluate(atoms)`` gives every member's energy and forces; ``deviation(atoms)`` the
    committee disagreement of a frame (see the module docstring)."""

    def __init__(self, models: Sequence, device: str = "cpu"):
        from ..export.torchscript import committee_members
        from .modelfile import load_model

        loaded = [m if isinstance(m, torch.nn.Module) else load_model(m) for m in models]
        self.models = [m.double().to(device).eval() for m in committee_members(loaded)]
        self.device = device

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], device: str = "cpu") -> Committee:
        return cls([str(p) for p in paths], device=device)

    @property
    def elements(self) -> list[str]:
        return list(self.models[0].elements)

    @property
    def size(self) -> int:
        return len(self.models)

    def evaluate(self, atoms) -> dict:
        """``energy`` (K,) total energies, ``energies`` (K, N) per-atom energies, ``forces``
        (K, N, 3), each member's, in the model's units (eV, eV/Å for metal)."""
        ref = self.models[0]
        g = frame_graph(atoms, ref.elements, ref.cutoff, device=self.device)
        e, ea, f = [], [], []
        for m in self.models:
            out = predict(m, [g], forces=True)
            e.append(float(out["energy"][0].detach()))
            ea.append(out["atomic_energies"].detach().cpu().numpy())
            f.append(out["forces"].detach().cpu().numpy())
        return {"energy": np.array(e), "energies": np.stack(ea), "forces": np.stack(f)}

    def mean(self, atoms) -> dict:
        """The committee-mean potential (what the plugin integrates): ``energy``, ``energies``
        (N,), ``forces`` (N, 3)."""
        out = self.evaluate(atoms)
        return {k: v.mean(0) for k, v in out.items()}

    def deviation(self, atoms) -> dict:
        """``max_devi_f``, ``min_devi_f``, ``avg_devi_f`` (eV/Å), ``devi_e`` (eV/atom) and the
        per-atom ``devi_f`` (N,) of one frame (module docstring)."""
        return deviation_from(self.evaluate(atoms))


def deviation_from(out: dict) -> dict:
    """The deviations from per-member ``energy`` (K,) and ``forces`` (K, N, 3)."""
    f = np.asarray(out["forces"], float)
    e = np.asarray(out["energy"], float)
    sigma = np.sqrt(((f - f.mean(0)) ** 2).sum(-1).mean(0))
    n = f.shape[1]
    return {"max_devi_f": float(sigma.max()), "min_devi_f": float(sigma.min()), "avg_devi_f": float(sigma.mean()),
            "devi_e": float(e.std()) / n, "devi_f": sigma}


def read_deviation(path: str | Path):
    """The plugin's deviation file as a DataFrame (columns :data:`DEVIATION_COLUMNS`)."""
    import pandas as pd

    data = np.loadtxt(path, comments="#", ndmin=2)
    df = pd.DataFrame(data, columns=list(DEVIATION_COLUMNS))
    df["step"] = df["step"].astype(np.int64)
    df["extrapolating"] = df["extrapolating"].astype(np.int64)     # -1: the export holds no range
    return df
