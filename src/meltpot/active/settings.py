"""The ``active_learning`` config block: its checks and the exploration jobs it expands to.

An exploration entry names an MD protocol of :mod:`meltpot.md.protocols` and lists of state
variables; it expands to one job per combination:

* ``nvt`` / ``npt``: ``T`` × ``P`` (K, GPa or reduced), ``steps`` of production after
  ``equilibration_steps``; ``phase: liquid`` melts the lattice first (at ``melt_temperature``);
* ``ramp``: heating of a crystal (``T_start < T_stop``) or quenching of a liquid (``phase:
  liquid``, ``T_start > T_stop``) over ``steps``, for each ``P``.

A job starts from a lattice of ``n_atoms`` (a liquid melted at ``melt_temperature`` by the
committee itself), or, with ``start: <state id>``, from a frame of that state of the initial data
(no melting): a young committee cannot melt a crystal at 2 000 K, and its failure in the first
50 fs teaches it nothing.

A job's id is the entry's id, with ``_T<T>`` and ``_P<P>`` added for each list of more than one
value. The deviation and the exploration's dump (every stage, melting included) share one
interval (``exploration.every`` steps), so every dumped frame has its deviation line.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass
class ExplorationJob:
    """One exploration MD run: the protocol and its ``md`` overrides (dotted paths below ``md``)."""

    id: str
    protocol: str
    phase: str
    T: float            # the target (npt/nvt) or the final temperature (ramp)
    P: float
    overrides: dict = field(default_factory=dict)
    start: str | None = None     # a state id of the initial data to start from (None: a lattice)

    def override_args(self) -> list[str]:
        """``KEY=VALUE`` strings for :func:`meltpot.md.plan.apply_overrides`."""
        return [f"{k}={v}" for k, v in self.overrides.items()]


def _values(x) -> list[float]:
    return [float(v) for v in (x if isinstance(x, list) else [x])]


def _tag(prefix: str, value: float) -> str:
    return f"_{prefix}{value:g}".replace("-", "m")


def exploration_jobs(cfg: dict) -> list[ExplorationJob]:
    """Every exploration job of a validated config, in the order of the entries."""
    al = cfg["active_learning"]
    ex = al["exploration"]
    dt = cfg["md"]["timestep"]
    jobs = []
    for entry in ex["jobs"]:
        protocol, phase = entry["protocol"], entry.get("phase", "liquid")
        Ps = _values(entry.get("P", 0.0))
        # the exploration writes its own dump over all stages (explore.py): no production dump
        common = {"run.n_atoms": ex["n_atoms"], "run.dump_every": 0, "run.thermo_every": ex["every"],
                  "run.pressure_every": 0, "run.melt_steps": ex["melt_steps"], "run.cool_steps": ex["cool_steps"],
                  "run.melt_temperature": ex["melt_temperature"], f"protocols.{protocol}.phase": phase,
                  f"protocols.{protocol}.equilibration_steps": entry.get("equilibration_steps", 0)}
        start = entry.get("start")
        if start:          # from a frame of the data: nothing to melt
            common.update({"run.melt_steps": 0, "run.cool_steps": 0})
        if protocol == "ramp":
            T0, T1 = float(entry["T_start"]), float(entry["T_stop"])
            rate = abs(T1 - T0) / (int(entry["steps"]) * dt)
            for P in Ps:
                jid = entry["id"] + (_tag("P", P) if len(Ps) > 1 else "")
                over = {**common, "run.P": P, "protocols.ramp.T_start": T0, "protocols.ramp.T_stop": T1,
                        "protocols.ramp.rate": rate}
                jobs.append(ExplorationJob(jid, protocol, phase, T1, P, over, start))
            continue
        Ts = _values(entry["T"])
        for T, P in itertools.product(Ts, Ps):
            jid = entry["id"] + (_tag("T", T) if len(Ts) > 1 else "") + (_tag("P", P) if len(Ps) > 1 else "")
            over = {**common, "run.P": P, f"protocols.{protocol}.T": T,
                    f"protocols.{protocol}.production_steps": int(entry["steps"])}
            if protocol == "nvt":
                over["protocols.nvt.volume"] = "npt_average"
            jobs.append(ExplorationJob(jid, protocol, phase, T, P, over, start))
    return jobs


def check_active(cfg: dict, source: str = "config") -> None:
    """Checks the schema cannot express; raises :class:`ConfigError` naming the key."""
    al = cfg.get("active_learning") or {}
    vmd = cfg.get("validation_md") or {}
    if vmd.get("model") == "active":
        if not al.get("enabled"):
            raise ConfigError(f"{source}: validation_md.model = active needs active_learning.enabled")
        if vmd.get("route") == "mliap":
            raise ConfigError(f"{source}: validation_md.model = active runs a committee: route plugin, not mliap")
    if not al.get("enabled"):
        return
    where = f"{source}: active_learning"
    if not al["trust_lo"] < al["trust_hi"]:
        raise ConfigError(f"{where}.trust_lo = {al['trust_lo']} must be below trust_hi = {al['trust_hi']}")
    ex = al["exploration"]
    if ex["halt_clip"] is not None and (ex["halt_deviation"] is None or not ex["halt_clip"] > ex["halt_deviation"]):
        raise ConfigError(f"{where}.exploration.halt_clip = {ex['halt_clip']} must be above halt_deviation = "
                          f"{ex['halt_deviation']} (a clip at or below it would never let a run stop)")
    if not al["exploration"]["jobs"]:
        raise ConfigError(f"{where}.exploration.jobs is empty: the loop needs at least one MD job")
    for k, entry in enumerate(al["exploration"]["jobs"]):
        at = f"{where}.exploration.jobs[{k}] ({entry['id']})"
        if entry["protocol"] == "ramp":
            missing = [key for key in ("T_start", "T_stop") if key not in entry]
            if missing:
                raise ConfigError(f"{at}: a ramp needs {', '.join(missing)}")
            if entry["T_start"] == entry["T_stop"]:
                raise ConfigError(f"{at}: T_start = T_stop = {entry['T_start']}: nothing to ramp")
        elif "T" not in entry:
            raise ConfigError(f"{at}: protocol {entry['protocol']} needs T (one value or a list)")
    starts = {e["start"] for e in al["exploration"]["jobs"] if e.get("start")}
    if starts and cfg.get("sampling", {}).get("states") is not None and not cfg.get("imports"):
        from ..sampling.grid import expand_states

        known = {sid for u in expand_states(cfg) for sid in u.state_ids}
        unknown = sorted(starts - known)
        if unknown:
            raise ConfigError(f"{where}.exploration.jobs: start state(s) {unknown} are not states of the initial "
                              f"data (sampling: {sorted(known)})")
    ids = [j.id for j in exploration_jobs(cfg)]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{where}.exploration.jobs: job ids {dup} repeat (give the entries other ids)")
    if not cfg["training"]["loss"].get("forces"):
        raise ConfigError(f"{where}: the committee is judged by its forces; set training.loss.forces > 0")


def iteration_name(i: int) -> str:
    """``iter_000``, ``iter_001``, …"""
    return f"iter_{int(i):03d}"
