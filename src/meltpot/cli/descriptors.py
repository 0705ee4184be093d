"""``meltpot descriptors compute|info|export|featureset|derivatives|presets``: symmetry-function
descriptors, their HDF5 cache and the derivative store (:mod:`meltpot.descriptors`)."""

from __future__ import annotations

from pathlib import Path

from ..descriptors.featureset import CUTOFFS
from ..errors import MeltpotError
from .options import add_progress, add_threads, command, group, set_threads


def add_commands(sub) -> None:
    dsub = group(sub, "descriptors", "symmetry-function descriptors: compute, inspect and export the cache")
    dc = command(dsub, "compute", "compute (or reuse) the HDF5 descriptor cache of a dataset")
    dc.add_argument("config")
    dc.add_argument("--index", required=True, help="dataset index.parquet")
    dc.add_argument("--splits", help="splits.parquet: statistics over its train frames (default: all frames)")
    dc.add_argument("--out", required=True, help="HDF5 cache file")
    dc.add_argument("--featureset", help="preset name or YAML file (default: the config's descriptors.featureset)")
    dc.add_argument("--dtype", choices=["float64", "float32"], help="default: the config's descriptors.dtype")
    dc.add_argument("--device", choices=["cpu", "cuda"], help="default: the config's descriptors.device")
    dc.add_argument("--chunk-frames", type=int, help="frames per chunk (default: the config's descriptors.chunk_frames)")
    add_threads(dc)
    add_progress(dc)
    dc.set_defaults(func=cmd_compute)

    di = command(dsub, "info", "print a cache's feature set, frames, key and feature statistics")
    di.add_argument("file")
    di.add_argument("--json", action="store_true", help="everything as JSON")
    di.set_defaults(func=cmd_info)

    de = command(dsub, "export", "export the features to .npz, .csv or .parquet")
    de.add_argument("file")
    de.add_argument("--out", required=True, help="FILE.npz, FILE.csv or FILE.parquet")
    de.add_argument("--element", help="only this element (default: all)")
    de.set_defaults(func=cmd_export)

    dfs = command(dsub, "featureset", "write a resolved feature-set YAML from a preset, a grid or n2p2 "
                                      "symfunction_short lines (and those lines from any of them)")
    src = dfs.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="preset name or feature-set YAML")
    src.add_argument("--grid", action="store_true", help="generate a grid (needs --elements and --rc)")
    src.add_argument("--n2p2", metavar="INPUT_NN", help="the symfunction_short lines of an n2p2 settings file "
                                                        "(input.nn or just those lines; physical lengths)")
    dfs.add_argument("--elements", nargs="+", help="elements to resolve the functions for")
    dfs.add_argument("--out", required=True)
    dfs.add_argument("--n2p2-lines", metavar="FILE", help="also write the set as n2p2 cutoff_type and "
                                                          "symfunction_short lines (for an input.nn)")
    dfs.add_argument("--name", help="name of the feature set (default: the preset's, or 'grid')")
    dfs.add_argument("--rc", type=float, help="grid: cutoff radius (Å, σ in lj units; no default: required with --grid)")
    dfs.add_argument("--n-radial", type=int, default=8, help="grid: centred radial functions")
    dfs.add_argument("--n-shifted", type=int, default=8, help="grid: shifted radial functions")
    dfs.add_argument("--r-min", type=float, help="grid: smallest radial width / first shift (length units; "
                                                 "default r_c/8)")
    dfs.add_argument("--zetas", type=float, nargs="+", default=[1, 2, 4, 16], help="grid: angular ζ values "
                                                                                   "(dimensionless)")
    dfs.add_argument("--lambdas", type=float, nargs="+", default=[-1, 1], help="grid: angular λ values "
                                                                               "(dimensionless, ±1)")
    dfs.add_argument("--angular-etas", type=float, nargs="+", help="grid: angular η values (1/length²; default one, "
                                                                   "1/(2(r_c/2)²))")
    dfs.add_argument("--angular-type", choices=["angular_narrow", "angular_wide"], default="angular_narrow")
    dfs.add_argument("--cutoff", choices=list(CUTOFFS), default="polynomial",
                     help="grid, or --n2p2 lines without a cutoff_type line (n2p2's cutoff types 0-8)")
    dfs.add_argument("--cutoff-alpha", type=float, default=0.0,
                     help="with --cutoff: inner cutoff α r_c as a fraction of r_c (dimensionless)")
    dfs.set_defaults(func=cmd_featureset)

    p = command(dsub, "derivatives", "compute (or reuse) the derivative store ∂G/∂r for force training "
                                     "(frames of descriptors.derivatives)")
    p.add_argument("config")
    p.add_argument("--index", required=True, help="dataset index.parquet")
    p.add_argument("--splits", required=True, help="splits.parquet: the frames are drawn from its train and "
                                                   "validation splits")
    p.add_argument("--out", required=True, type=Path, help="HDF5 store file")
    p.add_argument("--train-frames", type=int, help="training frames with forces (-1: all; default: "
                                                    "descriptors.derivatives.train_frames)")
    p.add_argument("--validation-frames", type=int, help="validation frames with forces (-1: all; default: "
                                                         "descriptors.derivatives.validation_frames)")
    p.add_argument("--dtype", choices=["float32", "float64"], help="stored precision of ∂G/∂r (default: the config's)")
    p.add_argument("--backend", choices=["auto", "kernel", "autograd"],
                   help="compiled kernel or the torch reference (default: the config's)")
    add_threads(p)
    add_progress(p)
    p.set_defaults(func=cmd_derivatives)

    dp = command(dsub, "presets", "list the feature-set presets")
    dp.set_defaults(func=cmd_presets)


