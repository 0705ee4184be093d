"""A plain, deliberately naive loop implementation of the symmetry functions (tests only).

Written straight from the formulas (n2p2 conventions, see
``meltpot.descriptors.featureset``), with explicit Python loops over centre atoms,
their neighbours and unordered neighbour pairs; periodic images come from
``ase.neighborlist.neighbor_list`` (independent of meltpot's own neighbour search).
Slow: use on small cells only.

* radial (n2p2 type 2): ``Σ_j exp(−η (r_ij − r_s)²) f_c(r_ij)``
* angular_narrow (type 3): ``2^(1−ζ) Σ_{j<k} (1 + λ cos θ)^ζ
  exp(−η[(r_ij−r_s)² + (r_ik−r_s)² + (r_jk−r_s)²]) f_c(r_ij) f_c(r_ik) f_c(r_jk)``
* angular_wide (type 9): ``2^(1−ζ) Σ_{j<k} (1 + λ cos θ)^ζ
  exp(−η[(r_ij−r_s)² + (r_ik−r_s)²]) f_c(r_ij) f_c(r_ik)``

A radial function with ``neighbors == (e,)`` counts neighbours j of element e; an angular
function with ``neighbors == (a, b)`` counts unordered pairs {j, k} whose elements are
{a, b} as a multiset. For non-integer ζ the base is clamped at 0 (collinear triplets can
give 1 + λ cos θ = −1e-16).
"""

from __future__ import annotations

import math

import numpy as np
from ase.neighborlist import neighbor_list


def cutoff(r: float, rc: float, kind: str) -> float:
    if r >= rc:
        return 0.0
    x = r / rc
    if kind == "cosine":
        return 0.5 * (math.cos(math.pi * x) + 1.0)
    if kind == "polynomial":
        return ((15.0 - 6.0 * x) * x - 10.0) * x ** 3 + 1.0
    raise ValueError(kind)


def neighbours_of(atoms, rc: float):
    """For each atom: list of (neighbour index, vector r_ij) within rc (periodic images via ASE)."""
    i_list, j_list, d_list = neighbor_list("ijD", atoms, rc, self_interaction=False)
    out = [[] for _ in range(len(atoms))]
    for i, j, d in zip(i_list, j_list, d_list):
        out[int(i)].append((int(j), np.asarray(d, dtype=float)))
    return out


def one_atom(symbols, neighbours, centre: int, functions, kind: str) -> list[float]:
    """The values of ``functions`` (SymmetryFunction list) for atom ``centre``."""
    nbs = neighbours[centre]
    # geometry of each neighbour and of each unordered neighbour pair {j, k}, computed once
    radial = []                                   # (element of j, r_ij)
    for j, v in nbs:
        radial.append((symbols[j], math.sqrt(float(v @ v))))
    triplets = []                                 # (sorted elements, r_ij, r_ik, r_jk, cos θ_ijk)
    for a in range(len(nbs)):
        j, vj = nbs[a]
        for b in range(a + 1, len(nbs)):
            k, vk = nbs[b]
            rij = math.sqrt(float(vj @ vj))
            rik = math.sqrt(float(vk @ vk))
            vjk = vk - vj
            rjk = math.sqrt(float(vjk @ vjk))
            cos = float(vj @ vk) / (rij * rik)
            triplets.append((tuple(sorted((symbols[j], symbols[k]))), rij, rik, rjk, cos))
    values = []
    for f in functions:
        total = 0.0
        if f.type == "radial":
            for el, r in radial:
                if el == f.neighbors[0]:
                    total += math.exp(-f.eta * (r - f.rs) ** 2) * cutoff(r, f.rc, kind)
        else:
            if f.type not in ("angular_narrow", "angular_wide"):
                raise ValueError(f.type)
            want = tuple(sorted(f.neighbors))
            for els, rij, rik, rjk, cos in triplets:
                if els != want:
                    continue
                ang = max(0.0, 1.0 + f.lam * cos) ** f.zeta
                expo = (rij - f.rs) ** 2 + (rik - f.rs) ** 2
                fc = cutoff(rij, f.rc, kind) * cutoff(rik, f.rc, kind)
                if f.type == "angular_narrow":
                    expo += (rjk - f.rs) ** 2
                    fc *= cutoff(rjk, f.rc, kind)
                total += ang * math.exp(-f.eta * expo) * fc
            total *= 2.0 ** (1.0 - f.zeta)
        values.append(total)
    return values


def reference_features(atoms, featureset) -> np.ndarray:
    """(N, F_max) array laid out like ``SymmetryFunctions`` output: row i holds the
    features of atom i's element in its first F_e columns, zeros after."""
    symbols = atoms.get_chemical_symbols()
    f_max = max(len(v) for v in featureset.per_element.values())
    neighbours = neighbours_of(atoms, featureset.cutoff_radius)
    out = np.zeros((len(atoms), f_max))
    for i in range(len(atoms)):
        vals = one_atom(symbols, neighbours, i, featureset.per_element[symbols[i]], featureset.cutoff)
        out[i, : len(vals)] = vals
    return out
