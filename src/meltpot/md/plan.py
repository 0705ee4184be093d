"""From a validated config (``md`` section) to a rendered protocol in a run folder.

``md.run`` holds what every protocol shares (structure size, pressure, melt, output
intervals), ``md.protocols.<name>`` each protocol's own keys, ``md.timestep``/``tdamp``/
``pdamp`` the integrator. Overrides (``KEY=VALUE``, the value parsed as YAML) name a key of
the protocol's section (``T=1100``), of ``md.run`` (``n_atoms=256``) or of ``md``
(``timestep=0.001``), or a dotted path below ``md`` (``protocols.nvt.T=1100``); the
changed config is validated again.

Seeds: the velocity seed of replica ``k`` is ``derive_seed(seed, "md", protocol, "replica",
k)``; the structure (alloy decoration) seed does not depend on the replica, so replicas
differ only in their velocities.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from ..config import validate_config
from ..errors import ConfigError
from ..seeds import derive_seed
from . import protocols as P
from . import structure as S
from .potential import Potential

#: protocols with a rendered LAMMPS script; ``minimize`` runs in-process
SCRIPT_PROTOCOLS = P.PROTOCOLS
ALL_PROTOCOLS = (*P.PROTOCOLS, "minimize")


def _check_name(name: str) -> None:
    if name not in ALL_PROTOCOLS:
        raise ConfigError(f"unknown MD protocol {name!r}; allowed: {', '.join(ALL_PROTOCOLS)}")


def apply_overrides(cfg: Mapping, name: str, overrides: Sequence[str] = ()) -> dict:
    """A validated copy of ``cfg`` with ``KEY=VALUE`` overrides applied (see module doc)."""
    _check_name(name)
    if not overrides:
        return dict(cfg)
    raw = copy.deepcopy(dict(cfg))
    md = raw.setdefault("md", {})
    for item in overrides:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. T=1100")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML: {exc}") from None
        if "." in key:
            path = key.split(".")
        elif key in md.get("protocols", {}).get(name, {}) or key in _schema_keys("protocols", name):
            path = ["protocols", name, key]
        elif key in _schema_keys("run"):
            path = ["run", key]
        else:
            path = [key]
        node = md
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: md.{'.'.join(path[:-1])} is not a mapping")
        node[path[-1]] = value
    return validate_config(raw, source=f"config with overrides {list(overrides)}")


def _schema_keys(*path: str) -> set[str]:
    from ..config import load_schema

    node = load_schema()["properties"]["md"]
    for part in path:
        node = node.get("properties", {}).get(part, {})
    return set(node.get("properties", {}))


def replica_seed(cfg: Mapping, name: str, replica: int = 0) -> int:
    """Velocity seed of replica ``replica`` of protocol ``name``."""
    return derive_seed(cfg.get("seed", 2026), "md", name, "replica", int(replica))


def settings(cfg: Mapping, name: str, replica: int = 0, melt: bool = False) -> P.Settings:
    """The :class:`~meltpot.md.protocols.Settings` of a protocol run."""
    md, run = cfg["md"], cfg["md"]["run"]
    return P.Settings(units=cfg.get("units", "metal"), timestep=md["timestep"], tdamp=md.get("tdamp"),
                      pdamp=md.get("pdamp"), P=run["P"], barostat=run["barostat"],
                      seed=replica_seed(cfg, name, replica), thermo_every=run["thermo_every"],
                      dump_every=run["dump_every"], pressure_every=run["pressure_every"],
                      dump_velocities=run["dump_velocities"], melt=melt,
                      melt_temperature=run["melt_temperature"], melt_steps=run["melt_steps"],
                      cool_steps=run["cool_steps"])


def starting_structure(cfg: Mapping, name: str):
    """ASE atoms the protocol starts from (see :mod:`meltpot.md.structure`)."""
    run = cfg["md"]["run"]
    sec = cfg["md"]["protocols"].get(name, {})
    elements = list(cfg["elements"])
    comp = run.get("composition")
    if comp is not None:
        unknown = sorted(set(comp) - set(elements))
        if unknown:
            raise ConfigError(f"md.run.composition names {unknown}, not in elements {elements}")
    if len(elements) > 1 and comp is None:
        raise ConfigError(f"md.run.composition is needed: the run has several elements {elements}")
    seed = derive_seed(cfg.get("seed", 2026), "md", name, "structure")
    if run.get("structure_file") and name != "two_phase":
        base = Path(cfg.get("_base_dir", "."))
        path = Path(run["structure_file"])
        return S.read_structure(path if path.is_absolute() else base / path, elements)
    vol = S.volume_per_atom(elements, comp, density=run.get("density"), volume=run.get("volume_per_atom"),
                            units=cfg.get("units", "metal"), masses=cfg["reference"].get("masses"))
    if name == "two_phase":
        return S.cells_structure(sec["phase"], sec["cells"], vol, elements, comp, seed)
    phase = sec.get("phase", "liquid")
    return S.lattice_structure(phase, run["n_atoms"], vol, elements, comp, seed)


def render(cfg: Mapping, name: str, replica: int = 0, potential: Potential | None = None) -> P.Script:
    """The rendered script of protocol ``name`` (not minimize) for a validated config."""
    _check_name(name)
    if name not in SCRIPT_PROTOCOLS:
        raise ConfigError(f"protocol {name!r} has no LAMMPS script (it runs in-process)")
    pot = potential if potential is not None else Potential.from_reference(cfg)
    sec = cfg["md"]["protocols"][name]
    where = f"md.protocols.{name}"
    melt = sec.get("phase") == "liquid"
    st = settings(cfg, name, replica, melt=melt)
    try:
        if name in ("nvt", "npt", "nph"):
            kw = dict(T=sec["T"], equilibration_steps=sec["equilibration_steps"],
                      production_steps=sec["production_steps"])
            if name == "nvt":
                volume = sec["volume"]
                if volume == "fixed" and cfg["md"]["run"].get("density") is None and \
                        cfg["md"]["run"].get("volume_per_atom") is None and not cfg["md"]["run"].get("structure_file"):
                    raise ConfigError("volume: fixed needs md.run.density, volume_per_atom or structure_file")
                return P.render_nvt(st, pot, volume=volume, **kw)
            return (P.render_npt if name == "npt" else P.render_nph)(st, pot, **kw)
        if name == "melt_quench":
            return P.render_melt_quench(st, pot, sec["temperatures"], sec["equilibration_steps"],
                                        sec["production_steps"])
        if name == "ramp":
            return P.render_ramp(st, pot, sec["T_start"], sec["T_stop"], sec["rate"], sec["equilibration_steps"])
        if name == "two_phase":
            return P.render_two_phase(st, pot, sec["T"], sec["crystal_steps"], sec["melt_steps"],
                                      sec["liquid_steps"], sec["production_steps"], sec["ensemble"])
        return P.render_nucleation(st, pot, sec["T"], sec["quench_steps"], sec["production_steps"],
                                   sec.get("halt_pe_drop"), sec.get("halt_every"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def prepare(cfg: Mapping, name: str, out_dir: str | Path, replica: int = 0,
            potential: Potential | None = None) -> tuple[P.Script, Path]:
    """Render protocol ``name`` into ``out_dir``: writes ``structure.data`` and
    ``in.lammps``; returns the script and the input path."""
    pot = potential if potential is not None else Potential.from_reference(cfg)
    script = render(cfg, name, replica, pot)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atoms = starting_structure(cfg, name)
    S.write_data(atoms, out / "structure.data", pot.elements, pot.units)
    script.params.update(n_atoms=len(atoms), replica=int(replica))
    path = out / "in.lammps"
    path.write_text(script.text)
    return script, path