def cmd_compute(args) -> int:
    from ..config import load_config, load_run_featureset, resolve_featureset_spec
    from ..descriptors.cache import build_cache

    cfg = load_config(args.config)
    d = cfg["descriptors"]
    if args.featureset is not None:
        # a path given on the command line is relative to the working directory
        fs = load_run_featureset(cfg, spec=resolve_featureset_spec(args.featureset, Path.cwd()))
    else:
        fs = load_run_featureset(cfg)
    set_threads(args.threads)
    res = build_cache(args.index, args.out, fs, splits=args.splits, dtype=args.dtype or d["dtype"],
                      device=args.device or d["device"], chunk_frames=args.chunk_frames or d["chunk_frames"],
                      progress=not args.no_progress)
    line = f"{res.path}: {res.action} ({res.reason}); {fs.name}, {res.n_frames} frames, {res.n_atoms} atoms"
    if res.rate is not None:
        line += f", {res.rate:.0f} atom environments/s"
    print(line + f", {res.seconds:.1f} s")
    return 0


def cmd_info(args) -> int:
    from ..descriptors.cache import DescriptorCache
    from ..manifest import json_text

    with DescriptorCache(args.file) as c:
        info = c.info()
        if args.json:
            info["stats"] = {el: {"labels": c.labels(el), **{k: (v.tolist() if hasattr(v, "tolist") else v)
                                                             for k, v in c.stats(el).items()}}
                             for el in c.elements}
            print(json_text(info))
            return 0
        print(f"{info['path']}")
        print(f"  feature set  {info['featureset']} (sha256 {info['featureset_hash'][:12]}), "
              f"r_c {info['cutoff_radius']:g}, {info['dtype']}")
        print(f"  frames       {info['n_frames']} ({info['n_atoms']} atoms), frames key {info['frames_key'][:12]}")
        print(f"  key          {info['key']}")
        print(f"  computed     {info['created']} with meltpot {info['meltpot_version']} on {info['device']} "
              f"in {info['seconds']:.1f} s")
        print(f"  statistics   over {info['stats_over']} frames ({info['stats_frames']})")
        for el in c.elements:
            st = c.stats(el)
            print(f"  {el}: {info['n_rows'][el]} atoms × {info['n_features'][el]} features "
                  f"(statistics over {st['n_rows']} atoms)")
            width = max(len(lab) for lab in c.labels(el))
            print(f"    {'feature':{width}s} {'min':>11s} {'max':>11s} {'mean':>11s} {'std':>11s}")
            for k, lab in enumerate(c.labels(el)):
                print(f"    {lab:{width}s} " + " ".join(f"{st[q][k]:11.4g}" for q in ("min", "max", "mean", "std")))
    return 0


