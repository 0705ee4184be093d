"""Load and validate run configurations (YAML) before any work starts.

The JSON Schema in ``schema/config.schema.yaml`` (also ``config/schema.yaml``, usable with
Snakemake's ``validate``) documents every key. :func:`load_config` applies its defaults,
validates, then runs the checks a schema cannot express (unique state ids, compositions
over known elements, hold-out states that exist, split fractions that add up to 1, a
descriptor feature set that loads for the elements). Every error names the key and, where
there is a closed set, the allowed values.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml

from .errors import ConfigError

SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.yaml"


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _key_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _resolve(schema: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"].split("/")[-1]
        node = schema["$defs"][ref]
    return node


def _subschema(schema: dict, path) -> dict:
    """The schema node that describes the value at ``path`` (best effort, for messages)."""
    node = schema
    for part in path:
        node = _resolve(schema, node)
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return _resolve(schema, node)


def _message(schema: dict, err: jsonschema.ValidationError, source: str) -> str:
    where = _key_path(err.absolute_path)
    if err.validator == "additionalProperties":
        node = _subschema(schema, err.absolute_path)
        allowed = sorted(node.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        keys = ", ".join(f"{where}.{k}" if err.absolute_path else k for k in extra)
        return f"{source}: unknown key {keys}; allowed keys here: {', '.join(allowed)}"
    if err.validator == "enum":
        return f"{source}: {where} = {err.instance!r} is not allowed; allowed values: {', '.join(map(str, err.validator_value))}"
    if err.validator == "required":
        return f"{source}: {where}: {err.message}"
    if err.validator == "type":
        return f"{source}: {where} = {err.instance!r} has the wrong type; expected {err.validator_value}"
    return f"{source}: {where}: {err.message}"


def _apply_defaults(schema: dict, node: dict, value):
    """Fill ``default`` values of the schema into ``value`` (in place), recursively."""
    node = _resolve(schema, node)
    if isinstance(value, dict):
        for key, sub in node.get("properties", {}).items():
            sub_r = _resolve(schema, sub)
            if key not in value and "default" in sub_r:
                value[key] = copy.deepcopy(sub_r["default"])
            if key in value:
                _apply_defaults(schema, sub_r, value[key])
    elif isinstance(value, list) and "items" in node:
        for item in value:
            _apply_defaults(schema, node["items"], item)


def validate_config(config: Mapping, source: str = "config", base_dir: str | Path | None = None) -> dict:
    """Validated copy of ``config`` with defaults filled in. Raises ConfigError.

    ``base_dir``: folder that relative paths in the config (a feature-set file) are relative
    to; default the config's ``_base_dir`` key, else the working directory.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: the configuration must be a mapping of keys, got {type(config).__name__}")
    schema = load_schema()
    cfg = copy.deepcopy(dict(config))
    private = {k: cfg.pop(k) for k in list(cfg) if str(k).startswith("_")}
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        # the most specific error first: additionalProperties/enum errors name the key
        raise ConfigError(_message(schema, errors[0], source))
    _apply_defaults(schema, schema, cfg)
    _check_semantics(cfg, source, base_dir if base_dir is not None else private.get("_base_dir"))
    cfg.update(private)
    return cfg


