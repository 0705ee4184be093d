"""TorchScript export: the file that the LAMMPS pair style ``meltpot`` runs.

:class:`LammpsPotential` wraps a trained :class:`~meltpot.model.hdnnp.HDNNP` (the very same
descriptor and network code, compiled with ``torch.jit.script``). It carries two routes:

* ``forward(species, center, neighbor, rij, n_local) -> (e_atom, dE_drij, n_outside)``: the whole
  potential in torch (descriptors and forces by autograd through them), the contract of a LAMMPS
  pair style with a full neighbour list, used by the Python side and as the reference of the
  plugin. ``species`` (n_all,) element index of every atom, local first, ghosts after;
  ``center`` / ``neighbor`` (n_pairs,) pair indices with ``center < n_local``; ``rij``
  (n_pairs, 3) = x_j − x_i (Å or σ); ``e_atom`` (n_local,) atomic energies (eV or ε);
  ``dE_drij`` (n_pairs, 3), from which the pair style adds f_i += dE/dr_ij, f_j −= dE/dr_ij
  (forces on ghosts are reverse-communicated) and the virial −Σ r_ij ⊗ dE/dr_ij; ``n_outside``
  (n_local,) how many of the atom's features lie outside the training range [min, max] of the
  descriptor cache's training split, widened by 1e-8 of the range against round-off (n2p2's
  extrapolation warnings; zero everywhere when no range was given).
* ``energies_and_gradients(G, species) -> (e_atom, dE_dG)``: the networks only (feature scaling
  and reference energies included) on features G (n, F_max) laid out as
  :class:`~meltpot.descriptors.symmetry.SymmetryFunctions` gives them. The LAMMPS plugin (format
  version 3) computes G and dG/dr_ij with the compiled kernel
  (``meltpot/descriptors/acsf_kernel.cpp``, built into the plugin) from the function table below
  and contracts dE/dG with dG itself.

Metadata the plugin reads as attributes: ``elements`` (list of symbols, the networks' order),
``cutoff`` (float), ``units`` ("metal" or "lj"), ``format_version``, ``has_range`` and the
buffers ``feature_min`` / ``feature_max`` (n_elements, F_max). The kernel's function table
(the argument layout of ``meltpot_acsf_f64``, as :class:`~meltpot.descriptors.kernel.
KernelSymmetryFunctions` builds it): ``sf_par`` (n_fn, 8) float64 eta, rs, rc, zeta, lambda, rl,
angle_left, angle_right (radians); ``sf_int`` (n_fn, 5) int32 kind (0 radial, 1 narrow, 2 wide,
else the n2p2 type 12, 13, 20–25), e1, e2, column in the union, compact core (1–4 poly1–4, 5
exp; +8 asymmetric); ``sf_need`` (n_elements, n_union) uint8; ``sf_columns`` (n_elements, F_max)
int64, the union column of each element's feature (−1: none); ``sf_weights`` (n_elements,)
float64 atomic numbers (weighted types); ``sf_cutoff_kind`` (n2p2's cutoff type 0–8),
``sf_cutoff_alpha`` and ``sf_n_union``. A model shrunk by feature selection carries only its kept functions, so both
routes compute only those.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import MeltpotError
from ..model.hdnnp import HDNNP

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
"""3: the function table of 8 + 5 columns (weighted and compact types), any n2p2 cutoff type with
``sf_cutoff_alpha``, ``sf_weights``; 2: the kernel's function table of 5 + 4 columns and
``energies_and_gradients`` (the plugin's route); 1: the torch route only. The plugin reads only
its own version (re-export older files)."""


class ExportError(MeltpotError):
    """A model that cannot be exported, or an export that does not reproduce the model."""


def kernel_table(sf) -> dict:
    """The compiled kernel's function table of a :class:`SymmetryFunctions` (see the module
    docstring and :func:`~meltpot.descriptors.kernel.function_table`), built without loading the
    kernel library."""
    from ..descriptors.kernel import function_table

    return function_table(sf)


class LammpsPotential(nn.Module):
    """What the LAMMPS plugin runs (see module docstring). float64 throughout."""

    def __init__(self, model: HDNNP, feature_min: dict | None = None, feature_max: dict | None = None):
        super().__init__()
        if model.descriptor.has_noise:
            raise ExportError("the model's feature set holds noise pseudo-features (a selection diagnostic); "
                              "export the model retrained on real features only")
        self.model = copy.deepcopy(model).double().eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.elements: List[str] = list(model.elements)
        self.cutoff: float = float(model.cutoff)
        self.units: str = str(getattr(model, "units", "metal"))
        self.format_version: int = FORMAT_VERSION
        self.featureset_json: str = json.dumps(model.featureset.to_dict())
        n_el, f_max = len(self.elements), max(model.n_features)
        lo = torch.full((n_el, f_max), -float("inf"), dtype=torch.float64)
        hi = torch.full((n_el, f_max), float("inf"), dtype=torch.float64)
        self.has_range: bool = feature_min is not None and feature_max is not None
        if self.has_range:
            for k, el in enumerate(self.elements):
                f = model.n_features[k]
                for name, src, dst in (("min", feature_min, lo), ("max", feature_max, hi)):
                    if el not in src:
                        raise ExportError(f"training range: no feature {name} for element {el}")
                    v = torch.as_tensor(np.asarray(src[el], dtype=float)).reshape(-1)
                    if v.numel() != f:
                        raise ExportError(f"training range of {el} has {v.numel()} features, the model {f}")
                    dst[k, :f] = v
            # a margin of 1e-8 of each feature's range: the atoms that set min/max must not flag
            # themselves after a rotation of the cell (LAMMPS's frame) changes the last bits
            margin = 1e-8 * (hi - lo).nan_to_num(posinf=0.0) + 1e-12
            lo, hi = lo - margin, hi + margin
        self.register_buffer("feature_min", lo)
        self.register_buffer("feature_max", hi)
        table = kernel_table(self.model.descriptor)
        self.register_buffer("sf_par", table["par"])
        self.register_buffer("sf_int", table["int"])
        self.register_buffer("sf_need", table["need"])
        self.register_buffer("sf_columns", table["columns"])
        self.register_buffer("sf_weights", table["weights"])
        self.sf_cutoff_kind: int = table["cutoff_kind"]
        self.sf_cutoff_alpha: float = table["cutoff_alpha"]
        self.sf_n_union: int = table["n_union"]
        self.n_features: List[int] = [int(f) for f in model.n_features]

    def forward(self, species: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor, rij: torch.Tensor,
                n_local: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rij = rij.detach().requires_grad_(True)
        G = self.model.descriptor(species, center, neighbor, rij, n_local)
        local = species[:n_local]
        e_atom = self.model.atomic_energies(G, local)
        g: Optional[torch.Tensor] = None
        if e_atom.requires_grad:              # not so without pairs (G then does not depend on rij)
            g = torch.autograd.grad([e_atom.sum()], [rij], allow_unused=True)[0]
        if g is None:                         # no pairs inside the cutoff, or no local atoms
            g = torch.zeros_like(rij)
        Gd = G.detach()
        outside = (Gd < self.feature_min[local]) | (Gd > self.feature_max[local])
        return e_atom.detach(), g, outside.sum(1)

    @torch.jit.export
    def energies_and_gradients(self, G: torch.Tensor, species: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-atom energies (n,) and dE_i/dG_i (n, F_max) from features G (n, F_max) of atoms of
        element ``species`` (n,): the networks with their scaling, as the plugin calls them."""
        G = G.detach().to(torch.float64).requires_grad_(True)
        e_atom = self.model.atomic_energies(G, species)
        d: Optional[torch.Tensor] = None
        if e_atom.requires_grad:              # not so for n = 0
            d = torch.autograd.grad([e_atom.sum()], [G], allow_unused=True)[0]
        if d is None:
            d = torch.zeros_like(G)
        return e_atom.detach(), d


