"""``meltpot plugin build``: compile (or find in the cache) the LAMMPS pair-style plugin (:mod:`meltpot.plugin`)."""

from __future__ import annotations

from .options import command, group


def add_commands(sub) -> None:
    psub = group(sub, "plugin", "the LAMMPS pair style meltpot (C++ plugin)")
    b = command(psub, "build", "build meltpot.so against the installed LAMMPS and torch (cached); prints its path")
    b.add_argument("--out-dir", help="cache folder (default $MELTPOT_PLUGIN_DIR or ~/.cache/meltpot/plugin)")
    b.add_argument("--force", action="store_true", help="rebuild even when a cached build exists")
    b.set_defaults(func=cmd_build)


def cmd_build(args) -> int:
    from ..plugin.build import build_plugin

    print(build_plugin(args.out_dir, force=args.force))
    return 0
