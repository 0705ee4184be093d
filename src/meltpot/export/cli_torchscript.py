"""``meltpot export torchscript MODEL --out FILE.pt [--cache CACHE.h5]``: the LAMMPS plugin's model file.

The file (format version 2) holds the scripted networks with their feature scaling, the
descriptor code (the torch route of ``LammpsPotential.forward``) and the function table of the
compiled symmetry-function kernel that the plugin runs. With ``--cache`` the training split's
feature range goes into the file and the plugin counts extrapolating atoms; without it the plugin
warns once that extrapolation is not checked. Files of format version 1 (before the kernel) are
refused by the plugin: export them again with this command.
"""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    """Register ``torchscript`` on the ``meltpot export`` sub-parser group."""
    p = subparsers.add_parser("torchscript", help="TorchScript file for the LAMMPS pair style meltpot (plugin)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", help="meltpot model file (.pt, from meltpot train / select), or the chosen.json of "
                                 "`meltpot select path` (its chosen λ's retrained model)")
    p.add_argument("--out", required=True, help="TorchScript file to write")
    p.add_argument("--cache", help="descriptor cache holding the model's features: its training-split min/max "
                                   "become the extrapolation range")
    p.set_defaults(func=cmd_export_torchscript)


def resolve_model_path(spec: str) -> str:
    """A model file, or for a ``chosen.json`` of ``meltpot select path`` the retrained model of its λ."""
    from pathlib import Path

    from ..errors import MeltpotError

    path = Path(spec)
    if path.suffix != ".json":
        return spec
    import json

    try:
        step = int(json.loads(path.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MeltpotError(f"{path}: not a chosen.json of `meltpot select path` ({exc})") from exc
    model = path.parent / f"lambda_{step:02d}" / "retrained.pt"
    if not model.exists():
        raise MeltpotError(f"{path} chose λ step {step}, but {model} does not exist")
    return str(model)


def cmd_export_torchscript(args) -> int:
    from ..model.modelfile import load_model
    from .ranges import training_stats
    from .torchscript import write_torchscript

    model = load_model(resolve_model_path(args.model))
    lo = hi = None
    if args.cache:
        stats = training_stats(model, args.cache)
        lo = {el: s["min"] for el, s in stats.items()}
        hi = {el: s["max"] for el, s in stats.items()}
    path = write_torchscript(model, args.out, lo, hi)
    print(f"wrote {path} ({model.descriptor.n_union} symmetry functions, units {model.units}); in LAMMPS "
          f"(after `meltpot plugin build`):\n"
          f"  units {model.units}\n  plugin load <meltpot.so>\n  pair_style meltpot {path} device cpu\n"
          f"  pair_coeff * * {' '.join(model.elements)}")
    return 0
