"""ASE calculator for a meltpot HDNNP: energy, free_energy, energies, forces, stress."""

from __future__ import annotations

import torch
from ase.calculators.calculator import Calculator, all_changes

from .batch import frame_graph, predict, voigt


class MeltpotCalculator(Calculator):
    """``atoms.calc = MeltpotCalculator(model)`` (a :class:`~meltpot.model.HDNNP`, or a model
    file path)."""

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device: str = "cpu", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, torch.nn.Module):
            from .modelfile import load_model

            model = load_model(model)
        self.model = model.to(device).eval()
        self.device = device

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        g = frame_graph(self.atoms, self.model.elements, self.model.cutoff, device=self.device)
        out = predict(self.model, [g], forces=True, stress=bool(self.atoms.cell.rank == 3 and self.atoms.pbc.all()))
        e = float(out["energy"][0].detach())
        self.results = {"energy": e, "free_energy": e,
                        "energies": out["atomic_energies"].detach().cpu().numpy(),
                        "forces": out["forces"].detach().cpu().numpy()}
        if "stress" in out:
            self.results["stress"] = voigt(out["stress"][0])
