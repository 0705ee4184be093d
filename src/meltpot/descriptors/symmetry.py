"""Vectorised symmetry-function evaluation from a pair list.

The core, :class:`SymmetryFunctions`, takes what a LAMMPS pair style has: species of all
atoms (local and ghost), pair indices ``center``/``neighbor``, pair vectors ``r_ij``, and the
number of local atoms; it returns ``G`` (n_local, F_max) where row i holds the features of
atom i's element in its first F_e columns (zeros after). Gradients flow through the pair
vectors, so forces and the virial come from autograd. The module compiles with
``torch.jit.script`` (typed lists instead of dicts for the angular groups): the LAMMPS export
runs this very code, so the plugin and training see identical numbers.

Evaluation (TorchANI-style, no Python loop over atoms): pairs are scattered into a padded
(n_local, M) neighbour table (M = most neighbours of any atom). Radial terms are summed over
M. Angular terms: r_ij · r_ik for all neighbour pairs from one batched matrix product; the
pairs j < k that contribute (real neighbours; for narrow functions only r_jk < r_c) are packed
per centre into an (n_local, P) table; (1 + λ cos θ)^ζ comes from one chain of squarings
shared by all ζ; element-pair blocks multiply by one-hot indicators of the neighbours' species.
Centres are processed in chunks (32 by default: the per-pair temporaries then stay in
cache, measured 1.5× faster than 128 on one CPU thread).

The element-weighted and compact types (n2p2 12, 13, 20–25; imported potentials) take a plainer
route, one function at a time over the chunk's neighbour table and its full upper triangle of
neighbour pairs (:meth:`SymmetryFunctions._extra`). Every cutoff type of n2p2 with its inner
cutoff α r_c is :func:`cutoff_fn`; compact factors are :func:`compact_fn`.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch

from ..errors import ConfigError
from .featureset import CORES, N2P2_TYPE, FeatureSet, is_noise

#: n2p2's core-function codes of the kernel table: 1..4 poly1..poly4, 5 exp (``CORES`` order + 1)
CORE_CODE = {c: k + 1 for k, c in enumerate(CORES)}


def core_fn(x: torch.Tensor, core: int, asym: bool = False) -> torch.Tensor:
    """n2p2's core function c(x) on 0 ≤ x < 1 (c(0) = 1, c(1) = 0): 1 (2x−3)x²+1, 2
    ((15−6x)x−10)x³+1, 3 (x(x(20x−70)+84)−35)x⁴+1, 4 (x(x((315−70x)x−540)+420)−126)x⁵+1, 5
    exp(1 − 1/(1 − x²)); ``asym``: c((2 − x) x)."""
    if asym:
        x = (2.0 - x) * x
    if core == 1:
        return (2.0 * x - 3.0) * x * x + 1.0
    if core == 2:
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0
    if core == 3:
        x2 = x * x
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0
    if core == 4:
        x2 = x * x
        return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0
    return math.e * torch.exp(1.0 / (x * x - 1.0))


def _cutoff_core(kind: str) -> int:
    """The core-function code of the cutoff types that have one: poly1 … poly4 (``polynomial`` is
    poly2) and exp (an if chain: TorchScript reads no global dicts)."""
    if kind == "poly1":
        return 1
    if kind == "polynomial":
        return 2
    if kind == "poly3":
        return 3
    if kind == "poly4":
        return 4
    return 5


def cutoff_fn(r: torch.Tensor, rc: torch.Tensor, kind: str, alpha: float = 0.0) -> torch.Tensor:
    """f_c(r) of n2p2's cutoff type ``kind`` (see :mod:`~meltpot.descriptors.featureset`): 1 below
    r_ci = α r_c, f(x) with x = (r − r_ci)/(r_c − r_ci) up to r_c, 0 beyond (tanhu and tanh:
    tanh³(1 − r/r_c), the latter divided by tanh³ 1, without α; hard: 1)."""
    inside = r < rc
    if alpha == 0.0 and (kind == "cosine" or kind == "polynomial"):
        x = (r / rc).clamp(max=1.0)
        if kind == "cosine":
            f = 0.5 * (torch.cos(math.pi * x) + 1.0)
        else:
            f = ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0
        return torch.where(inside, f, torch.zeros_like(f))
    if kind == "hard":
        f = torch.ones_like(r * rc)
    elif kind == "tanhu" or kind == "tanh":
        t = torch.tanh(1.0 - (r / rc).clamp(max=1.0))
        f = t * t * t
        if kind == "tanh":
            f = f / math.tanh(1.0) ** 3
    else:
        rci = alpha * rc
        x = (r - rci) / (rc - rci)
        ones = torch.ones_like(x)
        outer = (x > 0.0) & inside
        xs = torch.where(outer, x, 0.5 * ones)             # safe argument (no NaN gradients outside)
        if kind == "cosine":
            f = 0.5 * (torch.cos(math.pi * xs) + 1.0)
        else:
            f = core_fn(xs, _cutoff_core(kind))
        f = torch.where(x <= 0.0, ones, f)
    return torch.where(inside, f, torch.zeros_like(f))


def compact_fn(r: torch.Tensor, left: float, right: float, core: int, asym: bool) -> torch.Tensor:
    """n2p2's compact function: c(|r − m|/w) on left < r < right (m the centre, w the half
    width), 0 outside."""
    m, w = 0.5 * (left + right), 0.5 * (right - left)
    x = (r - m).abs() / w
    valid = (r > left) & (r < right) & (x < 1.0)
    xs = torch.where(valid, x, torch.full_like(x, 0.5))
    return torch.where(valid, core_fn(xs, core, asym), torch.zeros_like(x))


class SymmetryFunctions(torch.nn.Module):
    """Symmetry functions of a :class:`FeatureSet` (see module docstring)."""

    # types of the angular-group lists for TorchScript (they may be empty, so it cannot infer
    # them); a real dict, because this module's annotations are strings (__future__)
    __annotations__ = {"ang_narrow": List[bool], "ang_eta": List[float], "ang_rs": List[float],
                       "ang_rc": List[float], "ang_terms": List[List[Tuple[int, float, float, int, int]]],
                       "ang_lams": List[List[float]], "ang_zetas": List[List[List[float]]],
                       "ext_kind": List[int], "ext_col": List[int], "ext_par": List[List[float]],
                       "ext_e1": List[int], "ext_e2": List[int], "ext_core": List[int], "ext_asym": List[bool]}

    def __init__(self, featureset: FeatureSet, chunk_size: int = 32):
        super().__init__()
        self.featureset = featureset
        self.elements = featureset.elements
        self.cutoff_kind = featureset.cutoff
        self.cutoff_alpha = float(featureset.cutoff_alpha)
        self.cutoff = float(featureset.cutoff_radius)
        self.chunk_size = chunk_size
        el_index = {e: k for k, e in enumerate(self.elements)}
        # union of functions over centre elements; per-element column maps into it
        self.has_noise = featureset.has_noise  # noise pseudo-features: training data only
        union = []
        for fns in featureset.per_element.values():
            for f in fns:
                if f not in union and not is_noise(f):
                    union.append(f)
        self.n_union = len(union)
        self.f_max = max(len(v) for v in featureset.per_element.values())
        col = torch.full((len(self.elements), self.f_max), -1, dtype=torch.long)
        for e, fns in featureset.per_element.items():
            for k, f in enumerate(fns):
                if not is_noise(f):
                    col[el_index[e], k] = union.index(f)
        self.register_buffer("columns", col, persistent=False)
        self.register_buffer("n_features", torch.tensor([len(featureset.per_element[e]) for e in self.elements]),
                             persistent=False)

        classic = ("radial", "angular_narrow", "angular_wide")
        rad = [(u, f) for u, f in enumerate(union) if f.type == "radial"]
        self.register_buffer("rad_index", torch.tensor([u for u, _ in rad], dtype=torch.long), persistent=False)
        self.register_buffer("rad_eta", torch.tensor([f.eta for _, f in rad], dtype=torch.float64), persistent=False)
        self.register_buffer("rad_rs", torch.tensor([f.rs for _, f in rad], dtype=torch.float64), persistent=False)
        self.register_buffer("rad_rc", torch.tensor([f.rc for _, f in rad], dtype=torch.float64), persistent=False)
        self.register_buffer("rad_elem", torch.tensor([el_index[f.neighbors[0]] for _, f in rad], dtype=torch.long),
                             persistent=False)
        # angular: groups sharing the radial part (type, eta, rs, rc), then terms (column u, zeta,
        # lambda, sorted neighbour-element pair e1 <= e2). Typed lists, so TorchScript compiles them.
        ang = [(u, f) for u, f in enumerate(union) if f.type in ("angular_narrow", "angular_wide")]
        keys: list = []
        self.ang_narrow = []
        self.ang_eta = []
        self.ang_rs = []
        self.ang_rc = []
        self.ang_terms = []
        for u, f in ang:
            key = (f.type, f.eta, f.rs, f.rc)
            if key not in keys:
                keys.append(key)
                self.ang_narrow.append(f.type == "angular_narrow")
                self.ang_eta.append(float(f.eta))
                self.ang_rs.append(float(f.rs))
                self.ang_rc.append(float(f.rc))
                self.ang_terms.append([])
            e1, e2 = sorted((el_index[f.neighbors[0]], el_index[f.neighbors[1]]))
            self.ang_terms[keys.index(key)].append((u, float(f.zeta), float(f.lam), e1, e2))
        self.n_ang_groups = len(keys)
        self.all_narrow = bool(keys) and all(self.ang_narrow)
        self.ang_rc_max = max(self.ang_rc) if keys else 0.0
        # per group and lambda: the zetas needed (one chain of squarings per base 1 + lambda cos)
        self.ang_lams = [sorted({t[2] for t in terms}) for terms in self.ang_terms]
        self.ang_zetas = [[sorted({t[1] for t in terms if t[2] == lam}) for lam in lams]
                                                   for terms, lams in zip(self.ang_terms, self.ang_lams)]
        self.n_elements = len(self.elements)
        # weighted and compact types (n2p2 12, 13, 20-25): one entry per function; ext_par holds
        # eta, rs, rc, zeta, lambda, rl, angle_left, angle_right (radians); e1/e2 -1 when weighted
        from ase.data import atomic_numbers

        self.register_buffer("z_weight", torch.tensor([float(atomic_numbers[e]) for e in self.elements],
                                                      dtype=torch.float64), persistent=False)
        self.ext_kind, self.ext_col, self.ext_par = [], [], []
        self.ext_e1, self.ext_e2, self.ext_core, self.ext_asym = [], [], [], []
        for u, f in enumerate(union):
            if f.type in classic:
                continue
            nb = [el_index[e] for e in f.neighbors] + [-1, -1]
            deg = math.pi / 180.0
            self.ext_kind.append(N2P2_TYPE[f.type])
            self.ext_col.append(u)
            self.ext_par.append([float(f.eta), float(f.rs), float(f.rc), float(f.zeta or 0.0), float(f.lam or 0.0),
                                 float(f.rl or 0.0), float(f.angle_left or 0.0) * deg,
                                 float(f.angle_right or 0.0) * deg])
            self.ext_e1.append(nb[0])
            self.ext_e2.append(nb[1] if f.is_angular else -1)
            self.ext_core.append(CORE_CODE[f.subtype.removesuffix("a")] if f.is_compact else 0)
            self.ext_asym.append(bool(f.is_compact and f.subtype.endswith("a")))
        self.n_ext = len(self.ext_kind)
        self.ext_angular = any(k in (13, 21, 22, 24, 25) for k in self.ext_kind)

    # ------------------------------------------------------------------ helpers
    def split(self, G: torch.Tensor, species: torch.Tensor) -> list[torch.Tensor]:
        """Per element e: the rows of atoms of e, first F_e columns."""
        return [G[species == k][:, : int(self.n_features[k])] for k in range(len(self.elements))]

    def forward(self, species: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor, rij: torch.Tensor,
                n_local: int) -> torch.Tensor:
        """``G`` (n_local, F_max) from a pair list (pairs with centre < n_local; any order)."""
        if not torch.jit.is_scripting() and self.has_noise:
            raise ConfigError(f"feature set {self.featureset.name} holds noise pseudo-features (a selection "
                              "diagnostic that exists only in training data); it cannot be computed from positions")
        dtype, device = rij.dtype, rij.device
        n_el = self.n_elements
        U = torch.zeros(n_local, self.n_union, dtype=dtype, device=device)
        if center.numel() == 0:
            return self._select(U, species[:n_local])
        # padded neighbour table
        order = torch.argsort(center, stable=True)
        c = center[order]
        counts = torch.bincount(c, minlength=n_local)
        M = int(counts.max())
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(c.numel(), device=device) - starts[c]
        R = torch.zeros(n_local, M, 3, dtype=dtype, device=device)
        R = R.index_put([c, slot], rij[order])
        nb_species = torch.full((n_local, M), -1, dtype=torch.long, device=device)
        nb_species[c, slot] = species[neighbor[order]]
        mask = nb_species >= 0
        onehot = torch.nn.functional.one_hot(nb_species.clamp(min=0), n_el).to(dtype) * mask[..., None].to(dtype)
        d2 = (R * R).sum(-1)
        d = torch.sqrt(torch.where(mask, d2, torch.ones_like(d2)))  # padded slots: 1 (masked later)

        chunks = []
        for s in range(0, n_local, self.chunk_size):
            e = min(s + self.chunk_size, n_local)
            chunks.append(self._chunk(R[s:e], d[s:e], d2[s:e], mask[s:e], onehot[s:e]))
        U = torch.cat(chunks, 0)
        return self._select(U, species[:n_local])

    def _select(self, U: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        cols = self.columns[species]                          # (n, F_max)
        G = torch.gather(U, 1, cols.clamp(min=0))
        return G * (cols >= 0).to(U.dtype)

    def _chunk(self, R: torch.Tensor, d: torch.Tensor, d2: torch.Tensor, mask: torch.Tensor,
               onehot: torch.Tensor) -> torch.Tensor:
        m = int(mask.sum(1).max()) if mask.numel() else 0   # this chunk's most neighbours
        R, d, d2, mask, onehot = R[:, :m], d[:, :m], d2[:, :m], mask[:, :m], onehot[:, :m]
        n, M = d.shape
        dtype = R.dtype
        maskf = mask.to(dtype)
        out = torch.zeros(n, self.n_union, dtype=dtype, device=R.device)
        if self.rad_index.numel():
            eta = self.rad_eta.to(dtype)
            rs = self.rad_rs.to(dtype)
            rc = self.rad_rc.to(dtype)
            fc = cutoff_fn(d[..., None], rc, self.cutoff_kind, self.cutoff_alpha) * maskf[..., None]  # (n, M, Fr)
            term = torch.exp(-eta * (d[..., None] - rs) ** 2) * fc
            w = onehot.index_select(2, self.rad_elem)                                       # (n, M, Fr)
            out = out.index_copy(1, self.rad_index, (term * w).sum(1))
        if self.n_ang_groups > 0:
            self._angular(out, R, d, maskf, onehot)
        if self.n_ext > 0:
            self._extra(out, R, d, maskf, onehot)
        return out

    def _extra(self, out: torch.Tensor, R: torch.Tensor, d: torch.Tensor, maskf: torch.Tensor,
               onehot: torch.Tensor) -> None:
        """The weighted and compact types (n2p2 12, 13, 20–25), one function at a time; angular
        ones over all neighbour pairs j < k of the chunk's table (the upper triangle)."""
        n, M = d.shape
        dtype = R.dtype
        zw = (onehot * self.z_weight.to(dtype)).sum(-1)              # (n, M): Z of each neighbour, 0 padded
        a = torch.zeros(0, dtype=torch.long, device=R.device)
        b = a
        da, db, cos, rjk, pair = d[:, :0], d[:, :0], d[:, :0], d[:, :0], d[:, :0]
        if self.ext_angular and M > 1:
            tri = torch.triu_indices(M, M, offset=1, device=R.device)
            a, b = tri[0], tri[1]
            Ra, Rb = R.index_select(1, a), R.index_select(1, b)
            da, db = d.index_select(1, a), d.index_select(1, b)
            cos = (Ra * Rb).sum(-1) / (da * db)
            rjk = torch.sqrt(((Rb - Ra) ** 2).sum(-1).clamp(min=1e-30))
            pair = maskf.index_select(1, a) * maskf.index_select(1, b)
        for q in range(self.n_ext):
            kind, col, p = self.ext_kind[q], self.ext_col[q], self.ext_par[q]
            eta, rs, rc, zeta, lam, rl = p[0], p[1], p[2], p[3], p[4], p[5]
            e1, e2, core, asym = self.ext_e1[q], self.ext_e2[q], self.ext_core[q], self.ext_asym[q]
            rct = torch.full((), rc, dtype=dtype, device=R.device)
            if kind == 12 or kind == 20 or kind == 23:           # radial: sum over neighbours
                w = onehot[..., e1] if kind == 20 else zw
                if kind == 12:
                    v = torch.exp(-eta * (d - rs) ** 2) * cutoff_fn(d, rct, self.cutoff_kind, self.cutoff_alpha)
                else:
                    v = compact_fn(d, rl, rc, core, asym)
                out[:, col] = (w * v).sum(1)
                continue
            if a.numel() == 0:
                out[:, col] = torch.zeros(n, dtype=dtype, device=R.device)
                continue
            if e1 < 0:                                            # weighted: Z_j Z_k
                w = zw.index_select(1, a) * zw.index_select(1, b)
            else:                                                 # the pairs {j, k} of species {e1, e2}
                w = onehot[..., e1].index_select(1, a) * onehot[..., e2].index_select(1, b)
                if e1 != e2:
                    w = w + onehot[..., e2].index_select(1, a) * onehot[..., e1].index_select(1, b)
            w = w * pair
            if kind == 13:
                fc = cutoff_fn(torch.stack([da, db, rjk]), rct, self.cutoff_kind, self.cutoff_alpha)
                radial = torch.exp(-eta * ((da - rs) ** 2 + (db - rs) ** 2 + (rjk - rs) ** 2)) * fc[0] * fc[1] * fc[2]
                ang = (1.0 + lam * cos).clamp(min=0.0) ** zeta * 2.0 ** (1.0 - zeta)
            else:
                radial = compact_fn(da, rl, rc, core, asym) * compact_fn(db, rl, rc, core, asym)
                if kind == 21 or kind == 24:
                    radial = radial * compact_fn(rjk, rl, rc, core, asym)
                inner = (cos > -1.0) & (cos < 1.0)
                theta = torch.acos(torch.where(inner, cos, torch.zeros_like(cos)))
                # the angular factor is never asymmetric (n2p2 gives its angle function the core only)
                ang = torch.where(inner, compact_fn(theta, p[6], p[7], core, False), torch.zeros_like(cos))
            out[:, col] = (w * radial * ang).sum(1)

    def _angular(self, out: torch.Tensor, R: torch.Tensor, d: torch.Tensor, maskf: torch.Tensor,
                 onehot: torch.Tensor) -> None:
        """Angular terms over each centre's neighbour pairs j < k, packed into an (n, P_max) table.

        Candidates are the upper triangle of the padded neighbour table; only real pairs are kept,
        and when every angular function is narrow only pairs with r_jk < r_c (f_c(r_jk) = 0 for
        the others). Kept pairs are packed per centre (stable sort), so sums are plain row sums.
        """
        n, M = d.shape
        dtype, device = R.dtype, R.device
        tri = torch.triu_indices(M, M, offset=1, device=device)
        a, b = tri[0], tri[1]
        if a.numel() == 0:
            return
        dot_full = torch.bmm(R, R.transpose(1, 2)).view(n, M * M)
        # which pairs contribute: index bookkeeping only, on detached values (no autograd graph)
        keep = (maskf.index_select(1, a) * maskf.index_select(1, b)) > 0
        if self.all_narrow:
            rc_max = self.ang_rc_max
            d_ = d.detach()
            da0, db0 = d_.index_select(1, a), d_.index_select(1, b)
            r2_0 = da0 * da0 + db0 * db0 - 2.0 * dot_full.detach().index_select(1, a * M + b)
            keep = keep & (r2_0 < rc_max * rc_max)
        counts = keep.sum(1)
        P = int(counts.max())
        # stable sort puts each row's kept pairs first, in triangle order
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :P]
        valid = torch.arange(P, device=device)[None, :] < counts[:, None]
        ja, jb = a[order], b[order]
        jab = ja * M + jb
        validf = valid.to(dtype)
        da, db = d.gather(1, ja), d.gather(1, jb)
        dot = dot_full.gather(1, jab)
        cos = dot / (da * db)
        n_el = onehot.shape[-1]
        blocks: Dict[int, torch.Tensor] = {}     # key e1 * n_el + e2: neighbour pair (j, k) of species {e1, e2}
        if n_el > 1:
            for terms in self.ang_terms:
                for term in terms:
                    e1, e2 = term[3], term[4]
                    if e1 * n_el + e2 not in blocks:
                        blk = onehot[..., e1].gather(1, ja) * onehot[..., e2].gather(1, jb)
                        if e1 != e2:
                            blk = blk + onehot[..., e2].gather(1, ja) * onehot[..., e1].gather(1, jb)
                        blocks[e1 * n_el + e2] = blk
        r_jk: Optional[torch.Tensor] = None
        bases: Dict[float, torch.Tensor] = {}
        for g in range(self.n_ang_groups):
            eta, rs = self.ang_eta[g], self.ang_rs[g]
            # torch.full, not torch.tensor: scripted torch.tensor(float) rounds through float32
            rc = torch.full((), self.ang_rc[g], dtype=dtype, device=device)
            w = torch.exp(-eta * (d - rs) ** 2) * cutoff_fn(d, rc, self.cutoff_kind, self.cutoff_alpha) * maskf
            radial = w.gather(1, ja) * w.gather(1, jb) * validf
            if self.ang_narrow[g]:
                if r_jk is None:
                    r2 = (da * da + db * db - 2.0 * dot).clamp(min=1e-30)
                    r_jk = torch.sqrt(r2)
                rjk = r_jk
                assert rjk is not None
                radial = radial * torch.exp(-eta * (rjk - rs) ** 2) * cutoff_fn(rjk, rc, self.cutoff_kind,
                                                                                self.cutoff_alpha)
            for li, lam in enumerate(self.ang_lams[g]):
                if lam not in bases:
                    bases[lam] = 1.0 + lam * cos
                powers = self._powers(bases[lam], self.ang_zetas[g][li])
                for term in self.ang_terms[g]:
                    if term[2] == lam:
                        weight = radial if n_el == 1 else radial * blocks[term[3] * n_el + term[4]]
                        out[:, term[0]] = (weight * powers[term[1]]).sum(1) * 2.0 ** (1.0 - term[1])

    @staticmethod
    def _powers(x: torch.Tensor, zetas: List[float]) -> Dict[float, torch.Tensor]:
        """x^ζ for several ζ sharing one chain of squarings (integer ζ); x ≥ 0 here."""
        out: Dict[float, torch.Tensor] = {}
        squares: Dict[int, torch.Tensor] = {1: x}          # x^(2^k)
        for zeta in zetas:
            if zeta != math.floor(zeta):
                out[zeta] = x.clamp(min=0.0) ** zeta
                continue
            k = int(zeta)
            result: Optional[torch.Tensor] = None
            bit = 1
            while k > 0:
                if bit not in squares:
                    squares[bit] = squares[bit // 2] * squares[bit // 2]
                if k & 1:
                    result = squares[bit] if result is None else result * squares[bit]
                k >>= 1
                bit *= 2
            assert result is not None
            out[zeta] = result
        return out