class CommitteePotential(LammpsPotential):
    """A committee of K ≥ 2 HDNNPs on one feature set (same elements, functions, cutoff and
    units; weights, scaling, reference energies and hidden sizes free), as one export that the
    pair style ``meltpot`` runs (see :func:`committee_members` for what must agree).

    The metadata, the function table and the training range are those of a single export (the
    first member's feature set, which all share), plus ``committee_size`` (int K). Routes:

    * ``committee_energies_and_gradients(G, species) -> (e_atom (K, n), dE_dG (K, n, F_max))``:
      every member's per-atom energies (eV or ε) and dE_i/dG_i, one backward pass (each member
      on its own copy of G). The plugin's route for a committee.
    * ``energies_and_gradients(G, species)``: the committee mean of both, (n,) and (n, F_max):
      the mean potential, so any consumer of a single-model export runs the mean.
    * ``forward``: as :class:`LammpsPotential`, with the committee-mean energies and
      dE/dr_ij (the mean forces).
    """

    def __init__(self, models: List[HDNNP], feature_min: dict | None = None, feature_max: dict | None = None):
        committee_members(models)
        super().__init__(models[0], feature_min, feature_max)
        members = []
        for m in models:
            if m.descriptor.has_noise:
                raise ExportError("a committee member's feature set holds noise pseudo-features")
            c = copy.deepcopy(m).double().eval()
            for p in c.parameters():
                p.requires_grad_(False)
            members.append(c)
        self.members = nn.ModuleList(members)
        self.committee_size: int = len(members)

    def forward(self, species: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor, rij: torch.Tensor,
                n_local: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rij = rij.detach().requires_grad_(True)
        G = self.model.descriptor(species, center, neighbor, rij, n_local)
        local = species[:n_local]
        e_atom = torch.zeros(G.shape[0], dtype=G.dtype, device=G.device)
        for m in self.members:
            e_atom = e_atom + m.atomic_energies(G, local)
        e_atom = e_atom / float(self.committee_size)
        g: Optional[torch.Tensor] = None
        if e_atom.requires_grad:
            g = torch.autograd.grad([e_atom.sum()], [rij], allow_unused=True)[0]
        if g is None:
            g = torch.zeros_like(rij)
        Gd = G.detach()
        outside = (Gd < self.feature_min[local]) | (Gd > self.feature_max[local])
        return e_atom.detach(), g, outside.sum(1)

    @torch.jit.export
    def committee_energies_and_gradients(self, G: torch.Tensor,
                                         species: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-member per-atom energies (K, n) and dE_i/dG_i (K, n, F_max) from features G
        (n, F_max) of atoms of element ``species`` (n,)."""
        G = G.detach().to(torch.float64)
        Gs: List[torch.Tensor] = []
        es: List[torch.Tensor] = []
        for m in self.members:
            Gk = G.clone().requires_grad_(True)
            Gs.append(Gk)
            es.append(m.atomic_energies(Gk, species))
        e = torch.stack(es)
        grads: List[Optional[torch.Tensor]] = [None for _ in Gs]
        if e.requires_grad:                   # not so for n = 0
            grads = torch.autograd.grad([e.sum()], Gs, allow_unused=True)
        ds: List[torch.Tensor] = []
        for k in range(len(Gs)):
            d = grads[k]
            ds.append(torch.zeros_like(G) if d is None else d)
        return e.detach(), torch.stack(ds)

    @torch.jit.export
    def energies_and_gradients(self, G: torch.Tensor, species: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The committee mean of :meth:`committee_energies_and_gradients`: (n,), (n, F_max)."""
        e, d = self.committee_energies_and_gradients(G, species)
        return e.mean(0), d.mean(0)


def committee_members(models) -> List[HDNNP]:
    """Check that ``models`` can form a committee (ExportError naming the first difference):
    at least two, the same elements in the same order, the same feature set (every element's
    functions and the cutoff function, by definition) and the same units."""
    models = list(models)
    if len(models) < 2:
        raise ExportError(f"a committee needs at least 2 models, got {len(models)}")
    ref = models[0]
    for k, m in enumerate(models[1:], start=2):
        if list(m.elements) != list(ref.elements):
            raise ExportError(f"committee member {k} has elements {list(m.elements)}, member 1 {list(ref.elements)}: "
                              "a committee shares one feature set")
        if m.featureset.content_hash() != ref.featureset.content_hash():
            diff = [el for el in ref.elements if m.featureset.per_element[el] != ref.featureset.per_element[el]]
            what = (f"the functions of {', '.join(diff)} differ" if diff else "the cutoff function differs")
            raise ExportError(f"committee member {k} has a different feature set than member 1 ({what}): "
                              "a committee shares one feature set (train the members on the same descriptor cache)")
        if getattr(m, "units", "metal") != getattr(ref, "units", "metal"):
            raise ExportError(f"committee member {k} is in {m.units} units, member 1 in {ref.units}")
    return models


def script_potential(model: HDNNP, feature_min: dict | None = None, feature_max: dict | None = None):
    """``torch.jit.script`` of :class:`LammpsPotential` (raises ExportError with the compiler's reason)."""
    try:
        return torch.jit.script(LammpsPotential(model, feature_min, feature_max))
    except RuntimeError as exc:  # pragma: no cover - a code change that breaks scripting
        raise ExportError(f"the model does not compile with TorchScript: {exc}") from exc


def _probe_structure(model: HDNNP, seed: int = 0):
    """A small random triclinic periodic cell (every element present) as tensors + pair list."""
    from ..descriptors.neighbors import neighbor_pairs, pair_vectors

    rng = np.random.default_rng(seed)
    rc = model.cutoff
    n = 4 * len(model.elements) + 4
    cell = torch.as_tensor(np.eye(3) * 1.1 * rc + rng.uniform(-0.1, 0.1, (3, 3)) * rc)
    pos = torch.as_tensor(rng.uniform(0, 1, (n, 3))) @ cell
    species = torch.arange(n) % len(model.elements)
    center, neighbor, shifts = neighbor_pairs(pos, cell, [True] * 3, rc)
    return species, center, neighbor, pair_vectors(pos, cell, center, neighbor, shifts)


def check_export(scripted, model: HDNNP, rtol: float = 5e-9) -> float:
    """Compare the scripted potential with the Python model on a random periodic cell; returns the
    largest relative difference of atomic energies and pair gradients (``forward``), and of the
    networks' energies and dE/dG (``energies_and_gradients``) (ExportError above ``rtol``).

    Typically ~1e-16; once TorchScript's profiling executor has optimised the (shared) graph of
    an earlier module of the same class in this process, its symbolic autodiff reorders floating
    point operations and ~1e-9 is seen. A float32-rounded constant showed as 2e-8 (caught)."""
    species, center, neighbor, rij = _probe_structure(model)
    rij = rij.detach().requires_grad_(True)
    n = int(species.numel())
    e_ref = model.double()(species, center, neighbor, rij, n)
    g_ref, = torch.autograd.grad(e_ref.sum(), rij)
    e, g, _ = scripted(species, center, neighbor, rij.detach(), n)
    e_ref = e_ref.detach()
    # the plugin's route: the networks alone on features, dE/dG
    G = model.descriptor(species, center, neighbor, rij.detach(), n).detach().requires_grad_(True)
    e_net_ref = model.atomic_energies(G, species)
    d_ref, = torch.autograd.grad(e_net_ref.sum(), G)
    e_net, d_net = scripted.energies_and_gradients(G.detach(), species)

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))

    diff = max(rel(e, e_ref), rel(g, g_ref), rel(e_net, e_net_ref.detach()), rel(d_net, d_ref))
    if not diff <= rtol:
        raise ExportError(f"the TorchScript export differs from the model by {diff:.3g} (relative) on a test cell")
    return diff


def write_torchscript(model: HDNNP, path: str | Path, feature_min: dict | None = None,
                      feature_max: dict | None = None) -> Path:
    """Script, check against the Python model, and save atomically to ``path`` (a ``.pt`` file
    that ``torch.jit.load`` and the LAMMPS plugin read)."""
    path = Path(path)
    scripted = script_potential(model, feature_min, feature_max)
    diff = check_export(scripted, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    scripted.save(str(tmp))
    tmp.replace(path)
    log.info("TorchScript potential %s: elements %s, cutoff %.4g, %s; export check %.2g (relative)",
             path, "/".join(model.elements), model.cutoff,
             "extrapolation range from the training split" if feature_min is not None else "no extrapolation range",
             diff)
    return path


def check_committee_export(scripted, models: List[HDNNP], rtol: float = 5e-9) -> float:
    """:func:`check_export` for a committee: on the random probe cell, each member's energies and
    dE/dG (``committee_energies_and_gradients``) against that Python model, the mean route
    (``energies_and_gradients``) and ``forward`` against the members' mean; returns the largest
    relative difference (ExportError above ``rtol``)."""
    ref = models[0]
    species, center, neighbor, rij = _probe_structure(ref)
    n = int(species.numel())
    G = ref.descriptor(species, center, neighbor, rij.detach(), n).detach()
    e_ref, d_ref = [], []
    for m in models:
        Gk = G.clone().requires_grad_(True)
        e = m.atomic_energies(Gk, species)
        d, = torch.autograd.grad(e.sum(), Gk)
        e_ref.append(e.detach())
        d_ref.append(d)
    e_ref, d_ref = torch.stack(e_ref), torch.stack(d_ref)
    e, d = scripted.committee_energies_and_gradients(G, species)
    e_mean, d_mean = scripted.energies_and_gradients(G, species)
    rij = rij.detach().requires_grad_(True)
    e_pairs = sum(m.double()(species, center, neighbor, rij, n) for m in models) / len(models)
    g_ref, = torch.autograd.grad(e_pairs.sum(), rij)
    e_f, g_f, _ = scripted(species, center, neighbor, rij.detach(), n)

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))

    diff = max(rel(e, e_ref), rel(d, d_ref), rel(e_mean, e_ref.mean(0)), rel(d_mean, d_ref.mean(0)),
               rel(e_f, e_pairs.detach()), rel(g_f, g_ref))
    if not diff <= rtol:
        raise ExportError(f"the committee export differs from its models by {diff:.3g} (relative) on a test cell")
    return diff


