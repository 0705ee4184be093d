"""``meltpot plugin build``: compile (or find in the cache) the LAMMPS pair-style plugin."""

from __future__ import annotations


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("plugin", help="the LAMMPS pair style meltpot (C++ plugin)")
    psub = p.add_subparsers(dest="plugin_command", required=True)
    b = psub.add_parser("build", help="build meltpot.so against the installed LAMMPS and torch (cached); prints its path")
    b.add_argument("--out-dir", help="cache folder (default $MELTPOT_PLUGIN_DIR or ~/.cache/meltpot/plugin)")
    b.add_argument("--force", action="store_true", help="rebuild even when a cached build exists")
    b.set_defaults(func=cmd_plugin_build)


def cmd_plugin_build(args) -> int:
    from .build import build_plugin

    print(build_plugin(args.out_dir, force=args.force))
    return 0
