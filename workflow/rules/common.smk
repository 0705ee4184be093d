# Config loading and validation (before any rule runs), run folder and input functions.
import yaml
from pathlib import Path

from meltpot.config import validate_config
from meltpot.sampling.grid import expand_states



def _merge(base, over):
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


if "elements" not in config:  # no full config given: the default plus any --config overrides
    _default = yaml.safe_load(Path(workflow.basedir, "config", "config.yaml").read_text())
    _merged = _merge(_default, dict(config))
    config.clear()
    config.update(_merged)

# fails here, naming the key, if the config is invalid: no rule has run yet
CFG = validate_config(config, source="snakemake config")
CFG["_base_dir"] = str(Path(workflow.basedir).resolve())
RUN = f"results/{CFG['run_id']}"
UNITS = [u.unit_id for u in expand_states(CFG)]
IMPORTS = [imp["id"] for imp in CFG["imports"]]
FRAME_FILES = [f"{RUN}/frames/{u}.extxyz" for u in UNITS] + [f"{RUN}/frames/import_{i}.extxyz" for i in IMPORTS]


def yaml_text(cfg):
    return yaml.safe_dump(cfg, sort_keys=False)
