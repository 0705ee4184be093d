"""``meltpot export torchscript|mliap|n2p2``: a trained model for LAMMPS or n2p2 (:mod:`meltpot.export`).

* ``torchscript MODEL --out FILE.pt [--cache CACHE.h5]``: the LAMMPS plugin's model file (format
  version 2: the scripted networks with their feature scaling, the descriptor code and the
  function table of the compiled symmetry-function kernel that the plugin runs). With ``--cache``
  the training split's feature range goes into the file and the plugin counts extrapolating
  atoms; without it the plugin warns once that extrapolation is not checked. Files of format
  version 1 (before the kernel) are refused by the plugin: export them again.
  ``torchscript MODEL1 MODEL2 ... --out FILE.pt``: a committee of K ≥ 2 models on one feature set
  (:class:`~meltpot.export.torchscript.CommitteePotential`; refused, naming the difference, when
  their elements, functions or units differ): LAMMPS integrates the committee mean and, with
  ``pair_style meltpot FILE.pt deviation N DEVI_FILE``, writes the committee's force and energy
  deviation every N steps (docs/lammps.md). ``--cache`` gives the training range of the first
  model's feature set (shared by all).
* ``mliap MODEL --out FILE.pkl``: a LAMMPS ML-IAP unified pickle, printing the LAMMPS lines that
  use it.
* ``n2p2 MODEL --cache CACHE.h5 --out-dir DIR``: an n2p2 potential directory. The feature minima
  and maxima of the training split (n2p2's extrapolation bounds) come from the descriptor cache's
  statistics; the model's own μ and σ set the scaling. The model's functions are looked up in the
  cache's feature set by definition, so a model trained on a selected subset exports from the
  full cache. After writing, the directory is read back and n2p2's atomic energies are compared
  with the model's on up to ``--check-rows`` cached rows per element (from the first 32 frames)
  (:func:`meltpot.export.n2p2.check_export`); a mismatch above ``--tolerance`` fails.

MODEL is a model file (.pt) or, for torchscript and mliap, the ``chosen.json`` of ``meltpot
select path`` (its chosen λ's retrained model).

``meltpot model import n2p2 DIR --out MODEL.pt``: the way back: a trained n2p2 potential directory as a
meltpot model file (:mod:`meltpot.export.n2p2_import`), usable wherever a trained model is.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MeltpotError
from .options import command, group


def add_commands(sub) -> None:
    esub = group(sub, "export", "export a trained model for LAMMPS (TorchScript plugin, ML-IAP) or n2p2")
    p = command(esub, "torchscript", "TorchScript file for the LAMMPS pair style meltpot (plugin)")
    p.add_argument("model", nargs="+", help="meltpot model file (.pt, from meltpot train / select), or the chosen.json "
                                            "of `meltpot select path` (its chosen λ's retrained model); several: "
                                            "one committee export (same feature set; LAMMPS runs their mean and "
                                            "can write their deviation)")
    p.add_argument("--out", required=True, help="TorchScript file to write")
    p.add_argument("--cache", help="descriptor cache holding the model's features: its training-split min/max "
                                   "become the extrapolation range")
    p.set_defaults(func=cmd_torchscript)

    p = command(esub, "mliap", "LAMMPS ML-IAP unified pickle (pair_style mliap unified; KOKKOS/GPU builds)")
    p.add_argument("model", help="meltpot model file (.pt), or the chosen.json of `meltpot select path`")
    p.add_argument("--out", required=True, help="output pickle (.pkl; LAMMPS torch.loads .pt names)")
    p.add_argument("--device", help="torch device for the model inside LAMMPS (default: cuda when LAMMPS "
                                    "passes GPU arrays, else cpu)")
    p.set_defaults(func=cmd_mliap)

    p = command(esub, "n2p2", "write an n2p2 potential directory (input.nn, scaling.data, weights.NNN.data) "
                              "for LAMMPS pair_style hdnnp")
    p.add_argument("model", help="meltpot model file (.pt)")
    p.add_argument("--cache", required=True, help="descriptor cache holding the model's features (its training-"
                                                  "split min/max become n2p2's extrapolation bounds)")
    p.add_argument("--out-dir", required=True, help="directory to write (created if missing)")
    p.add_argument("--check-rows", type=int, default=256, help="cached rows per element to check the export on")
    p.add_argument("--tolerance", type=float, default=1e-9, help="largest allowed |E_n2p2 - E_model| per atom "
                                                                 "(energy units)")
    p.set_defaults(func=cmd_n2p2)

    msub = group(sub, "model", "model files: bring in a potential trained elsewhere")
    p = command(msub, "import", "a potential of another code as a meltpot model file (n2p2: a directory with "
                                "input.nn, scaling.data, weights.NNN.data)")
    p.add_argument("format", choices=["n2p2"], help="the potential's code")
    p.add_argument("directory", help="the potential's directory")
    p.add_argument("--out", required=True, help="meltpot model file to write (.pt)")
    p.add_argument("--units", choices=["metal", "lj"], help="unit system of the potential (n2p2 has none; default: "
                                                            "the file's meltpot_units comment, else metal)")
    p.set_defaults(func=cmd_import_n2p2)
    d = command(msub, "deviation", "committee disagreement on frames (DeePMD's model deviation, evaluated in Python): "
                                   "max/min/mean over atoms of the force deviation σ_F (eV/Å) and the energy "
                                   "deviation per atom (eV/atom), one row per frame")
    d.add_argument("models", nargs="+", help="two or more meltpot model files of the same feature set")
    d.add_argument("--frames", required=True, help="frames (any format meltpot reads)")
    d.add_argument("--out", required=True, help="CSV: frame, max_devi_f, min_devi_f, avg_devi_f, devi_e")
    d.set_defaults(func=cmd_model_deviation)


def cmd_model_deviation(args) -> int:
    """Committee deviations of the frames of a file, as the pair style's deviation file has them."""
    import pandas as pd

    from ..data.io import read_frames
    from ..model.committee import Committee

    committee = Committee.from_files(args.models)
    rows = []
    for k, atoms in enumerate(read_frames(args.frames)):
        dev = committee.deviation(atoms)
        rows.append({"frame": k, **{c: dev[c] for c in ("max_devi_f", "min_devi_f", "avg_devi_f", "devi_e")}})
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    print(f"wrote {args.out}: {len(table)} frames, committee of {committee.size}; max_devi_f "
          f"{table['max_devi_f'].min():.3g} … {table['max_devi_f'].max():.3g} eV/Å")
    return 0


def cmd_import_n2p2(args) -> int:
    """n2p2 potential directory → meltpot model file."""
    from ..export.n2p2_import import import_n2p2

    res = import_n2p2(args.directory, args.out, units=args.units)
    model, pot = res["model"], res["potential"]
    norm = (f"; normalisation mean_energy {pot.mean_energy:g}, conv_energy {pot.conv_energy:g}, "
            f"conv_length {pot.conv_length:g} folded in" if pot.conv_energy != 1.0 or pot.mean_energy else "")
    print(f"wrote {res['out']}: elements {' '.join(model.elements)}; functions "
          + ", ".join(f"{el} {n}" for el, n in zip(model.elements, model.n_features))
          + f"; {model.architecture_text()}; cutoff {model.featureset.cutoff} "
            f"{model.cutoff:g}; scaling {pot.scaling_type}{norm}; units {model.units}")
    if pot.normalize_nodes:
        print("note: normalize_nodes folded into the weights (W/n, b/n per layer); `meltpot export n2p2` writes "
              "those weights without the keyword")
    if pot.activations[-1] != "l":
        print(f"note: the output layer's letter {pot.activations[-1]!r} is evaluated as l (linear), as n2p2 "
              "does whatever the letter; it is kept for `meltpot export n2p2`")
    print(f"feature set: {res['featureset']} (for `meltpot descriptors compute --featureset`)")
    return 0


def cmd_torchscript(args) -> int:
    from ..export.ranges import training_stats
    from ..export.torchscript import write_committee, write_torchscript
    from ..model.modelfile import load_model, resolve_model_path

    models = [load_model(resolve_model_path(m)) for m in args.model]
    model = models[0]
    lo = hi = None
    if args.cache:
        stats = training_stats(model, args.cache)
        lo = {el: s["min"] for el, s in stats.items()}
        hi = {el: s["max"] for el, s in stats.items()}
    if len(models) > 1:
        path = write_committee(models, args.out, lo, hi)
        what, extra = f"a committee of {len(models)} models, ", " deviation 10 model_devi.out"
    else:
        path = write_torchscript(model, args.out, lo, hi)
        what, extra = "", ""
    print(f"wrote {path} ({what}{model.descriptor.n_union} symmetry functions, units {model.units}); in LAMMPS "
          f"(after `meltpot plugin build`):\n"
          f"  units {model.units}\n  plugin load <meltpot.so>\n  pair_style meltpot {path} device cpu{extra}\n"
          f"  pair_coeff * * {' '.join(model.elements)}")
    return 0


def cmd_mliap(args) -> int:
    from ..export.mliap import lammps_lines, read_mliap, write_mliap
    from ..model.modelfile import resolve_model_path

    obj = write_mliap(resolve_model_path(args.model), args.out, device=args.device)
    back = read_mliap(args.out)              # the file loads as LAMMPS will load it
    print(f"written {args.out}: elements {' '.join(back.element_types)}, cutoff {obj.cutoff:g} "
          f"(rcutfac {obj.rcutfac:g}), {obj.nparams} parameters, units {obj.units}")
    print("LAMMPS (KOKKOS + ML-IAP + PYTHON build; meltpot, torch and cupy importable from its Python):")
    for line in lammps_lines(Path(args.out), obj.element_types, obj.units):
        print(f"  {line}")
    print("  (pair_coeff: the element of atom type 1, 2, …, in any order, by name)")
    return 0


def cmd_n2p2(args) -> int:
    from ..export.n2p2 import export_n2p2

    res = export_n2p2(args.model, args.cache, args.out_dir, check_rows=args.check_rows)
    for el in res["scaling_differs"]:
        print(f"note: {el}: the cache's feature means differ from the model's scaling (was the model trained "
              f"on this cache?); min/max are taken from the cache, mean/sigma from the model")
    model, pot, paths, diff = res["model"], res["potential"], res["paths"], res["check"]
    worst = max(diff.values(), default=0.0)
    print(f"wrote {paths['input.nn'].parent}: input.nn, scaling.data, "
          + ", ".join(p.name for p in paths["weights"].values()))
    print(f"elements {' '.join(pot.elements)}; functions "
          + ", ".join(f"{el} {len(pot.functions[el])}" for el in pot.elements)
          + f"; units {model.units}; extrapolation bounds over the {res['over']} split")
    print("check: max |E_n2p2 - E_model| per atom "
          + ", ".join(f"{el} {v:.2e}" for el, v in diff.items()) + f" on up to {args.check_rows} cached rows each")
    if worst > args.tolerance:
        raise MeltpotError(f"the n2p2 export reproduces the model only to {worst:.3e} per atom "
                           f"(tolerance {args.tolerance:g})")
    rc = max(f["rc"] for fns in pot.functions.values() for f in fns)
    print(f"LAMMPS: pair_style hdnnp {rc!r} dir {paths['input.nn'].parent}/ showew no showewsum 100 resetew no "
          f"maxew 1000000 cflength 1.0 cfenergy 1.0\n        pair_coeff * * {' '.join(pot.elements)}")
    return 0
