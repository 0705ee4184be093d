"""Feature sets: which symmetry functions each element's network sees, as plain data.

A symmetry function (n2p2 conventions; lengths in Å or σ, η in 1/length²):

* ``radial`` (n2p2 type 2): ``G = Σ_j exp(−η (r_ij − r_s)²) f_c(r_ij)``
* ``angular_narrow`` (n2p2 type 3, Behler's G4; the thesis's "G5", eqs. 4.3/5.4):
  ``G = 2^(1−ζ) Σ_{j<k} (1 + λ cos θ_ijk)^ζ exp(−η[(r_ij−r_s)² + (r_ik−r_s)² + (r_jk−r_s)²])
  f_c(r_ij) f_c(r_ik) f_c(r_jk)``
* ``angular_wide`` (n2p2 type 9, Behler's G5): as narrow without the r_jk terms.

The sum over j<k runs over unordered neighbour pairs. Element resolution: a radial
function names one neighbour element, an angular function an unordered pair of neighbour
elements (``neighbors``); the pair block sums the atom pairs {j, k} with exactly those
elements.

Element-weighted functions (no ``neighbors``; every neighbour counts with its atomic number Z):

* ``weighted_radial`` (n2p2 type 12): ``G = Σ_j Z_j exp(−η (r_ij − r_s)²) f_c(r_ij)``
* ``weighted_angular`` (n2p2 type 13): as ``angular_narrow`` with each pair weighted Z_j Z_k

Compact (polynomial) functions (n2p2 types 20–25, "polynomial symmetry functions", Bircher et
al.), without η, r_s and without the cutoff function ``f_c``: a compact radial factor
``C(r) = c(|r − r_m|/w)`` for r_l < r < r_c (0 outside), r_m = (r_l + r_c)/2, w = (r_c − r_l)/2,
and a compact angular factor ``A(θ) = c(|θ − θ_m|/w_θ)`` for θ_l ≤ θ ≤ θ_r (angles in degrees on
disk, θ = arccos cos θ_ijk). ``c`` is the core function of ``subtype``: ``p1`` … ``p4`` the
polynomials of the cutoff types poly1 … poly4 below, ``e`` exp(1 − 1/(1 − x²)); a trailing
``a`` (``p2a``) makes the radial factor asymmetric, c((2 − x) x) (the angular factor keeps the
plain core: n2p2's ``SymFncBaseCompAng`` passes it the core type only).

* ``compact_radial`` (20, one neighbour element): ``G = Σ_j C(r_ij)``
* ``compact_angular_narrow`` (21, a neighbour pair): ``G = Σ_{j<k} A(θ_ijk) C(r_ij) C(r_ik) C(r_jk)``
* ``compact_angular_wide`` (22): as 21 without ``C(r_jk)``
* ``weighted_compact_radial``, ``weighted_compact_angular_narrow``, ``weighted_compact_angular_wide``
  (23, 24, 25): as 20–22 for all neighbours, weighted with Z_j (Z_j Z_k)

``cutoff`` names the n2p2 cutoff type (``CutoffFunction.h``) with inner cutoff r_ci = α r_c
(``cutoff_alpha``, default 0): f_c = 1 for r < r_ci, f(x) with x = (r − r_ci)/(r_c − r_ci) up to
r_c, 0 beyond: ``hard`` (0) f = 1; ``cosine`` (1) ½(cos πx + 1); ``tanhu`` (2)
tanh³(1 − r/r_c) and ``tanh`` (3) the same divided by tanh³(1) (both without α); ``exp`` (4)
exp(1 − 1/(1 − x²)); ``poly1`` (5) (2x − 3)x² + 1; ``polynomial`` (6, n2p2's poly2)
((15 − 6x)x − 10)x³ + 1; ``poly3`` (7) (x(x(20x − 70) + 84) − 35)x⁴ + 1; ``poly4`` (8)
(x(x((315 − 70x)x − 540) + 420) − 126)x⁵ + 1. (``cosine`` and ``polynomial`` keep their old
names; α = 0 is not written, so the YAML and content hash of such sets are unchanged.)

On disk a feature set is YAML::

    name: al-thesis
    cutoff: polynomial
    elements: [Al]                 # optional: resolve a generic list for these elements
    functions:                     # generic: expanded over neighbour elements
      - {type: radial, eta: 0.0013, rs: 0.0, rc: 6.8}
      - {type: angular_narrow, eta: 0.0013, lambda: -1, zeta: 1, rc: 6.8}
      - {type: weighted_radial, eta: 0.5, rs: 2.5, rc: 6.8}          # no neighbours: weighted by Z
      - {type: compact_angular_wide, rl: -6.8, rc: 6.8, angle_left: 60, angle_right: 180, subtype: p2}

with, optionally, ``cutoff_alpha: 0.2`` beside ``cutoff`` (an inner cutoff at 0.2 r_c),

or fully resolved, with ``per_element: {Al: [{..., neighbors: [Al]}, ...], Ni: [...]}``.

A resolved set may also hold ``noise`` pseudo-features (:class:`NoiseFeature`, thesis §5.3.5):
confounding inputs |N(μ, σ)| drawn once per atom and frame, used to test whether a selection
method discards them. They exist only in training data (:mod:`meltpot.selection.noise`);
computing a set that contains them from positions is refused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError

N2P2_TYPE = {"radial": 2, "angular_narrow": 3, "angular_wide": 9, "weighted_radial": 12, "weighted_angular": 13,
             "compact_radial": 20, "compact_angular_narrow": 21, "compact_angular_wide": 22,
             "weighted_compact_radial": 23, "weighted_compact_angular_narrow": 24,
             "weighted_compact_angular_wide": 25}
TYPES = tuple(N2P2_TYPE)
#: types with a triplet sum; with the r_jk factor (narrow); weighted by Z (no neighbours);
#: compact (no η, r_s, f_c; r_l, subtype, angles)
ANGULAR_TYPES = ("angular_narrow", "angular_wide", "weighted_angular", "compact_angular_narrow",
                 "compact_angular_wide", "weighted_compact_angular_narrow", "weighted_compact_angular_wide")
NARROW_TYPES = ("angular_narrow", "weighted_angular", "compact_angular_narrow", "weighted_compact_angular_narrow")
WEIGHTED_TYPES = ("weighted_radial", "weighted_angular", "weighted_compact_radial",
                  "weighted_compact_angular_narrow", "weighted_compact_angular_wide")
COMPACT_TYPES = ("compact_radial", "compact_angular_narrow", "compact_angular_wide", "weighted_compact_radial",
                 "weighted_compact_angular_narrow", "weighted_compact_angular_wide")
#: compact core functions (``subtype`` without the asymmetry ``a``)
CORES = ("p1", "p2", "p3", "p4", "e")
N2P2_CUTOFF = {"hard": 0, "cosine": 1, "tanhu": 2, "tanh": 3, "exp": 4, "poly1": 5, "polynomial": 6, "poly3": 7,
               "poly4": 8}
CUTOFFS = tuple(N2P2_CUTOFF)
PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class SymmetryFunction:
    """One symmetry function of a centre element (see module docstring for the formulas)."""

    type: str
    eta: float
    rc: float
    rs: float = 0.0
    zeta: float | None = None
    lam: float | None = None
    neighbors: tuple[str, ...] = ()
    #: compact types only: lower radial bound r_l (may be < 0), angle bounds (degrees), subtype
    rl: float | None = None
    angle_left: float | None = None
    angle_right: float | None = None
    subtype: str | None = None

    def __post_init__(self):
        # numbers as floats, so that a function built from ints (zeta=1, lam=-1) has the same
        # to_dict, content hash and equality as the one read back from its YAML
        for key in ("eta", "rc", "rs", "zeta", "lam", "rl", "angle_left", "angle_right"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, float):
                try:
                    object.__setattr__(self, key, float(value))
                except (TypeError, ValueError):
                    raise ConfigError(f"symmetry function: {key} must be a number, got {value!r}") from None
        object.__setattr__(self, "neighbors", tuple(self.neighbors))
        if self.type not in TYPES:
            raise ConfigError(f"symmetry function type {self.type!r} unknown; allowed: {', '.join(TYPES)}")
        if self.rc <= 0 or self.eta < 0:
            raise ConfigError(f"symmetry function needs rc > 0 and eta >= 0, got rc={self.rc}, eta={self.eta}")
        if self.rs < 0 or self.rs >= self.rc:
            raise ConfigError(f"symmetry function needs 0 <= rs < rc, got rs={self.rs}, rc={self.rc}")
        if self.is_compact:
            self._check_compact()
        elif any(v is not None for v in (self.rl, self.angle_left, self.angle_right, self.subtype)):
            raise ConfigError(f"{self.type}: rl, angle_left, angle_right and subtype belong to compact types only")
        if self.is_weighted:
            if self.neighbors:
                raise ConfigError(f"{self.type} weights all neighbours by Z and names none, got "
                                  f"{list(self.neighbors)}")
            n_nb = 0
        else:
            n_nb = 2 if self.is_angular else 1
        if self.is_compact:
            if self.is_angular and self.neighbors and len(self.neighbors) != n_nb:
                raise ConfigError(f"{self.type} names two neighbour elements, got {list(self.neighbors)}")
            if not self.is_angular and self.neighbors and len(self.neighbors) != n_nb:
                raise ConfigError(f"{self.type} names one neighbour element, got {list(self.neighbors)}")
            return
        if self.is_angular:
            if self.zeta is None or self.lam is None:
                raise ConfigError(f"{self.type} needs zeta and lambda")
            if self.zeta < 1:
                raise ConfigError(f"{self.type} needs zeta >= 1, got {self.zeta}")
            if self.lam not in (-1.0, 1.0):
                raise ConfigError(f"{self.type} needs lambda = +1 or -1, got {self.lam}")
            if self.neighbors and len(self.neighbors) != 2:
                raise ConfigError(f"{self.type} names two neighbour elements, got {list(self.neighbors)}")
        elif self.neighbors and len(self.neighbors) != 1:
            raise ConfigError(f"radial function names one neighbour element, got {list(self.neighbors)}")

    def _check_compact(self) -> None:
        if self.eta != 0.0 or self.rs != 0.0 or self.zeta is not None or self.lam is not None:
            raise ConfigError(f"{self.type} has no eta, rs, zeta or lambda (compact functions: rl, rc, "
                              "angle_left, angle_right, subtype)")
        if self.rl is None or not self.rl < self.rc:
            raise ConfigError(f"{self.type} needs rl < rc, got rl={self.rl}, rc={self.rc}")
        sub = self.subtype or ""
        if sub.removesuffix("a") not in CORES or (sub.endswith("a") and not sub.startswith("p")):
            raise ConfigError(f"{self.type}: subtype {self.subtype!r} unknown; allowed: p1 … p4, p1a … p4a, e")
        if self.is_angular:
            al, ar = self.angle_left, self.angle_right
            if al is None or ar is None or not al < ar:
                raise ConfigError(f"{self.type} needs angle_left < angle_right (degrees), got {al}, {ar}")
            centre = (al + ar) / 2
            if (al < 0 and centre != 0) or (ar > 180 and centre != 180) or ar - al > 360:
                raise ConfigError(f"{self.type}: angles [{al}, {ar}] leave [0, 180] without being centred "
                                  "on 0 or 180, or span more than 360 degrees")
        elif self.angle_left is not None or self.angle_right is not None:
            raise ConfigError(f"{self.type} has no angles")

    @property
    def is_angular(self) -> bool:
        return self.type in ANGULAR_TYPES

    @property
    def is_narrow(self) -> bool:
        """Angular with the r_jk factor."""
        return self.type in NARROW_TYPES

    @property
    def is_weighted(self) -> bool:
        """Weighted by the neighbours' atomic numbers (no element resolution)."""
        return self.type in WEIGHTED_TYPES

    @property
    def is_compact(self) -> bool:
        return self.type in COMPACT_TYPES

    def label(self) -> str:
        """Short readable name, e.g. ``G2(eta=1.85,rs=1.017;Al)``."""
        nb = ",".join(self.neighbors) if self.neighbors else "Z"
        if self.is_compact or self.is_weighted:
            t = N2P2_TYPE[self.type]
            if self.is_compact:
                ang = f",angle={self.angle_left:g}..{self.angle_right:g}" if self.is_angular else ""
                return f"G{t}(rl={self.rl:g},rc={self.rc:g}{ang},{self.subtype};{nb})"
            if self.is_angular:
                return (f"G{t}(eta={self.eta:g},zeta={self.zeta:g},lambda={self.lam:+g}"
                        + (f",rs={self.rs:g}" if self.rs else "") + ";Z)")
            return f"G{t}(eta={self.eta:g},rs={self.rs:g};Z)"
        if self.is_angular:
            kind = "G3" if self.type == "angular_narrow" else "G9"
            return (f"{kind}(eta={self.eta:g},zeta={self.zeta:g},lambda={self.lam:+g}"
                    + (f",rs={self.rs:g}" if self.rs else "") + f";{nb})")
        return f"G2(eta={self.eta:g},rs={self.rs:g};{nb})"

    def to_dict(self) -> dict:
        if self.is_compact:
            d = {"type": self.type, "rl": self.rl, "rc": self.rc, "subtype": self.subtype}
            if self.is_angular:
                d.update(angle_left=self.angle_left, angle_right=self.angle_right)
            if self.neighbors:
                d["neighbors"] = list(self.neighbors)
            return d
        d = {"type": self.type, "eta": self.eta, "rs": self.rs, "rc": self.rc}
        if self.is_angular:
            d.update(zeta=self.zeta, **{"lambda": self.lam})
        if self.neighbors:
            d["neighbors"] = list(self.neighbors)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "function") -> "SymmetryFunction":
        allowed = {"type", "eta", "rs", "rc", "zeta", "lambda", "neighbors", "rl", "angle_left", "angle_right",
                   "subtype"}
        if "lam" in d:   # the Python attribute's name (lambda is a keyword there); files say lambda
            if "lambda" in d and d["lambda"] != d["lam"]:
                raise ConfigError(f"{where}: lambda {d['lambda']!r} and lam {d['lam']!r} differ (lam is another "
                                  "name of lambda: give one)")
            d = {**{k: v for k, v in d.items() if k != "lam"}, "lambda": d["lam"]}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown key {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        compact = d.get("type") in COMPACT_TYPES
        missing = [k for k in (("type", "rl", "rc", "subtype") if compact else ("type", "eta", "rc")) if k not in d]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")

        def num(key):
            return None if d.get(key) is None else float(d[key])

        try:
            return cls(type=d["type"], eta=float(d.get("eta", 0.0)), rc=float(d["rc"]), rs=float(d.get("rs", 0.0)),
                       zeta=num("zeta"), lam=num("lambda"), neighbors=tuple(d.get("neighbors", ())), rl=num("rl"),
                       angle_left=num("angle_left"), angle_right=num("angle_right"),
                       subtype=None if d.get("subtype") is None else str(d["subtype"]))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class NoiseFeature:
    """A confounding pseudo-feature: |μ + σ·z|, z ~ N(0, 1) drawn once per atom and frame from
    ``seed`` (thesis §5.3.5). ``index`` numbers the noise columns of an element (0, 1, …)."""

    index: int
    mean: float
    std: float
    seed: int
    type: str = "noise"
    neighbors: tuple[str, ...] = ()
    rc: float = 0.0

    def __post_init__(self):
        if self.index < 0 or not self.std >= 0:
            raise ConfigError(f"noise feature needs index >= 0 and std >= 0, got index={self.index}, std={self.std}")

    is_angular = False

    def label(self) -> str:
        return f"noise{self.index}"

    def to_dict(self) -> dict:
        return {"type": "noise", "index": self.index, "mean": self.mean, "std": self.std, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict, where: str = "function") -> "NoiseFeature":
        allowed = {"type", "index", "mean", "std", "seed"}
        unknown = sorted(set(d) - allowed)
        missing = sorted(allowed - set(d))
        if unknown or missing:
            raise ConfigError(f"{where}: a noise feature has exactly the keys {', '.join(sorted(allowed))}"
                              + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                              + (f"; missing: {', '.join(missing)}" if missing else ""))
        return cls(index=int(d["index"]), mean=float(d["mean"]), std=float(d["std"]), seed=int(d["seed"]))


def function_from_dict(d: dict, where: str = "function"):
    """A :class:`SymmetryFunction`, or a :class:`NoiseFeature` for ``type: noise``."""
    if isinstance(d, dict) and d.get("type") == "noise":
        return NoiseFeature.from_dict(d, where)
    return SymmetryFunction.from_dict(d, where)


def is_noise(f) -> bool:
    return getattr(f, "type", None) == "noise"


def _identity(f) -> tuple:
    """What makes two functions the same: every parameter, and the neighbour elements as an
    unordered pair for angular functions (the pair block sums the atom pairs {j, k} with those
    elements, so (Al, Ni) and (Ni, Al) compute the same values)."""
    if is_noise(f):
        return ("noise", f.index)
    nb = tuple(sorted(f.neighbors)) if f.is_angular else f.neighbors
    return (f.type, f.eta, f.rc, f.rs, f.zeta, f.lam, nb, f.rl, f.angle_left, f.angle_right, f.subtype)


@dataclass
class FeatureSet:
    """Element-resolved symmetry functions per centre element, the cutoff function and its α."""

    per_element: dict[str, list[SymmetryFunction]]
    cutoff: str = "polynomial"
    name: str = "featureset"
    meta: dict = field(default_factory=dict)
    cutoff_alpha: float = 0.0

    def __post_init__(self):
        if self.cutoff not in CUTOFFS:
            raise ConfigError(f"cutoff {self.cutoff!r} unknown; allowed: {', '.join(CUTOFFS)}")
        try:
            self.cutoff_alpha = float(self.cutoff_alpha)
        except (TypeError, ValueError):
            raise ConfigError(f"cutoff_alpha must be a number, got {self.cutoff_alpha!r}") from None
        if not 0.0 <= self.cutoff_alpha < 1.0:
            raise ConfigError(f"cutoff_alpha must lie in [0, 1) (inner cutoff α r_c), got {self.cutoff_alpha}")
        elements = set(self.per_element)
        for el, fns in self.per_element.items():
            if not fns:
                raise ConfigError(f"feature set {self.name}: element {el} has no functions")
            for f in fns:
                if is_noise(f) or f.is_weighted:
                    continue
                if not f.neighbors:
                    raise ConfigError(f"feature set {self.name}: {el} function {f.label()} names no neighbours")
                unknown = sorted(set(f.neighbors) - elements)
                if unknown:
                    raise ConfigError(f"feature set {self.name}: {el} function {f.label()} names "
                                      f"{', '.join(unknown)}, not an element of the set {sorted(elements)}")
            seen: dict = {}
            for i, f in enumerate(fns):
                key = _identity(f)
                if key in seen:
                    raise ConfigError(f"feature set {self.name}: element {el} lists {f.label()} twice (functions "
                                      f"{seen[key]} and {i}; an angular function's neighbour pair is unordered)")
                seen[key] = i

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_generic(cls, functions: list[SymmetryFunction], elements: list[str], cutoff: str = "polynomial",
                     name: str = "featureset", meta: dict | None = None,
                     cutoff_alpha: float = 0.0) -> "FeatureSet":
        """Expand neighbour-agnostic functions over elements: radial × each element,
        angular × each unordered element pair (sorted by the order of ``elements``); weighted
        functions stay as they are."""
        pairs = list(itertools.combinations_with_replacement(elements, 2))
        resolved = []
        for f in functions:
            if f.neighbors or f.is_weighted:
                resolved.append(f)
            elif f.is_angular:
                resolved += [SymmetryFunction(**{**asdict(f), "neighbors": p}) for p in pairs]
            else:
                resolved += [SymmetryFunction(**{**asdict(f), "neighbors": (e,)}) for e in elements]
        return cls({el: list(resolved) for el in elements}, cutoff=cutoff, name=name, meta=meta or {},
                   cutoff_alpha=cutoff_alpha)

    @classmethod
    def from_dict(cls, d: dict, elements: list[str] | None = None, source: str = "feature set") -> "FeatureSet":
        allowed = {"name", "cutoff", "cutoff_alpha", "elements", "functions", "per_element", "description",
                   "reference"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{source}: unknown key {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        name = d.get("name", Path(source).stem)
        cutoff = d.get("cutoff", "polynomial")
        alpha = d.get("cutoff_alpha", 0.0)
        meta = {k: d[k] for k in ("description", "reference") if k in d}
        if "per_element" in d:
            per = {el: [function_from_dict(f, f"{source}: per_element.{el}[{i}]") for i, f in enumerate(fns)]
                   for el, fns in d["per_element"].items()}
            fs = cls(per, cutoff=cutoff, name=name, meta=meta, cutoff_alpha=alpha)
            if elements is not None and sorted(fs.elements) != sorted(elements):
                raise ConfigError(f"{source}: feature set elements {fs.elements} differ from the data's {elements}")
            return fs
        if "functions" not in d:
            raise ConfigError(f"{source}: needs 'functions' (generic) or 'per_element' (resolved)")
        els = elements or d.get("elements")
        if not els:
            raise ConfigError(f"{source}: a generic feature set needs elements (from the data or 'elements:')")
        fns = [SymmetryFunction.from_dict(f, f"{source}: functions[{i}]") for i, f in enumerate(d["functions"])]
        return cls.from_generic(fns, list(els), cutoff=cutoff, name=name, meta=meta, cutoff_alpha=alpha)

    # ------------------------------------------------------------------ views
    @property
    def elements(self) -> list[str]:
        return list(self.per_element)

    @property
    def cutoff_radius(self) -> float:
        return max((f.rc for fns in self.per_element.values() for f in fns if not is_noise(f)), default=0.0)

    @property
    def has_noise(self) -> bool:
        """True if some element has :class:`NoiseFeature` inputs (training data only)."""
        return any(is_noise(f) for fns in self.per_element.values() for f in fns)

    def n_features(self, element: str) -> int:
        return len(self.per_element[element])

    def labels(self, element: str) -> list[str]:
        return [f.label() for f in self.per_element[element]]

    def subset(self, keep: dict[str, list[int]], name: str | None = None) -> "FeatureSet":
        """A feature set with only the given function indices per element (order kept)."""
        per = {el: [self.per_element[el][i] for i in sorted(idx)] for el, idx in keep.items()}
        return FeatureSet(per, cutoff=self.cutoff, name=name or f"{self.name}-subset", meta=dict(self.meta),
                          cutoff_alpha=self.cutoff_alpha)

    def _cutoff_dict(self) -> dict:
        """``cutoff`` and, when not 0, ``cutoff_alpha`` (so α = 0 sets keep their old YAML and hash)."""
        return {"cutoff": self.cutoff, **({"cutoff_alpha": self.cutoff_alpha} if self.cutoff_alpha else {})}

    def to_dict(self) -> dict:
        return {"name": self.name, **self._cutoff_dict(), **self.meta,
                "per_element": {el: [f.to_dict() for f in fns] for el, fns in self.per_element.items()}}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def content_hash(self) -> str:
        """sha256 of what determines the numbers (cutoff and functions; not name or notes)."""
        core = {**self._cutoff_dict(),
                "per_element": {el: [f.to_dict() for f in fns] for el, fns in self.per_element.items()}}
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_summaries() -> list[dict]:
    """Per preset: ``name``, ``n_functions``, ``n_radial`` (per neighbour element or pair),
    ``rc`` (largest cutoff), ``cutoff`` (function) and ``reference`` (its source or description)."""
    out = []
    for name in preset_names():
        data = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
        fns = data.get("functions") or []
        out.append({"name": name, "n_functions": len(fns), "n_radial": sum(f.get("type") == "radial" for f in fns),
                    "rc": max((float(f["rc"]) for f in fns), default=float("nan")),
                    "cutoff": data.get("cutoff", "polynomial"),
                    "reference": data.get("reference") or data.get("description") or ""})
    return out


def load_featureset(spec: str | Path | dict, elements: list[str] | None = None) -> FeatureSet:
    """A feature set from a preset name, a YAML path or a dict (resolved for ``elements``)."""
    if isinstance(spec, dict):
        return FeatureSet.from_dict(spec, elements)
    path = Path(spec)
    if not path.exists():
        preset = PRESET_DIR / f"{spec}.yaml"
        if not preset.exists():
            raise ConfigError(f"feature set {spec!r} is neither a file nor a preset; presets: {', '.join(preset_names())}")
        path = preset
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return FeatureSet.from_dict(data, elements, source=str(path))


def grid(elements: list[str], rc: float, n_radial: int = 8, n_shifted: int = 8, r_min: float | None = None,
         zetas=(1, 2, 4, 16), lambdas=(-1, 1), angular_etas=None, angular_type: str = "angular_narrow",
         cutoff: str = "polynomial", name: str = "grid", cutoff_alpha: float = 0.0) -> FeatureSet:
    """A grid feature set in the style of Imbalzano et al. / n2p2's generator.

    Radial: ``n_radial`` centred functions (r_s = 0) with widths geometric between r_c/2
    and ``r_min`` (default r_c/8) — η = 1/(2σ²) — plus ``n_shifted`` shifted functions with
    r_s evenly spaced in [r_min, r_c) and η set by the spacing. Angular: every combination of
    ``zetas`` × ``lambdas`` × ``angular_etas`` (default: one wide Gaussian η = 1/(2(r_c/2)²)).
    """
    import numpy as np

    r_min = r_min if r_min is not None else rc / 8
    fns: list[SymmetryFunction] = []
    if n_radial:
        sig = np.geomspace(rc / 2, r_min, n_radial)
        fns += [SymmetryFunction("radial", eta=float(1 / (2 * s * s)), rc=rc) for s in sig]
    if n_shifted:
        rs = np.linspace(r_min, rc, n_shifted, endpoint=False)
        dr = rs[1] - rs[0] if n_shifted > 1 else rc - r_min
        fns += [SymmetryFunction("radial", eta=float(1 / (2 * dr * dr)), rs=float(r), rc=rc) for r in rs]
    etas = angular_etas if angular_etas is not None else [1 / (2 * (rc / 2) ** 2)]
    for eta, zeta, lam in itertools.product(etas, zetas, lambdas):
        fns.append(SymmetryFunction(angular_type, eta=float(eta), zeta=float(zeta), lam=float(lam), rc=rc))
    return FeatureSet.from_generic(fns, elements, cutoff=cutoff, name=name, cutoff_alpha=cutoff_alpha,
                                   meta={"description": f"generated grid, rc={rc}"})