def _check_semantics(cfg: dict, source: str, base_dir=None) -> None:
    elements = cfg["elements"]
    samp = cfg["sampling"]

    def check_comp(comp, where):
        if comp is None:
            return
        unknown = sorted(set(comp) - set(elements))
        if unknown:
            raise ConfigError(f"{source}: {where}.composition names {', '.join(unknown)}, not in elements {elements}")
        total = sum(comp.values())
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"{source}: {where}.composition fractions add up to {total:g}, not 1")

    def check_volume(entry, where, keys=("P", "density", "number_density")):
        given = [k for k in keys if k in entry]
        if len(given) != 1:
            raise ConfigError(f"{source}: {where} needs exactly one of P (NPT), density or number_density "
                              f"(NVT); got {given or 'none'}")
        if "density" in given and cfg["units"] == "lj":
            raise ConfigError(f"{source}: {where}.density is a mass density (g/cm³) and needs units: metal; "
                              "use number_density in lj units")

    for i, st in enumerate(samp["states"]):
        check_comp(st.get("composition"), f"sampling.states[{i}]")
        check_volume(st, f"sampling.states[{i}]")
    for i, g in enumerate(samp["grid"]):
        for comp in g.get("composition", []):
            check_comp(comp, f"sampling.grid[{i}]")
        check_volume(g, f"sampling.grid[{i}]")
    for i, b in enumerate(samp["branches"]):
        check_comp(b.get("composition"), f"sampling.branches[{i}]")
        check_volume(b, f"sampling.branches[{i}]", keys=("P", "density_table"))
    if len(elements) > 1:
        for kind in ("states", "branches"):
            for i, st in enumerate(samp[kind]):
                if "composition" not in st:
                    raise ConfigError(f"{source}: sampling.{kind}[{i}] needs a composition: "
                                      f"the run has several elements {elements}")
    needs_melt = any(st["phase"] == "liquid" for st in samp["states"]) or \
        any("liquid" in g["phase"] for g in samp["grid"]) or \
        any(b["phase"] == "liquid" for b in samp["branches"])
    if needs_melt and "melt_temperature" not in samp:
        raise ConfigError(f"{source}: sampling.melt_temperature is required when a liquid state or branch is sampled")

    # state ids: unique over states, grid, branch steps and imports
    from .sampling.grid import expand_states  # local import: grid imports this module

    units = expand_states(cfg)
    ids = [sid for u in units for sid in u.state_ids] + [imp["id"] for imp in cfg["imports"]]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise ConfigError(f"{source}: state ids must be unique; repeated: {', '.join(dup)}")
    if not ids:
        raise ConfigError(f"{source}: nothing to sample or import: give sampling.states, sampling.grid, "
                          "sampling.branches or imports")
    split = cfg["split"]
    total = split["train"] + split["validation"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"{source}: split.train + split.validation + split.test = {total:g}, must be 1")
    missing = sorted(set(split["holdout_states"]) - set(ids))
    if missing:
        raise ConfigError(f"{source}: split.holdout_states names unknown states {', '.join(missing)}; "
                          f"known: {', '.join(ids)}")
    if cfg["imports"] and cfg["units"] != "metal":
        raise ConfigError(f"{source}: imports are converted to eV and Å and need units: metal")
    ref = cfg["reference"]
    if ref["engine"] == "lammps" and cfg["units"] == "lj" and "masses" not in ref:
        ref["masses"] = {el: 1.0 for el in elements}
    _check_engine(ref, "reference", source, cfg)
    if "sampler" in cfg["labelling"]:
        _check_engine(cfg["labelling"]["sampler"], "labelling.sampler", source, cfg)
    from .sampling.labelling import check_labelling

    check_labelling(cfg, source)
    from .active.settings import check_active

    check_active(cfg, source)
    _check_melting(cfg, source)
    if ref["engine"] == "cp2k" and _md_driver(ref) == "native":
        from .reference.cp2k_md import check_config

        check_config(cfg, source)
    # the feature set must load for the run's elements (reads one small YAML file)
    spec = cfg["descriptors"]["featureset"]
    try:
        load_run_featureset(cfg, base_dir=base_dir)
    except ConfigError as exc:
        raise ConfigError(f"{source}: descriptors.featureset = {spec!r}: {exc}") from None