def cmd_export(args) -> int:
    from ..descriptors.cache import export_cache

    n = export_cache(args.file, args.out, element=args.element)
    print(f"{args.out}: {n} rows")
    return 0


def cmd_featureset(args) -> int:
    from ..descriptors.featureset import grid, load_featureset

    if args.grid:
        if not args.elements or args.rc is None:
            raise MeltpotError("descriptors featureset --grid needs --elements and --rc")
        fs = grid(args.elements, rc=args.rc, n_radial=args.n_radial, n_shifted=args.n_shifted, r_min=args.r_min,
                  zetas=tuple(args.zetas), lambdas=tuple(args.lambdas), angular_etas=args.angular_etas,
                  angular_type=args.angular_type, cutoff=args.cutoff, cutoff_alpha=args.cutoff_alpha,
                  name=args.name or "grid")
    elif args.n2p2:
        from ..export.n2p2 import featureset_from_n2p2

        fs = featureset_from_n2p2(args.n2p2, cutoff=args.cutoff, name=args.name, cutoff_alpha=args.cutoff_alpha)
    else:
        fs = load_featureset(args.preset, args.elements)
        if args.name:
            fs.name = args.name
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fs.save(out)
    if args.n2p2_lines:
        from ..export.n2p2 import n2p2_symfunction_lines

        lines = Path(args.n2p2_lines)
        lines.parent.mkdir(parents=True, exist_ok=True)
        lines.write_text(f"# feature set {fs.name} ({fs.content_hash()[:12]}) written by meltpot\n"
                         + "\n".join(n2p2_symfunction_lines(fs)) + "\n")
        print(f"{lines}: n2p2 lines")
    counts = ", ".join(f"{el} {fs.n_features(el)}" for el in fs.elements)
    print(f"{out}: feature set {fs.name}: {counts} functions, r_c {fs.cutoff_radius:g}, {fs.cutoff} cutoff, "
          f"sha256 {fs.content_hash()[:12]}")
    return 0


def cmd_derivatives(args) -> int:
    from ..config import load_config, load_run_featureset
    from ..data.splits import read_splits
    from ..descriptors.cache import read_index
    from ..descriptors.derivatives import build_store, in_dataset_order, store_frames
    from ..manifest import json_text

    cfg = load_config(args.config)
    d = cfg["descriptors"]["derivatives"]
    if args.train_frames is not None:
        d["train_frames"] = None if args.train_frames < 0 else args.train_frames
    if args.validation_frames is not None:
        d["validation_frames"] = None if args.validation_frames < 0 else args.validation_frames
    fs = load_run_featureset(cfg)
    index = read_index(args.index)
    chosen = store_frames(cfg, index, read_splits(args.splits))
    ids = in_dataset_order(index, chosen["train"], chosen["validation"])
    set_threads(args.threads)
    res = build_store(args.index, args.out, fs, ids, dtype=args.dtype or d["dtype"],
                      missing_forces=d["missing_forces"], backend=args.backend or d["backend"],
                      progress=not args.no_progress)
    info = {"path": str(res.path), "action": res.action, "backend": res.backend, "frames": res.n_frames,
            "train_frames": int(len(chosen["train"])), "validation_frames": int(len(chosen["validation"])),
            "pairs": res.n_pairs, "bytes": res.bytes, "bytes_per_frame": res.bytes / max(res.n_frames, 1),
            "seconds": res.seconds, "skipped_without_forces": res.skipped}
    print(json_text(info, indent=None))
    return 0


def cmd_presets(args) -> int:
    from ..descriptors.featureset import preset_summaries

    for p in preset_summaries():
        n_rad = p["n_radial"]
        print(f"{p['name']:12s} {p['n_functions']:3d} functions ({n_rad} radial, {p['n_functions'] - n_rad} angular) "
              f"per neighbour element (pair), r_c {p['rc']:g}, {p['cutoff']} cutoff  {p['reference']}")
    return 0
