"""``meltpot export n2p2 MODEL --cache CACHE.h5 --out-dir DIR``: an n2p2 potential directory.

The feature minima and maxima of the training split (n2p2's extrapolation bounds) come from
the descriptor cache's statistics; the model's own μ and σ set the scaling. The model's
functions are looked up in the cache's feature set by definition, so a model trained on a
selected subset exports from the full cache. After writing, the directory is read back and
n2p2's atomic energies are compared with the model's on up to ``--check-rows`` cached rows per
element (from the first 32 frames) (:func:`meltpot.export.n2p2.check_export`); a mismatch above ``--tolerance`` fails.
"""

from __future__ import annotations

import argparse

import numpy as np

from ..errors import MeltpotError


def add_commands(subparsers) -> None:
    """Register ``n2p2`` on the ``meltpot export`` sub-parser group."""
    p = subparsers.add_parser("n2p2", help="write an n2p2 potential directory (input.nn, scaling.data, "
                                           "weights.NNN.data) for LAMMPS pair_style hdnnp",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", help="meltpot model file (.pt)")
    p.add_argument("--cache", required=True, help="descriptor cache holding the model's features (its training-"
                                                  "split min/max become n2p2's extrapolation bounds)")
    p.add_argument("--out-dir", required=True, help="directory to write (created if missing)")
    p.add_argument("--check-rows", type=int, default=256, help="cached rows per element to check the export on")
    p.add_argument("--tolerance", type=float, default=1e-9, help="largest allowed |E_n2p2 - E_model| per atom")
    p.set_defaults(func=cmd_export_n2p2)


def cmd_export_n2p2(args) -> int:
    from ..descriptors.cache import DescriptorCache
    from ..model.modelfile import load_model
    from .n2p2 import check_exportable, check_export, read_n2p2, write_n2p2
    from .ranges import model_columns

    model = load_model(args.model)
    check_exportable(model)
    with DescriptorCache(args.cache) as cache:
        cols = model_columns(cache.featureset(), model.featureset, args.cache)
        stats = {el: cache.stats(el) for el in model.elements}
        lo = {el: stats[el]["min"][c] for el, c in cols.items()}
        hi = {el: stats[el]["max"][c] for el, c in cols.items()}
        first = cache.frame_ids[:32]          # read a few frames, not the whole cache
        rows = {el: cache.features(el, first)[: max(args.check_rows, 0)][:, c] for el, c in cols.items()}
        over = stats[model.elements[0]]["over"]
    paths = write_n2p2(model, args.out_dir, lo, hi, source=str(args.model))
    pot = read_n2p2(args.out_dir)
    diff = check_export(model, pot, rows)
    for k, el in enumerate(model.elements):
        f = model.n_features[k]
        mu = model.feature_mean[k, :f].numpy()
        cached = stats[el]["mean"][cols[el]]
        if not np.allclose(mu, cached, rtol=1e-6, atol=1e-12):
            print(f"note: {el}: the cache's feature means differ from the model's scaling (was the model trained "
                  f"on this cache?); min/max are taken from the cache, mean/sigma from the model")
    worst = max(diff.values(), default=0.0)
    print(f"wrote {paths['input.nn'].parent}: input.nn, scaling.data, "
          + ", ".join(p.name for p in paths["weights"].values()))
    print(f"elements {' '.join(pot.elements)}; functions "
          + ", ".join(f"{el} {len(pot.functions[el])}" for el in pot.elements)
          + f"; units {model.units}; extrapolation bounds over the {over} split")
    print("check: max |E_n2p2 - E_model| per atom "
          + ", ".join(f"{el} {v:.2e}" for el, v in diff.items()) + f" on up to {args.check_rows} cached rows each")
    if worst > args.tolerance:
        raise MeltpotError(f"the n2p2 export reproduces the model only to {worst:.3e} per atom "
                           f"(tolerance {args.tolerance:g})")
    rc = max(f["rc"] for fns in pot.functions.values() for f in fns)
    print(f"LAMMPS: pair_style hdnnp {rc!r} dir {paths['input.nn'].parent}/ showew no showewsum 100 resetew no "
          f"maxew 1000000 cflength 1.0 cfenergy 1.0\n        pair_coeff * * {' '.join(pot.elements)}")
    return 0
