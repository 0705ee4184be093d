"""Static structure: pair correlations g(r), coordination, structure factors S(q).

Conventions (thesis §2, §4.2, §4.5; Faber–Ziman partials):

* ``g_ab(r)`` = ⟨n_ab(r)⟩ / (N_a ρ'_b 4πr²Δr) with the pair density ρ'_b = (N_b − δ_ab)/V: an
  a atom has N_b − δ_ab partners of species b (itself excluded), the convention of LAMMPS's
  ``compute rdf`` (normfac = N_b − δ_ab); averaged over frames. The total g(r) counts all
  ordered pairs over N (N − 1)/V: ``g(r) = Σ_ab c_a (N_b − δ_ab)/(N − 1) g_ab(r)``
  (= Σ c_a c_b g_ab for N → ∞), c_a = N_a/N. So an ideal gas of any size gives g = 1 and
  ``ρ'_b ∫ g_ab 4πr² dr`` counts the partners exactly. (OVITO's CoordinationAnalysisModifier
  divides by N_b/V instead; the ``"ovito"`` engine rescales its output by N_b/(N_b − δ_ab).)
  Distances in Å, ρ in Å⁻³; :attr:`RDF.density` is the number density N/V.
* Faber–Ziman partial structure factors ``S_ab(q) = 1 + 4π (ρ'_b/c_b) ∫ r² (g_ab(r) − 1)
  sin(qr)/(qr) dr``, i.e. with ρ (N_b − δ_ab)/N_b in place of ρ (for one species (N − 1)/V),
  the density g_ab is normalised with (→ 1 at large q for every pair; for a finite periodic
  system this is the exact transform of the pair counts), total ``S(q) = Σ c_a c_b S_ab(q)``;
  q in Å⁻¹. The
  k-vector route computes ``S^N_ab(q) = ⟨ρ_a(q) ρ_b(−q)⟩/N`` (thesis eq. 2.11/4.5, 1/N
  normalisation) and converts: ``S_ab = 1 + (S^N_ab − c_a δ_ab)/(c_a c_b)``.
* Weighted totals: ``S_w(q) = Σ_ab c_a c_b w_a w_b S_ab / (Σ_a c_a w_a)²`` with neutron
  scattering lengths (constants) or X-ray form factors (functions of q).
* Bhatia–Thornton (binary, thesis eqs. 2.12–2.14 rewritten with FZ partials):
  ``S_NN = 1 + Σ c_a c_b (S_ab − 1)``, ``S_NC = c1 c2 [c1 (S11 − S12) − c2 (S22 − S12)]``,
  ``S_CC = c1 c2 [1 + c1 c2 (S11 + S22 − 2 S12)]``; ideal random mixture: S_NN = 1,
  S_CC = c1 c2. ``S_CC(q→0)`` by an even polynomial fitted over a low-q window (§4.5).

Two engines count pairs for g(r): ``"ovito"`` (default; OVITO's
``CoordinationAnalysisModifier(partial=True)``, the RDF our design verified, multithreaded
C++) and ``"kdtree"`` (our own numpy + scipy cKDTree counting over explicit periodic images,
any triclinic cell and any r_max, no OVITO needed). Both agree to round-off
(tests/test_analysis_structure.py); the second exists so the normalisation is checked by
an independent implementation and for environments without a working OVITO.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import FrameError
from .trajectory import species_labels

__all__ = [
    "RDF", "SQ", "BhatiaThornton", "Q0Fit",
    "compute_rdf", "first_minimum", "running_coordination", "coordination_numbers",
    "sq_from_rdf", "sq_kvectors", "weighted_sq", "neutron_sq", "xray_sq",
    "bhatia_thornton", "extrapolate_q0", "extrapolation_scan",
    "write_rdf", "write_sq", "NEUTRON_B",
]

#: Coherent neutron scattering lengths b (fm) of the natural elements we simulate
#: (Sears, Neutron News 3 (1992) 26, as tabulated by NIST).
NEUTRON_B = {"Al": 3.449, "Ni": 10.3, "Cu": 7.718, "Fe": 9.45, "Zr": 7.16, "Si": 4.1491}


# ----------------------------------------------------------------------------- results
@dataclass
class RDF:
    """Frame-averaged pair correlations.

    ``r``: bin centres (Å); ``edges``: bin edges (Å); ``partials[(a, b)]``: g_ab(r) for
    both orders of every species pair, normalised with (N_b − δ_ab)/V; ``total``: all pairs over
    (N − 1)/V (see the module docstring); ``density``: N/V (Å⁻³) averaged over frames;
    ``concentrations``: c_a in ``species`` order.
    """

    r: np.ndarray
    edges: np.ndarray
    partials: dict
    total: np.ndarray
    species: tuple
    concentrations: np.ndarray
    density: float
    n_frames: int
    n_atoms: int

    def pairs(self) -> list[tuple[str, str]]:
        """Unordered species pairs (a ≤ b in species order)."""
        return list(itertools.combinations_with_replacement(self.species, 2))

    def conc(self, a: str) -> float:
        """Concentration (number fraction) of species ``a``."""
        return float(self.concentrations[self.species.index(a)])

    def pair_density(self, a: str | None = None, b: str | None = None) -> float:
        """ρ'_b = (N_b − δ_ab)/V (Å⁻³), the density g_ab is normalised with; without species
        (N − 1)/V, that of the total g(r)."""
        if a is None:
            return self.density * (self.n_atoms - 1) / self.n_atoms
        n_b = round(self.conc(b) * self.n_atoms)
        return self.density * (n_b - (a == b)) / self.n_atoms


@dataclass
class SQ:
    """Structure factors on a q grid (Å⁻¹): Faber–Ziman ``partials[(a, b)]`` (both orders)
    and the total ``Σ c_a c_b S_ab``. ``n_vectors``: k-vectors per q shell (k-vector route)."""

    q: np.ndarray
    partials: dict
    total: np.ndarray
    species: tuple
    concentrations: np.ndarray
    density: float
    method: str
    n_frames: int = 0
    n_vectors: np.ndarray | None = None

    def pairs(self) -> list[tuple[str, str]]:
        return list(itertools.combinations_with_replacement(self.species, 2))


@dataclass
class BhatiaThornton:
    """Bhatia–Thornton structure factors of a binary on ``q`` (Å⁻¹)."""

    q: np.ndarray
    nn: np.ndarray
    nc: np.ndarray
    cc: np.ndarray
    species: tuple
    concentrations: np.ndarray


@dataclass
class Q0Fit:
    """Even-polynomial fit ``a0 + a2 q² (+ a4 q⁴)`` over ``qmin ≤ q ≤ qmax`` (Å⁻¹).

    ``value`` = a0 = the q → 0 limit, ``stderr`` its standard error from the residuals,
    ``coefficients`` (a0, a2[, a4]), ``rms`` the fit residual, ``n_points`` used.
    """

    value: float
    stderr: float
    coefficients: np.ndarray
    qmin: float
    qmax: float
    order: int
    n_points: int
    rms: float
    q: np.ndarray = field(repr=False, default=None)
    s: np.ndarray = field(repr=False, default=None)

    def __call__(self, q) -> np.ndarray:
        q2 = np.asarray(q, float) ** 2
        return sum(c * q2 ** k for k, c in enumerate(self.coefficients))


# ----------------------------------------------------------------------------- helpers
def _cell_widths(cell: np.ndarray) -> np.ndarray:
    """Perpendicular widths of a cell (Å): volume / area of the opposite face."""
    vol = abs(np.linalg.det(cell))
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return vol / areas



def default_rmax(path, start: int = 0, stop: int | None = None, step: int = 1, types=None) -> float:
    """Half the smallest perpendicular cell width (Å) of the first selected frame of a trajectory."""
    from ..errors import ConfigError  # noqa: PLC0415
    from .trajectory import iter_frames  # noqa: PLC0415

    first = next(iter_frames(path, start=start, stop=stop, step=step, types=types), None)
    if first is None:
        raise ConfigError(f"{path}: no frame in the selected range")
    return float(0.5 * _cell_widths(np.asarray(first.cell)).min())

def _species_order(atoms) -> tuple[tuple, np.ndarray]:
    """Species labels and the per-atom species index. Order: by smallest LAMMPS type when
    the frame has ``arrays["type"]``, else by atomic number (then label)."""
    labels = species_labels(atoms)
    uniq, inverse = np.unique(labels, return_inverse=True)
    if "type" in atoms.arrays:
        key = [(atoms.arrays["type"][labels == u].min(), 0, u) for u in uniq]
    else:
        key = [(0, atoms.numbers[labels == u][0], u) for u in uniq]
    order = sorted(range(len(uniq)), key=lambda k: key[k])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return tuple(str(uniq[k]) for k in order), rank[inverse.reshape(-1)]


def _shell_volumes(edges: np.ndarray) -> np.ndarray:
    return 4.0 / 3.0 * np.pi * np.diff(edges ** 3)


def _check_frame(atoms, n_first, species_first, species, spec=None, counts=None):
    """FrameError (file, frame) unless the frame matches the first one and is periodic."""
    src, idx = atoms.info.get("source", "<atoms>"), atoms.info.get("frame")
    if n_first is not None and len(atoms) != n_first:
        raise FrameError(src, idx, f"{len(atoms)} atoms, the first frame has {n_first}")
    if species_first is not None and species != species_first:
        raise FrameError(src, idx, f"species {species} differ from the first frame's "
                                   f"{species_first}")
    if counts is not None and np.any(np.bincount(spec, minlength=len(counts)) != counts):
        raise FrameError(src, idx, "the number of atoms per species differs from the first "
                                   "frame's")
    if not atoms.pbc.all() or atoms.cell.rank != 3:
        raise FrameError(src, idx, "structure analysis needs a periodic 3-D cell")


# ----------------------------------------------------------------------------- g(r) engines
def _pair_histogram_kdtree(pos, cell, spec, ns, rmax, nbins, max_pairs=4_000_000):
    """Ordered-pair distance histogram per species pair, shape (ns, ns, nbins).

    Periodic images are made explicit: every image whose fractional coordinates lie
    within r_max of the cell (measured along the cell's perpendicular widths) is added,
    and a cKDTree of chunks of the central atoms is queried against them (chunks keep
    about ``max_pairs`` pairs in memory).
    """
    from scipy.spatial import cKDTree  # noqa: PLC0415

    n = len(pos)
    inv = np.linalg.inv(cell)
    frac = pos @ inv
    frac -= np.floor(frac)
    widths = _cell_widths(cell)
    reach = rmax / widths
    m = np.ceil(reach).astype(int)
    shifts = np.array(list(itertools.product(*(range(-k, k + 1) for k in m))), float)
    ext = frac[None, :, :] + shifts[:, None, :]  # (S, N, 3)
    keep = np.all((ext >= -reach) & (ext <= 1.0 + reach), axis=2)
    s_idx, a_idx = np.nonzero(keep)
    ext_pos = ext[s_idx, a_idx] @ cell
    zero_shift = np.flatnonzero(np.all(shifts == 0, axis=1))[0]
    is_central = s_idx == zero_shift
    tree = cKDTree(ext_pos)
    pos_c = frac @ cell
    density = len(ext_pos) / (abs(np.linalg.det(cell)) * np.prod(1 + 2 * reach))
    per_atom = max(1.0, density * 4.0 / 3.0 * np.pi * rmax ** 3)
    chunk = int(max(1, min(n, max_pairs // per_atom)))
    dr = rmax / nbins
    hist = np.zeros(ns * ns * nbins, dtype=np.int64)
    for lo in range(0, n, chunk):
        sub = cKDTree(pos_c[lo:lo + chunk])
        res = sub.sparse_distance_matrix(tree, rmax, output_type="ndarray")
        i = res["i"].astype(np.int64) + lo
        j = res["j"].astype(np.int64)
        d = res["v"]
        ok = ~(is_central[j] & (a_idx[j] == i))
        b = (d[ok] / dr).astype(np.int64)
        inside = b < nbins
        code = (spec[i[ok]] * ns + spec[a_idx[j[ok]]]) * nbins + b
        hist += np.bincount(code[inside], minlength=ns * ns * nbins)
    return hist.reshape(ns, ns, nbins)


def _ovito_partials(pos, cell, spec, species, rmax, nbins):
    """g_ab (ns, ns, nbins) of one frame from OVITO's CoordinationAnalysisModifier.

    The DataCollection is built directly (cell, positions, one particle type per species
    label) rather than with ``ovito.io.ase.ase_to_ovito``: that derives types from chemical
    symbols, which frames with LAMMPS types only (placeholder ``X``) do not have, and we want
    the type order and names to match ``species``. OVITO normalises partials as
    n_ab / (N_a ρ_b 4πr²Δr) with ρ_b = N_b/V (measured with OVITO 3.17); :func:`compute_rdf`
    rescales them to ρ'_b = (N_b − δ_ab)/V.
    """
    from ovito.data import DataCollection, ParticleType  # noqa: PLC0415
    from ovito.modifiers import CoordinationAnalysisModifier  # noqa: PLC0415

    dc = DataCollection()
    matrix = np.zeros((3, 4))
    matrix[:, :3] = cell.T
    dc.create_cell(matrix, pbc=(True, True, True))
    parts = dc.create_particles(count=len(pos))
    parts.create_property("Position", data=pos)
    ptype = parts.create_property("Particle Type", data=spec + 1)
    for k, name in enumerate(species):
        ptype.types.append(ParticleType(id=k + 1, name=name))
    dc.apply(CoordinationAnalysisModifier(cutoff=rmax, number_of_bins=nbins,
                                          partial=len(species) > 1))
    table = dc.tables["coordination-rdf"]
    y = np.asarray(table.y)
    ns = len(species)
    out = np.zeros((ns, ns, nbins))
    if ns == 1:
        out[0, 0] = y.reshape(-1)
        return out
    for col, name in enumerate(table.y.component_names):
        a, b = name.split("-")
        ia, ib = species.index(a), species.index(b)
        out[ia, ib] = out[ib, ia] = y[:, col]
    return out


def compute_rdf(frames: Iterable, rmax: float = 10.0, bins: int = 200,
                engine: str = "ovito") -> RDF:
    """Partial and total g(r) averaged over ``frames`` (ase.Atoms, e.g. from iter_frames).

    ``rmax`` in Å (may exceed half the cell: all periodic images are counted), ``bins``
    histogram bins on [0, rmax]. ``engine``: ``"ovito"`` or ``"kdtree"`` (see module doc).
    Every frame must have the same atoms and species (FrameError otherwise).
    """
    if engine not in ("ovito", "kdtree"):
        raise ValueError(f"engine must be 'ovito' or 'kdtree', not {engine!r}")
    if rmax <= 0 or bins < 1:
        raise ValueError(f"need rmax > 0 and bins ≥ 1 (got {rmax}, {bins})")
    edges = np.linspace(0.0, rmax, bins + 1)
    shell = _shell_volumes(edges)
    acc = None
    n_frames, densities = 0, []
    species = n_first = counts = None
    for atoms in frames:
        spc, spec = _species_order(atoms)
        _check_frame(atoms, n_first, species, spc, spec, counts)
        if species is None:
            species, n_first = spc, len(atoms)
            counts = np.bincount(spec, minlength=len(species)).astype(float)
            acc = np.zeros((len(species), len(species), bins))
        cell = np.asarray(atoms.cell)
        vol = abs(np.linalg.det(cell))
        ns = len(species)
        partners = counts[None, :] - np.eye(ns)  # N_b − δ_ab
        if engine == "kdtree":
            hist = _pair_histogram_kdtree(atoms.positions, cell, spec, ns, rmax, bins)
            norm = counts[:, None, None] * (partners / vol)[:, :, None] * shell[None, None, :]
            g = np.divide(hist, norm, out=np.zeros(norm.shape), where=partners[:, :, None] > 0)
            g = 0.5 * (g + g.transpose(1, 0, 2))  # same counts both ways; exact symmetry
        else:  # OVITO divides by N_b/V
            g = _ovito_partials(atoms.positions, cell, spec, species, rmax, bins)
            g = g * np.divide(counts[None, :], partners, out=np.zeros((ns, ns)), where=partners > 0)[:, :, None]
        acc += g
        densities.append(n_first / vol)
        n_frames += 1
    if n_frames == 0:
        raise ValueError("compute_rdf: no frames")
    partial_arr = acc / n_frames
    conc = counts / counts.sum()
    # all ordered pairs over N (N − 1)/V: the partials' pair counts summed
    pair_weight = conc[:, None] * (counts[None, :] - np.eye(len(species))) / max(n_first - 1, 1)
    total = np.einsum("ab,abk->k", pair_weight, partial_arr)
    partials = {(a, b): partial_arr[i, j] for i, a in enumerate(species)
                for j, b in enumerate(species)}
    return RDF(r=0.5 * (edges[1:] + edges[:-1]), edges=edges, partials=partials, total=total,
               species=species, concentrations=conc, density=float(np.mean(densities)),
               n_frames=n_frames, n_atoms=int(n_first))


# ----------------------------------------------------------------------------- coordination
def first_minimum(r: np.ndarray, g: np.ndarray, smooth: float = 0.1) -> float:
    """Position (Å) of the first minimum after the first peak of g(r).

    g is smoothed with a Gaussian of width ``smooth`` (Å) first; the first peak is the first
    maximum above 1.2 with a prominence ≥ max(0.2, 5 % of the largest value) (noise of a
    structureless g(r) is not taken for a peak), the minimum the first
    local minimum after it with a prominence ≥ 2 % of that peak's height (flat minima give
    their centre). NaN when there is no such peak or minimum (e.g. an ideal gas).
    """
    from scipy.ndimage import gaussian_filter1d  # noqa: PLC0415
    from scipy.signal import find_peaks  # noqa: PLC0415

    r, g = np.asarray(r, float), np.asarray(g, float)
    dr = r[1] - r[0]
    gs = gaussian_filter1d(g, max(smooth / dr, 1e-9), mode="nearest") if smooth > 0 else g
    if not np.isfinite(gs).all() or gs.max() <= 1.2:
        return float("nan")
    peaks, _ = find_peaks(np.r_[gs, -np.inf], height=1.2,
                          prominence=max(0.2, 0.05 * gs.max()))
    if len(peaks) == 0:
        return float("nan")
    p = peaks[0]
    minima, _ = find_peaks(np.r_[-gs[p:], -np.inf], prominence=0.02 * gs[p])
    if len(minima) == 0:
        return float("nan")
    return float(r[p + minima[0]])


def running_coordination(rdf: RDF) -> dict:
    """Running coordination numbers at the bin edges (Å): ``n_ab(r) = ρ'_b ∫ 4πr'² g_ab dr'``
    for every ordered pair and ``"total"`` (= ρ' ∫ 4πr'² g dr', ρ' = (N − 1)/V), with the
    densities g is normalised with (:meth:`RDF.pair_density`): the mean number of partners
    within r, histogram-exact."""
    shell = _shell_volumes(rdf.edges)
    out = {}
    for (a, b), g in rdf.partials.items():
        out[(a, b)] = np.r_[0.0, np.cumsum(rdf.pair_density(a, b) * g * shell)]
    out["total"] = np.r_[0.0, np.cumsum(rdf.pair_density() * rdf.total * shell)]
    return out


def coordination_numbers(rdf: RDF, rmin: float | Mapping | None = None,
                         smooth: float = 0.1) -> dict:
    """Coordination numbers to the first minimum.

    Returns ``{(a, b): (cn, rmin), ..., "total": (cn, rmin)}``: cn_ab = number of b
    neighbours of an a atom within rmin (Å). ``rmin``: one radius for all, a mapping per
    pair/"total", or None to locate each curve's own first minimum (:func:`first_minimum`).
    """
    running = running_coordination(rdf)
    curves = dict(rdf.partials)
    curves["total"] = rdf.total
    out = {}
    for key, g in curves.items():
        if isinstance(rmin, Mapping):
            rm = rmin.get(key, rmin.get(key[::-1]) if isinstance(key, tuple) else None)
        else:
            rm = rmin
        if rm is None:
            rm = first_minimum(rdf.r, g, smooth)
        cn = float(np.interp(rm, rdf.edges, running[key])) if np.isfinite(rm) else float("nan")
        out[key] = (cn, float(rm))
    return out


# ----------------------------------------------------------------------------- S(q)
def _total(partials: Mapping, species, conc) -> np.ndarray:
    return sum(conc[i] * conc[j] * partials[(a, b)] for i, a in enumerate(species)
               for j, b in enumerate(species))


def sq_from_rdf(rdf: RDF, q: np.ndarray | None = None, lorch: bool = False) -> SQ:
    """Faber–Ziman S_ab(q) = 1 + 4π (ρ'_b/c_b) ∫₀^rmax r² (g_ab − 1) sin(qr)/(qr) dr by
    quadrature over the histogram bins (exact shell volumes), ρ'_b = (N_b − δ_ab)/V the density
    g_ab is normalised with (one species: 4π (N − 1)/V ∫ …; see the module docstring). ``q`` in
    Å⁻¹ (default 0.1…12 step 0.02); ``lorch``: multiply the integrand by sin(πr/rmax)/(πr/rmax),
    damping truncation ripples."""
    q = np.arange(0.1, 12.0 + 1e-9, 0.02) if q is None else np.asarray(q, float)
    weight = _shell_volumes(rdf.edges)
    if lorch:
        weight = weight * np.sinc(rdf.r / rdf.edges[-1])
    kernel = np.sinc(np.outer(q, rdf.r) / np.pi) * weight  # sin(qr)/(qr), (nq, nr)
    partials = {(a, b): 1.0 + (rdf.pair_density(a, b) / rdf.conc(b)) * (kernel @ (g - 1.0))
                for (a, b), g in rdf.partials.items()}
    total = _total(partials, rdf.species, rdf.concentrations)
    return SQ(q=q, partials=partials, total=total, species=rdf.species,
              concentrations=rdf.concentrations, density=rdf.density,
              method="ft-lorch" if lorch else "ft", n_frames=rdf.n_frames)


def _half_space_grid(cell: np.ndarray, qmax: float):
    """Reciprocal-lattice index ranges (hmax per axis) and the matrix of rows b_i (Å⁻¹)."""
    recip = 2.0 * np.pi * np.linalg.inv(cell).T  # q = h @ recip
    hmax = np.floor(qmax * np.linalg.norm(cell, axis=1) / (2.0 * np.pi)).astype(int)
    return hmax, recip


def _rho_k_grid(frac: np.ndarray, spec: np.ndarray, ns: int, cell: np.ndarray, qmax: float):
    """All k-vectors with 0 < |q| ≤ qmax (one of each ±q pair) and the species-resolved
    density modes ρ_a(q) = Σ_{j∈a} exp(2πi h·s_j).

    Per-axis phase tables T_d[j, h_d] = exp(2πi h_d s_jd) turn the sum into, for each h1,
    one complex matrix product (T_1[:, h1] T_2)ᵀ T_3 over the atoms: BLAS speed, cost
    ∝ N × (number of grid vectors). Returns h (K, 3) and ρ (ns, K).
    """
    hmax, recip = _half_space_grid(cell, qmax)
    r2 = np.arange(-hmax[1], hmax[1] + 1)
    r3 = np.arange(-hmax[2], hmax[2] + 1)
    g2, g3 = np.meshgrid(r2, r3, indexing="ij")
    t1 = np.exp(2j * np.pi * np.outer(frac[:, 0], np.arange(0, hmax[0] + 1)))
    t2 = np.exp(2j * np.pi * np.outer(frac[:, 1], r2))
    t3 = np.exp(2j * np.pi * np.outer(frac[:, 2], r3))
    masks = [spec == a for a in range(ns)]
    hs, rhos = [], []
    for h1 in range(hmax[0] + 1):
        qv = h1 * recip[0] + g2[..., None] * recip[1] + g3[..., None] * recip[2]
        sel = np.einsum("ijk,ijk->ij", qv, qv) <= qmax * qmax
        if h1 == 0:  # half space: first non-zero index positive (also drops q = 0)
            sel &= (g2 > 0) | ((g2 == 0) & (g3 > 0))
        if not sel.any():
            continue
        hs.append(np.column_stack([np.full(sel.sum(), h1), g2[sel], g3[sel]]))
        block = np.empty((ns, sel.sum()), complex)
        for a, m in enumerate(masks):
            block[a] = ((t1[m, h1][:, None] * t2[m]).T @ t3[m])[sel]
        rhos.append(block)
    if not hs:
        return np.zeros((0, 3), int), np.zeros((ns, 0), complex)
    return np.concatenate(hs), np.concatenate(rhos, axis=1)


def _rho_k_sampled(frac: np.ndarray, spec: np.ndarray, ns: int, cell: np.ndarray, qmax: float,
                   dq: float, max_per_shell: int, rng: np.random.Generator,
                   max_elems: int = 2_000_000):
    """As :func:`_rho_k_grid`, but shells of width dq holding more than ``max_per_shell``
    vectors are thinned at random to about that many (for cells too large for the full
    grid). Phases are products of per-axis tables gathered per vector, in chunks of at
    most ``max_elems`` complex entries."""
    hmax, recip = _half_space_grid(cell, qmax)
    nshell = int(np.ceil(qmax / dq)) + 1
    lo = np.arange(nshell) * dq
    expected = 4.0 / 3.0 * np.pi * ((lo + dq) ** 3 - lo ** 3) / (2.0 * abs(np.linalg.det(recip)))
    keep_p = np.minimum(1.0, max_per_shell / expected)
    g2, g3 = np.meshgrid(np.arange(-hmax[1], hmax[1] + 1), np.arange(-hmax[2], hmax[2] + 1),
                         indexing="ij")
    g2, g3 = g2.ravel(), g3.ravel()
    parts = []
    for h1 in range(hmax[0] + 1):
        h = np.column_stack([np.full(g2.shape, h1), g2, g3])
        if h1 == 0:
            h = h[(h[:, 1] > 0) | ((h[:, 1] == 0) & (h[:, 2] > 0))]
        qn = np.linalg.norm(h @ recip, axis=1)
        h, qn = h[qn <= qmax], qn[qn <= qmax]
        parts.append(h[rng.random(len(h)) < keep_p[(qn / dq).astype(int)]])
    h = np.concatenate(parts)
    n, k = len(frac), len(h)
    rho = np.zeros((ns, k), complex)
    hmin = -hmax
    hmin[0] = 0
    a_chunk = int(max(1, min(n, max_elems // int(2 * hmax.max() + 1))))
    k_chunk = int(max(1, max_elems // a_chunk))
    for alo in range(0, n, a_chunk):
        s = frac[alo:alo + a_chunk]
        onehot = np.zeros((ns, len(s)))
        onehot[spec[alo:alo + a_chunk], np.arange(len(s))] = 1.0
        tables = [np.exp(2j * np.pi * np.outer(s[:, d], np.arange(hmin[d], hmax[d] + 1)))
                  for d in range(3)]
        for klo in range(0, k, k_chunk):
            hh = h[klo:klo + k_chunk] - hmin
            prod = tables[0][:, hh[:, 0]] * tables[1][:, hh[:, 1]] * tables[2][:, hh[:, 2]]
            rho[:, klo:klo + k_chunk] += onehot @ prod
    return h, rho


def sq_kvectors(frames: Iterable, qmax: float = 10.0, dq: float = 0.05,
                max_per_shell: int | None = None, seed: int = 0) -> SQ:
    """S(q) and Faber–Ziman partials directly from ⟨ρ_a(q) ρ_b(−q)⟩/N on the reciprocal
    lattice of each frame's cell, averaged over the k-vectors in shells of width ``dq``
    (Å⁻¹) up to ``qmax`` and over frames. Exact for the periodic cell (no truncation) but
    only at the cell's allowed q (none below 2π/L); meant for small cells: the work grows
    as N² qmax³. ``max_per_shell``: None uses every vector (BLAS route); a number thins
    crowded shells at random to about that many per frame (reproducible with ``seed``), for
    larger cells. ``q`` of a shell is the mean |q| of its vectors.
    """
    rng = np.random.default_rng(seed)
    nshell = int(np.ceil(qmax / dq)) + 1
    species = n_first = counts = None
    n_frames = 0
    for atoms in frames:
        spc, spec = _species_order(atoms)
        _check_frame(atoms, n_first, species, spc, spec, counts)
        if species is None:
            species, n_first = spc, len(atoms)
            ns = len(species)
            counts = np.bincount(spec, minlength=ns).astype(float)
            sums = np.zeros((ns, ns, nshell))
            counts_k, qsum = np.zeros(nshell), np.zeros(nshell)
            densities = []
        cell = np.asarray(atoms.cell)
        frac = atoms.positions @ np.linalg.inv(cell)
        if max_per_shell is None:
            h, rho = _rho_k_grid(frac, spec, ns, cell, qmax)
        else:
            h, rho = _rho_k_sampled(frac, spec, ns, cell, qmax, dq, max_per_shell, rng)
        qn = np.linalg.norm(h @ (2.0 * np.pi * np.linalg.inv(cell).T), axis=1)
        shell_idx = np.minimum((qn / dq).astype(int), nshell - 1)
        for i in range(ns):
            for j in range(i, ns):
                snab = np.real(rho[i] * np.conj(rho[j])) / n_first
                sums[i, j] += np.bincount(shell_idx, snab, minlength=nshell)
                sums[j, i] = sums[i, j]
        counts_k += np.bincount(shell_idx, minlength=nshell)
        qsum += np.bincount(shell_idx, qn, minlength=nshell)
        densities.append(n_first / abs(np.linalg.det(cell)))
        n_frames += 1
    if n_frames == 0:
        raise ValueError("sq_kvectors: no frames")
    ok = counts_k > 0
    conc = counts / counts.sum()
    sn = sums[:, :, ok] / counts_k[ok]
    partials = {}
    for i, a in enumerate(species):
        for j, b in enumerate(species):
            partials[(a, b)] = 1.0 + (sn[i, j] - conc[i] * (i == j)) / (conc[i] * conc[j])
    return SQ(q=qsum[ok] / counts_k[ok], partials=partials,
              total=_total(partials, species, conc), species=species, concentrations=conc,
              density=float(np.mean(densities)), method="kvectors", n_frames=n_frames,
              n_vectors=(counts_k[ok] / n_frames).astype(int))


# ----------------------------------------------------------------------------- weighting
def _weight_arrays(weights: Mapping, species, q) -> list[np.ndarray]:
    out = []
    for a in species:
        if a not in weights:
            hint = (" (the species are LAMMPS type numbers: pass types={1: 'Al', ...} when "
                    "reading the trajectory)" if a.isdigit() else "")
            raise KeyError(f"no scattering weight for species {a!r}; given: "
                           f"{sorted(weights)}{hint}")
        w = weights[a]
        w = w(q) if callable(w) else w
        out.append(np.broadcast_to(np.asarray(w, float), np.shape(q)))
    return out


def weighted_sq(sq: SQ, weights: Mapping) -> np.ndarray:
    """Σ_ab c_a c_b w_a w_b S_ab(q) / (Σ_a c_a w_a)²; ``weights[a]`` a number, an array on
    ``sq.q``, or a callable f(q in Å⁻¹). → 1 at large q by construction."""
    w = _weight_arrays(weights, sq.species, sq.q)
    c = sq.concentrations
    mean = sum(c[i] * w[i] for i in range(len(w)))
    num = sum(c[i] * c[j] * w[i] * w[j] * sq.partials[(a, b)]
              for i, a in enumerate(sq.species) for j, b in enumerate(sq.species))
    return num / mean ** 2


def neutron_sq(sq: SQ, b: Mapping | None = None) -> np.ndarray:
    """Neutron-weighted total S(q) from coherent scattering lengths ``b`` (any unit;
    default :data:`NEUTRON_B`, fm)."""
    return weighted_sq(sq, NEUTRON_B if b is None else b)


def xray_sq(sq: SQ, form_factors: Mapping) -> np.ndarray:
    """X-ray-weighted total S(q); ``form_factors[a]`` is f_a(q) as a callable of q (Å⁻¹)
    or an array on ``sq.q``."""
    return weighted_sq(sq, form_factors)


# ----------------------------------------------------------------------------- Bhatia–Thornton
def bhatia_thornton(sq: SQ) -> BhatiaThornton:
    """S_NN, S_NC, S_CC of a binary from its Faber–Ziman partials (formulas in module doc)."""
    if len(sq.species) != 2:
        raise ValueError(f"Bhatia–Thornton needs a binary; species are {sq.species}")
    a, b = sq.species
    c1, c2 = sq.concentrations
    s11, s22, s12 = sq.partials[(a, a)], sq.partials[(b, b)], sq.partials[(a, b)]
    nn = 1.0 + c1 * c1 * (s11 - 1) + c2 * c2 * (s22 - 1) + 2 * c1 * c2 * (s12 - 1)
    nc = c1 * c2 * (c1 * (s11 - s12) - c2 * (s22 - s12))
    cc = c1 * c2 * (1.0 + c1 * c2 * (s11 + s22 - 2.0 * s12))
    return BhatiaThornton(q=sq.q, nn=nn, nc=nc, cc=cc, species=sq.species,
                          concentrations=sq.concentrations)


def extrapolate_q0(q, s, qmin: float = 0.0, qmax: float = 1.5, order: int = 2) -> Q0Fit:
    """Fit ``a0 + a2 q² (+ a4 q⁴ for order 4)`` to s(q) over qmin ≤ q ≤ qmax (Å⁻¹) by least
    squares; ``value`` = a0 = s(q → 0) (thesis §4.5: even polynomial, no odd terms)."""
    if order not in (2, 4):
        raise ValueError(f"order must be 2 or 4, not {order}")
    q, s = np.asarray(q, float), np.asarray(s, float)
    sel = (q >= qmin) & (q <= qmax) & np.isfinite(s)
    nterm = order // 2 + 1
    if sel.sum() < nterm:
        raise ValueError(f"only {sel.sum()} points in q ∈ [{qmin}, {qmax}] Å⁻¹, need ≥ "
                         f"{nterm}; widen the window (small cells have few low-q points)")
    qs, ss = q[sel], s[sel]
    design = np.column_stack([qs ** (2 * k) for k in range(nterm)])
    coef, *_ = np.linalg.lstsq(design, ss, rcond=None)
    resid = ss - design @ coef
    dof = len(ss) - nterm
    if dof > 0:
        sigma2 = float(resid @ resid) / dof
        cov = sigma2 * np.linalg.pinv(design.T @ design)
        stderr = float(np.sqrt(max(cov[0, 0], 0.0)))
    else:
        stderr = float("nan")
    return Q0Fit(value=float(coef[0]), stderr=stderr, coefficients=coef, qmin=float(qmin),
                 qmax=float(qmax), order=order, n_points=int(sel.sum()),
                 rms=float(np.sqrt(np.mean(resid ** 2))), q=qs, s=ss)


def extrapolation_scan(q, s, qmins: Sequence[float], qmaxs: Sequence[float],
                       orders: Sequence[int] = (2, 4)):
    """Sensitivity of the q → 0 limit to the fit window and order (thesis §4.5):
    a DataFrame with columns qmin, qmax, order, n_points, value, stderr, rms."""
    import pandas as pd  # noqa: PLC0415

    rows = []
    for qmin, qmax, order in itertools.product(qmins, qmaxs, orders):
        try:
            fit = extrapolate_q0(q, s, qmin, qmax, order)
        except ValueError:
            continue
        rows.append(dict(qmin=qmin, qmax=qmax, order=order, n_points=fit.n_points,
                         value=fit.value, stderr=fit.stderr, rms=fit.rms))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- writers
def _plt():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def write_rdf(rdf: RDF, prefix: str | Path, coordination: dict | None = None) -> list[Path]:
    """Write ``<prefix>_rdf.csv`` (r in Å, g_total, g_<a>_<b> per unordered pair, running
    coordination n_<a>_<b> at the bin's right edge), ``<prefix>_rdf.png`` and
    ``<prefix>_cn.csv`` (pair, rmin in Å, coordination number). Returns the paths."""
    import pandas as pd  # noqa: PLC0415

    prefix = str(prefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    running = running_coordination(rdf)
    table = {"r": rdf.r, "g_total": rdf.total}
    for a, b in rdf.pairs():
        table[f"g_{a}_{b}"] = rdf.partials[(a, b)]
    table["n_total"] = running["total"][1:]
    for a, b in itertools.product(rdf.species, repeat=2):
        table[f"n_{a}_{b}"] = running[(a, b)][1:]
    paths = [Path(prefix + "_rdf.csv"), Path(prefix + "_rdf.png"), Path(prefix + "_cn.csv")]
    pd.DataFrame(table).to_csv(paths[0], index=False, float_format="%.6g")

    cn = coordination_numbers(rdf) if coordination is None else coordination
    rows = [dict(center="all" if k == "total" else k[0], neighbour="all" if k == "total" else k[1],
                 rmin=v[1], cn=v[0]) for k, v in cn.items()]
    pd.DataFrame(rows).to_csv(paths[2], index=False, float_format="%.6g")

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if len(rdf.species) > 1:
        for a, b in rdf.pairs():
            ax.plot(rdf.r, rdf.partials[(a, b)], lw=1, label=f"{a}–{b}")
    ax.plot(rdf.r, rdf.total, lw=1.6, color="k", label="total")
    rm = cn.get("total", (np.nan, np.nan))[1]
    if np.isfinite(rm):
        ax.axvline(rm, ls=":", lw=0.8, color="grey")
    ax.axhline(1.0, lw=0.4, color="grey")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_xlim(0, rdf.edges[-1])
    ax.legend(fontsize=8)
    ax.set_title(f"{rdf.n_atoms} atoms, {rdf.n_frames} frames, ρ = {rdf.density:.4g} Å⁻³",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths


def write_sq(sq: SQ, prefix: str | Path, extra: Mapping[str, np.ndarray] | None = None,
             fit: Q0Fit | None = None) -> list[Path]:
    """Write ``<prefix>_sq.csv`` (q in Å⁻¹, S_total, S_<a>_<b> per unordered pair, for a
    binary S_NN/S_NC/S_CC, plus ``extra`` columns e.g. a neutron-weighted total) and
    ``<prefix>_sq.png`` (with the S_CC panel and its q→0 ``fit`` for a binary)."""
    import pandas as pd  # noqa: PLC0415

    prefix = str(prefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    table = {"q": sq.q, "S_total": sq.total}
    for a, b in sq.pairs():
        table[f"S_{a}_{b}"] = sq.partials[(a, b)]
    bt = bhatia_thornton(sq) if len(sq.species) == 2 else None
    if bt is not None:
        table.update(S_NN=bt.nn, S_NC=bt.nc, S_CC=bt.cc)
    if sq.n_vectors is not None:
        table["n_vectors"] = sq.n_vectors
    for k, v in (extra or {}).items():
        table[k] = v
    paths = [Path(prefix + "_sq.csv"), Path(prefix + "_sq.png")]
    pd.DataFrame(table).to_csv(paths[0], index=False, float_format="%.6g")

    plt = _plt()
    ncol = 2 if bt is not None else 1
    fig, axes = plt.subplots(1, ncol, figsize=(6.2 * ncol, 4.2), squeeze=False)
    ax = axes[0, 0]
    style = dict(lw=1) if sq.method.startswith("ft") else dict(lw=0.8, marker=".", ms=3)
    if len(sq.species) > 1:
        for a, b in sq.pairs():
            ax.plot(sq.q, sq.partials[(a, b)], label=f"{a}–{b}", **style)
    ax.plot(sq.q, sq.total, color="k", label="total (FZ)", **style)
    for k, v in (extra or {}).items():
        ax.plot(sq.q, v, label=k, **style)
    ax.axhline(1.0, lw=0.4, color="grey")
    ax.set_xlabel("q (Å⁻¹)")
    ax.set_ylabel("S(q)")
    ax.legend(fontsize=8)
    ax.set_title(f"{sq.method}, {sq.n_frames} frames", fontsize=9)
    if bt is not None:
        ax2 = axes[0, 1]
        ax2.plot(sq.q, bt.nn, label="S_NN", **style)
        ax2.plot(sq.q, bt.nc, label="S_NC", **style)
        ax2.plot(sq.q, bt.cc, label="S_CC", **style)
        ax2.axhline(float(np.prod(sq.concentrations)), lw=0.6, ls="--", color="grey",
                    label="c₁c₂ (ideal)")
        if fit is not None:
            qq = np.linspace(0, fit.qmax, 50)
            ax2.plot(qq, fit(qq), color="r", lw=1,
                     label=f"fit: S_CC(0) = {fit.value:.4f} ± {fit.stderr:.4f}")
        ax2.set_xlabel("q (Å⁻¹)")
        ax2.set_ylabel("Bhatia–Thornton")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths
