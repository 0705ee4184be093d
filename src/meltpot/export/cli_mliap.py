"""``meltpot export mliap MODEL --out FILE.pkl``: a model file (or a selection's chosen.json) →
LAMMPS ML-IAP unified pickle (:mod:`meltpot.export.mliap`), printing the LAMMPS lines that
use it."""

from __future__ import annotations

from pathlib import Path


def cmd_export_mliap(args) -> int:
    from .cli_torchscript import resolve_model_path
    from .mliap import lammps_lines, read_mliap, write_mliap

    obj = write_mliap(resolve_model_path(args.model), args.out, device=args.device)
    back = read_mliap(args.out)              # the file loads as LAMMPS will load it
    print(f"written {args.out}: elements {' '.join(back.element_types)}, cutoff {obj.cutoff:g} "
          f"(rcutfac {obj.rcutfac:g}), {obj.nparams} parameters, units {obj.units}")
    print("LAMMPS (KOKKOS + ML-IAP + PYTHON build; meltpot, torch and cupy importable from its Python):")
    for line in lammps_lines(Path(args.out), obj.element_types, obj.units):
        print(f"  {line}")
    print("  (pair_coeff: the element of atom type 1, 2, …, in any order, by name)")
    return 0


def add_commands(subparsers) -> None:
    """Register ``mliap`` on the ``meltpot export`` sub-parser group."""
    p = subparsers.add_parser("mliap", help="LAMMPS ML-IAP unified pickle (pair_style mliap unified; "
                                            "KOKKOS/GPU builds)")
    p.add_argument("model", help="meltpot model file (.pt), or the chosen.json of `meltpot select path`")
    p.add_argument("--out", required=True, help="output pickle (.pkl; LAMMPS torch.loads .pt names)")
    p.add_argument("--device", help="torch device for the model inside LAMMPS (default: cuda when LAMMPS "
                                    "passes GPU arrays, else cpu)")
    p.set_defaults(func=cmd_export_mliap)
