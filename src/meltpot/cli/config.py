"""``meltpot config check``, ``meltpot units``: validate a config, list what it samples."""

from __future__ import annotations

from .options import command, group


def add_commands(sub) -> None:
    csub = group(sub, "config", "configuration tools")
    cc = command(csub, "check", "validate a config and list what it samples")
    cc.add_argument("config")
    cc.set_defaults(func=cmd_config_check)

    u = command(sub, "units", "list sampling unit ids and import ids of a config")
    u.add_argument("config")
    u.set_defaults(func=cmd_units)


def cmd_config_check(args) -> int:
    from ..config import config_hash, load_config
    from ..sampling.grid import expand_states

    cfg = load_config(args.config)
    units = expand_states(cfg)
    print(f"{args.config}: valid (run_id {cfg['run_id']}, sha256 {config_hash(cfg)[:12]})")
    for u in units:
        print(f"  {u.kind:8s} {u.unit_id}: {len(u.steps)} state(s), {u.phase}, ~{u.n_atoms} atoms")
    for imp in cfg["imports"]:
        print(f"  import   {imp['id']}: {imp['path']}")
    return 0


def cmd_units(args) -> int:
    """Print the sampling unit ids and import ids (one per line), for workflows."""
    from ..config import load_config
    from ..sampling.grid import expand_states

    cfg = load_config(args.config)
    for u in expand_states(cfg):
        print(u.unit_id)
    for imp in cfg["imports"]:
        print(imp["id"])
    return 0