def _check_melting(cfg: dict, source: str) -> None:
    """melting_md: ramps that go the way their name says, two-phase temperatures below the
    temperature that melts the upper half, something to run when enabled."""
    mlt = cfg["melting_md"]
    for key, up in (("ramp_heat", True), ("ramp_cool", False)):
        pair = mlt[key]
        if pair is not None and not (pair[0] < pair[1] if up else pair[0] > pair[1]):
            raise ConfigError(f"{source}: melting_md.{key} = {pair}: T_start must be {'below' if up else 'above'} "
                              f"T_stop for a {'heating' if up else 'cooling'} ramp")
    if not mlt["enabled"]:
        return
    melt_T = cfg["md"]["run"]["melt_temperature"]
    hot = [T for T in mlt["temperatures"] if T >= melt_T]
    if hot:
        raise ConfigError(f"{source}: melting_md.temperatures {hot} are not below md.run.melt_temperature = {melt_T:g}, "
                          "which melts the liquid half of the two-phase runs")
    if not mlt["temperatures"] and mlt["ramp_heat"] is None and mlt["ramp_cool"] is None:
        raise ConfigError(f"{source}: melting_md is enabled with no temperatures and no ramps: nothing to run")


def check_lammps_stages(cfg: dict, source: str = "config") -> None:
    """The workflow's LAMMPS stages need a LAMMPS reference (or a LAMMPS labelling sampler):
    ConfigError before any work when one of them is on without it. (Not part of
    :func:`validate_config`: a config used only for sampling with, e.g., EMT is valid.)"""
    needs = [k for k in ("validation_md", "nucleation_md", "transport_md")
             if cfg[k].get("enabled") and (k == "validation_md" or cfg[k].get("potential") == "reference")]
    if cfg["melting_md"]["enabled"] and "reference" in cfg["melting_md"]["potentials"]:
        needs.append("melting_md")
    if needs:
        from .md.potential import lammps_reference

        try:
            lammps_reference(cfg)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {', '.join(needs)}: {exc}") from None


def _md_driver(block: dict) -> str:
    from .reference.dft import DftSettings

    return DftSettings.from_config(block["engine"], block.get("dft")).md_driver


def _check_engine(block: dict, where: str, source: str, cfg: dict) -> None:
    """The typed DFT settings of an engine block (GPAW/CP2K), before any work starts."""
    engine = block["engine"]
    if engine in ("gpaw", "cp2k"):
        from .reference.dft import DftSettings

        if cfg["units"] != "metal":
            raise ConfigError(f"{source}: {where}.engine {engine} needs units: metal")
        try:
            DftSettings.from_config(engine, block.get("dft"), where=f"{where}.dft").check_elements(cfg["elements"])
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    elif "dft" in block:
        raise ConfigError(f"{source}: {where}.dft is for engine gpaw or cp2k, not {engine}")


def resolve_featureset_spec(spec: str, base_dir: str | Path | None = None) -> str:
    """A feature-set spec as a loadable path or preset name: an existing file relative to
    ``base_dir`` (the config's folder) first, then relative to the working directory, then
    a preset name (``meltpot descriptors presets``)."""
    path = Path(spec).expanduser()
    if not path.is_absolute() and base_dir is not None and (Path(base_dir) / path).is_file():
        return str(Path(base_dir) / path)
    return str(path) if path.is_file() else spec


def load_run_featureset(cfg: Mapping, spec: str | None = None, base_dir: str | Path | None = None):
    """The run's :class:`~meltpot.descriptors.featureset.FeatureSet` (``descriptors.featureset``,
    or ``spec``), resolved for the config's elements. Raises ConfigError."""
    from .descriptors.featureset import load_featureset

    spec = cfg["descriptors"]["featureset"] if spec is None else spec
    base = base_dir if base_dir is not None else cfg.get("_base_dir")
    return load_featureset(resolve_featureset_spec(spec, base), list(cfg["elements"]))


def load_config(path: str | Path) -> dict:
    """Read a YAML config file and validate it (see :func:`validate_config`)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    raw = raw if raw is not None else {}
    base_dir = raw.get("_base_dir", str(path.resolve().parent)) if isinstance(raw, Mapping) else None
    cfg = validate_config(raw, source=str(path), base_dir=base_dir)
    cfg.setdefault("_base_dir", str(path.resolve().parent))
    return cfg


def config_hash(cfg: Mapping) -> str:
    """Content hash (sha256, hex) of a config, independent of key order; private keys excluded."""
    clean = {k: v for k, v in cfg.items() if not str(k).startswith("_")}
    blob = json.dumps(clean, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
