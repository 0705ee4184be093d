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

Architecture: ``hidden`` sizes for every element, or ``{element: sizes}`` (n2p2's
``element_nodes_short``); ``activation`` one name for the hidden layers with a linear output,
or one name per layer, the output layer's last (n2p2's ``global_activation_short`` letters:
see :data:`ACTIVATIONS` and ``meltpot.export.n2p2``).

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


class Gaussian(nn.Module):
    """exp(−x²/2) (n2p2's g)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * x * x)


class Cos(nn.Module):
    """cos x (n2p2's c)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cos(x)


class RevLogistic(nn.Module):
    """1 − 1/(1 + e^−x) (n2p2's S, "reverse logistic")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.sigmoid(x)


class NegExp(nn.Module):
    """e^−x (n2p2's e; note the minus sign)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-x)


class Harmonic(nn.Module):
    """x² (n2p2's h)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


#: activation name → module. ``linear`` is the identity (a meltpot output layer's default);
#: softplus is ln(1 + eˣ) (PyTorch's, = n2p2's p), shifted_softplus softplus − ln 2.
ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "shifted_softplus": ShiftedSoftplus, "silu": nn.SiLU,
               "logistic": nn.Sigmoid, "linear": nn.Identity, "relu": nn.ReLU, "gaussian": Gaussian, "cos": Cos,
               "revlogistic": RevLogistic, "negexp": NegExp, "harmonic": Harmonic}


def _check_activation(name) -> str:
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ConfigError(f"activation {name!r} unknown; allowed: {', '.join(ACTIVATIONS)}")
    return name


def layer_activations(activation, n_hidden: int) -> list[str]:
    """The activation of every layer after the input (hidden layers, then the output layer) for
    an ``activation`` spec: one name (all hidden layers; the output layer linear) or a list of
    ``n_hidden + 1`` names, one per layer, the output layer's last."""
    if isinstance(activation, str):
        return [_check_activation(activation)] * n_hidden + ["linear"]
    acts = [_check_activation(a) for a in activation]
    if len(acts) != n_hidden + 1:
        raise ConfigError(f"activation: {len(acts)} names for {n_hidden} hidden layers; a per-layer list names "
                          f"each hidden layer and the output layer ({n_hidden + 1})")
    return acts


def canonical_activation(activation, depths=None):
    """One name where a per-layer list is one activation on every hidden layer and a linear
    output (so such a list and the name are the same model and the same model file). ``depths``:
    the networks' numbers of hidden layers, which a list must fit (ConfigError otherwise)."""
    if isinstance(activation, str):
        return _check_activation(activation)
    acts = [_check_activation(a) for a in activation]
    for depth in sorted(set(depths or ())):
        layer_activations(acts, depth)
    if not acts:
        raise ConfigError("activation: an empty list (a per-layer list names every layer, the output layer too)")
    if len(acts) > 1 and acts[-1] == "linear" and len(set(acts[:-1])) == 1:
        return acts[0]
    return acts


def canonical_hidden(hidden, elements):
    """Hidden sizes as a tuple (the same for every element) or, where elements differ, a dict
    {element: tuple} in ``elements`` order (ConfigError for a dict that misses or adds one)."""
    if isinstance(hidden, dict):
        missing = [el for el in elements if el not in hidden]
        extra = [el for el in hidden if el not in elements]
        if missing or extra:
            raise ConfigError(f"hidden: per-element sizes must name exactly the elements {list(elements)} "
                              f"(missing {missing}, not in the model {extra})")
        per = {el: tuple(int(h) for h in hidden[el]) for el in elements}
        sizes = set(per.values())
        return next(iter(sizes)) if len(sizes) == 1 else per
    return tuple(int(h) for h in hidden)


class ElementNet(nn.Module):
    """Feed-forward network F → hidden… → 1 for one element; ``activation`` one name (hidden
    layers; the output linear) or one name per layer, the output layer's last."""

    __jit_unused_properties__ = ["input_layer"]   # Python-side helper, not part of the scripted model

    def __init__(self, n_in: int, hidden=(10, 10), activation="tanh"):
        super().__init__()
        sizes = [n_in, *hidden, 1]
        self.activations = layer_activations(activation, len(sizes) - 2)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.acts = nn.ModuleList(ACTIVATIONS[a]() for a in self.activations)

    @property
    def input_layer(self) -> nn.Linear:
        """The first layer: its weight columns are the per-feature groups of the group lasso."""
        return self.layers[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, act in zip(self.layers, self.acts):   # zip: TorchScript cannot index a ModuleList
            x = act(layer(x))
        return x.squeeze(-1)


class HDNNP(nn.Module):
    """Behler–Parrinello HDNNP for a :class:`FeatureSet` (see module docstring)."""

    def __init__(self, featureset: FeatureSet, hidden=(10, 10), activation="tanh"):
        super().__init__()
        self.featureset = featureset
        self.elements = featureset.elements
        #: a tuple (every element), or {element: tuple} where the elements' sizes differ
        self.hidden = canonical_hidden(hidden, self.elements)
        #: one name (hidden layers; the output linear) or one name per layer, the output's last
        self.activation = canonical_activation(activation, [len(self.element_hidden(el)) for el in self.elements])
        self.units = "metal"       # "metal" or "lj": set from the data when trained
        self.metadata: dict = {}
        self.descriptor = SymmetryFunctions(featureset)
        self.n_features = [featureset.n_features(e) for e in self.elements]
        f_max = max(self.n_features)
        self.nets = nn.ModuleList(ElementNet(f, self.element_hidden(el), self.activation)
                                  for el, f in zip(self.elements, self.n_features))
        self.register_buffer("feature_mean", torch.zeros(len(self.elements), f_max, dtype=torch.float64))
        self.register_buffer("feature_std", torch.ones(len(self.elements), f_max, dtype=torch.float64))
        self.register_buffer("reference_energy", torch.zeros(len(self.elements), dtype=torch.float64))
        self.double()

    @property
    def cutoff(self) -> float:
        return self.descriptor.cutoff

    def element_hidden(self, element: str) -> tuple:
        """Hidden-layer sizes of ``element``'s network."""
        return self.hidden[element] if isinstance(self.hidden, dict) else self.hidden

    def layer_activations(self) -> list[str]:
        """Activation of every layer after the input, the output layer's last (the elements'
        networks all have these when their depths agree; see :func:`layer_activations`)."""
        depth = {len(self.element_hidden(el)) for el in self.elements}
        if len(depth) != 1:
            raise ConfigError(f"the elements' networks have {sorted(depth)} hidden layers: no common list")
        return layer_activations(self.activation, depth.pop())

    def architecture_text(self) -> str:
        """Hidden sizes and activation as one line: ``10-10 tanh``; per element where the elements
        differ (``Al 10-10, Ni 15-10``); a per-layer activation as its names (``tanh tanh linear``)."""
        if isinstance(self.hidden, dict):
            sizes = ", ".join(f"{el} {'-'.join(map(str, h))}" for el, h in self.hidden.items())
        else:
            sizes = "-".join(map(str, self.hidden))
        act = self.activation if isinstance(self.activation, str) else " ".join(self.activation)
        return f"{sizes} {act}"

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
        hidden = ({el: list(h) for el, h in self.hidden.items()} if isinstance(self.hidden, dict)
                  else list(self.hidden))
        activation = self.activation if isinstance(self.activation, str) else list(self.activation)
        return {"elements": list(self.elements), "hidden": hidden, "activation": activation,
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