def write_committee(models: List[HDNNP], path: str | Path, feature_min: dict | None = None,
                    feature_max: dict | None = None) -> Path:
    """A committee of K ≥ 2 models (:class:`CommitteePotential`) scripted, checked against the
    Python models and saved atomically to ``path``; ExportError when the models do not share a
    feature set (:func:`committee_members`)."""
    path = Path(path)
    models = committee_members(models)
    try:
        scripted = torch.jit.script(CommitteePotential(models, feature_min, feature_max))
    except RuntimeError as exc:  # pragma: no cover - a code change that breaks scripting
        raise ExportError(f"the committee does not compile with TorchScript: {exc}") from exc
    diff = check_committee_export(scripted, models)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    scripted.save(str(tmp))
    tmp.replace(path)
    log.info("TorchScript committee %s: %d models, elements %s, cutoff %.4g; export check %.2g (relative)",
             path, len(models), "/".join(models[0].elements), models[0].cutoff, diff)
    return path


def load_torchscript(path: str | Path, device: str = "cpu"):
    """Load an exported potential (ExportError naming the file when it is not one)."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"TorchScript potential {path} does not exist")
    try:
        mod = torch.jit.load(str(path), map_location=device)
    except RuntimeError as exc:
        raise ExportError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0]})") from exc
    if not hasattr(mod, "format_version"):
        raise ExportError(f"{path}: a TorchScript file, but not a meltpot potential (no format_version)")
    return mod
