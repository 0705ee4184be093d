"""The HDNNP: E = Σ_i [E_ref(Z_i) + NN_{Z_i}((G_i − μ_{Z_i}) / σ_{Z_i})].

One feed-forward network per element on standardised symmetry functions (μ, σ: per-feature
mean and standard deviation over the training split, from the descriptor cache; they travel
with the model as buffers). ``E_ref`` are per-element reference energies (a least-squares fit
of the training energies on composition), so the networks learn a residual of order meV.

Two evaluation routes give identical numbers:

* :meth:`HDNNP.atomic_energies` on features (from the cache: fast energy-only training);
* :meth:`HDNNP.forward` on a pair list (species, centre/neighbour indices, pair vectors,
  number of local atoms) → per-atom energies, with forces and virial by autograd. This is
  the contract of a LAMMPS pair style (ghost atoms allowed), and of :mod:`.batch`.

Units are those of the data: eV and Å (metal) or ε and σ (lj).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..descriptors.featureset import FeatureSet
from ..descriptors.symmetry import SymmetryFunctions
from ..errors import ConfigError


class ShiftedSoftplus(nn.Module):
    """softplus(x) − ln 2 (zero at zero; SchNet's activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "shifted_softplus": ShiftedSoftplus, "silu": nn.SiLU,
               "logistic": nn.Sigmoid}


class ElementNet(nn.Module):
    """Feed-forward network F → hidden… → 1 for one element."""

    __jit_unused_properties__ = ["input_layer"]   # Python-side helper, not part of the scripted model

    def __init__(self, n_in: int, hidden=(10, 10), activation: str = "tanh"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation {activation!r} unknown; allowed: {', '.join(ACTIVATIONS)}")
        sizes = [n_in, *hidden, 1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = ACTIVATIONS[activation]()

    @property
    def input_layer(self) -> nn.Linear:
        """The first layer: its weight columns are the per-feature groups of the group lasso."""
        return self.layers[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):   # enumerate: TorchScript cannot slice a ModuleList
            x = layer(x)
            if i < last:
                x = self.act(x)
        return x.squeeze(-1)


class HDNNP(nn.Module):
    """Behler–Parrinello HDNNP for a :class:`FeatureSet` (see module docstring)."""

    def __init__(self, featureset: FeatureSet, hidden=(10, 10), activation: str = "tanh"):
        super().__init__()
        self.featureset = featureset
        self.elements = featureset.elements
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.units = "metal"       # "metal" or "lj": set from the data when trained
        self.metadata: dict = {}
        self.descriptor = SymmetryFunctions(featureset)
        self.n_features = [featureset.n_features(e) for e in self.elements]
        f_max = max(self.n_features)
        self.nets = nn.ModuleList(ElementNet(f, self.hidden, activation) for f in self.n_features)
        self.register_buffer("feature_mean", torch.zeros(len(self.elements), f_max, dtype=torch.float64))
        self.register_buffer("feature_std", torch.ones(len(self.elements), f_max, dtype=torch.float64))
        self.register_buffer("reference_energy", torch.zeros(len(self.elements), dtype=torch.float64))
        self.double()

    @property
    def cutoff(self) -> float:
        return self.descriptor.cutoff

    # ------------------------------------------------------------------ scaling and references
    def set_scaling(self, mean: dict, std: dict, min_std: float = 1e-8) -> None:
        """Per-element feature mean and standard deviation (σ below ``min_std`` → 1: a
        constant feature is centred, not blown up)."""
        for k, el in enumerate(self.elements):
            f = self.n_features[k]
            m = torch.as_tensor(mean[el], dtype=torch.float64).reshape(-1)
            s = torch.as_tensor(std[el], dtype=torch.float64).reshape(-1)
            if m.numel() != f or s.numel() != f:
                raise ValueError(f"scaling for {el} has {m.numel()} features, the model {f}")
            self.feature_mean[k, :f] = m
            self.feature_std[k, :f] = torch.where(s > min_std, s, torch.ones_like(s))

    def set_reference_energies(self, energies: dict) -> None:
        for k, el in enumerate(self.elements):
            self.reference_energy[k] = float(energies.get(el, 0.0))

    # ------------------------------------------------------------------ evaluation
    def scale(self, k: int, G: torch.Tensor) -> torch.Tensor:
        """Standardised features of element ``k`` (G: rows of that element, F_k columns)."""
        f = self.n_features[k]
        return (G[:, :f] - self.feature_mean[k, :f].to(G.dtype)) / self.feature_std[k, :f].to(G.dtype)

    def element_energies(self, k: int, G: torch.Tensor) -> torch.Tensor:
        """Atomic energies of atoms of element ``k`` from their (unscaled) features."""
        return self.nets[k](self.scale(k, G)) + self.reference_energy[k].to(G.dtype)

    def atomic_energies(self, G: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (n,) from features G (n, F_max) and element indices (n,)."""
        out = torch.zeros(G.shape[0], dtype=G.dtype, device=G.device)
        for k, net in enumerate(self.nets):   # enumerate: TorchScript cannot index a ModuleList
            rows = torch.nonzero(species == k).squeeze(-1)
            if rows.numel() > 0:
                e = net(self.scale(k, G[rows])) + self.reference_energy[k].to(G.dtype)
                out = out.index_put([rows], e)
        return out

    def forward(self, species: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor, rij: torch.Tensor,
                n_local: int) -> torch.Tensor:
        """Per-atom energies of the ``n_local`` local atoms from a pair list (LAMMPS contract;
        compiles with ``torch.jit.script``: see :mod:`meltpot.export.torchscript`)."""
        G = self.descriptor(species, center, neighbor, rij, n_local)
        return self.atomic_energies(G, species[:n_local])

    # ------------------------------------------------------------------ structure
    def describe(self) -> dict:
        """Architecture as plain data (stored in model files)."""
        return {"elements": list(self.elements), "hidden": list(self.hidden), "activation": self.activation,
                "n_features": dict(zip(self.elements, self.n_features)),
                "n_parameters": sum(p.numel() for p in self.parameters())}


def fit_reference_energies(energies, counts, elements) -> dict:
    """Least-squares per-element energies: E_frame ≈ Σ_el n_el(frame) E_el.

    ``counts`` (n_frames, n_elements) atom counts; with one element this is the mean
    energy per atom. Elements whose counts are collinear get the minimum-norm solution.
    """
    import numpy as np

    A = np.asarray(counts, dtype=float)
    e = np.asarray(energies, dtype=float)
    sol, *_ = np.linalg.lstsq(A, e, rcond=None)
    return {el: float(v) for el, v in zip(elements, sol)}
