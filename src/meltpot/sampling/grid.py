"""Expand a config's ``sampling`` block into sampling units.

A *sampling unit* is one continuous MD trajectory written to one file: a single
thermodynamic state, or a quench/heating branch whose steps are states of their own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StateSpec:
    """One thermodynamic state to sample (units of the run: K/GPa/g·cm⁻³ or reduced)."""

    state_id: str
    phase: str
    T: float
    P: float | None = None
    density: float | None = None
    number_density: float | None = None
    equilibration_steps: int = 2000
    production_steps: int = 4000
    sample_every: int = 100
    branch: str = ""

    @property
    def ensemble(self) -> str:
        return "npt" if self.P is not None else "nvt"


@dataclass(frozen=True)
class SamplingUnit:
    """One trajectory: ``kind`` is "state", "quench" or "heating"; ``steps`` in run order."""

    unit_id: str
    kind: str
    phase: str
    n_atoms: int
    composition: dict = field(default_factory=dict)
    barostat: str | None = None
    steps: tuple[StateSpec, ...] = ()
    #: with labelling by single points: this unit's MD runs with the reference itself (AIMD)
    aimd: bool = False

    @property
    def state_ids(self) -> list[str]:
        return [s.state_id for s in self.steps]


def _fmt(x: float) -> str:
    return f"{x:g}".replace("-", "m")


def _state_name(phase: str, T: float, vol_key: str, vol: float, comp: dict | None, units: str) -> str:
    t_unit = "K" if units == "metal" else ""
    parts = [phase, f"T{_fmt(T)}{t_unit}"]
    tag = {"P": "P", "density": "rho", "number_density": "n"}[vol_key]
    parts.append(f"{tag}{_fmt(vol)}")
    if comp:
        parts.append("".join(f"{el}{_fmt(frac)}" for el, frac in sorted(comp.items()) if frac > 0))
    return "_".join(parts)


def _interp_density(table, T: float) -> float:
    pts = sorted(table)
    if len(pts) == 1:
        return pts[0][1]
    ts = [p[0] for p in pts]
    ds = [p[1] for p in pts]
    if T <= ts[0]:
        i = 0
    elif T >= ts[-1]:
        i = len(ts) - 2
    else:
        i = max(k for k in range(len(ts) - 1) if ts[k] <= T)
    t0, t1, d0, d1 = ts[i], ts[i + 1], ds[i], ds[i + 1]
    return d0 + (d1 - d0) * (T - t0) / (t1 - t0)  # linear (extrapolated at the ends)


def expand_states(cfg: dict) -> list[SamplingUnit]:
    """All sampling units of a (validated) config, in config order."""
    samp = cfg["sampling"]
    units = cfg.get("units", "metal")
    defaults = {k: samp.get(k) for k in ("equilibration_steps", "production_steps", "sample_every")}
    out: list[SamplingUnit] = []

    def steps_of(entry):
        return {k: entry.get(k, defaults[k]) for k in defaults}

    def single(entry, vol_key, vol, comp, sid=None):
        sid = sid or _state_name(entry["phase"], entry["T"], vol_key, vol, comp, units)
        st = StateSpec(state_id=sid, phase=entry["phase"], T=float(entry["T"]),
                       **{vol_key: float(vol)}, **steps_of(entry))
        out.append(SamplingUnit(unit_id=sid, kind="state", phase=entry["phase"],
                                n_atoms=entry.get("n_atoms", samp["n_atoms"]),
                                composition=dict(comp or {}), barostat=entry.get("barostat"),
                                steps=(st,), aimd=bool(entry.get("aimd", False))))

    for st in samp.get("states", []):
        vol_key = next(k for k in ("P", "density", "number_density") if k in st)
        single(st, vol_key, st[vol_key], st.get("composition"), st.get("id"))

    for g in samp.get("grid", []):
        vol_key = next(k for k in ("P", "density", "number_density") if k in g)
        comps = g.get("composition", [None])
        for phase, T, vol, comp in itertools.product(g["phase"], g["T"], g[vol_key], comps):
            entry = dict(g, phase=phase, T=T)
            name = _state_name(phase, T, vol_key, vol, comp, units)
            if g.get("id_prefix"):
                name = f"{g['id_prefix']}_{name}"
            single(entry, vol_key, vol, comp, name)

    for b in samp.get("branches", []):
        steps = []
        for T in b["temperatures"]:
            vol = {"P": float(b["P"])} if "P" in b else \
                {("density" if units == "metal" else "number_density"): _interp_density(b["density_table"], T)}
            sid = f"{b['id']}_T{_fmt(T)}{'K' if units == 'metal' else ''}"
            steps.append(StateSpec(state_id=sid, phase=b["phase"], T=float(T), branch=b["id"],
                                   **vol, **steps_of(b)))
        out.append(SamplingUnit(unit_id=b["id"], kind=b["kind"], phase=b["phase"],
                                n_atoms=b.get("n_atoms", samp["n_atoms"]),
                                composition=dict(b.get("composition") or {}),
                                barostat=b.get("barostat"), steps=tuple(steps)))
    return out


def find_unit(cfg: dict, unit_id: str) -> SamplingUnit:
    units = expand_states(cfg)
    for u in units:
        if u.unit_id == unit_id:
            return u
    from ..errors import ConfigError

    raise ConfigError(f"no sampling unit {unit_id!r}; known: {', '.join(u.unit_id for u in units)}")
