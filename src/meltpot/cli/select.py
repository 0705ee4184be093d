"""``meltpot select path|filter|compare``: feature selection (:mod:`meltpot.selection`)."""

from __future__ import annotations

from ..errors import MeltpotError
from .options import add_threads, command, group, set_threads


def add_commands(sub) -> None:
    ssub = group(sub, "select", "feature selection")
    sp = command(ssub, "path", "λ path: Group Lasso → Adaptive Group Lasso → retraining (resumes)")
    sp.add_argument("config")
    sp.add_argument("--model", required=True, help="the trained dense model (meltpot train)")
    sp.add_argument("--cache", required=True, help="descriptor cache (HDF5) of the dataset")
    sp.add_argument("--index", required=True, help="dataset index.parquet")
    sp.add_argument("--splits", required=True, help="splits.parquet")
    sp.add_argument("--out-dir", required=True, help="per-λ models and metrics, path.csv, chosen.json, path.png")
    sp.add_argument("--derivatives", help="derivative store: the λ path fits the training loss's force term "
                                          "(with selection.forces)")
    add_threads(sp)
    sp.add_argument("--until-step", type=int, help="compute the path only up to this λ step (0-based; earlier "
                                                   "steps are reused) and stop: one λ per workflow job "
                                                   "(default: the whole path)")
    sp.add_argument("--path-seed", type=int, default=0,
                    help="K > 0: the same path with seeds derived from K (minibatch order, cold starts), to "
                         "see how stable the choice is (`meltpot select stability`); 0 is the run's own path")
    sp.set_defaults(func=cmd_path)

    st = command(ssub, "stability", "how stable the AGL choice is across λ paths of different --path-seed")
    st.add_argument("--paths", nargs="+", required=True, metavar="DIR",
                    help="`meltpot select path` output folders (chosen.json, path.csv); the first is the reference")
    st.add_argument("--out-dir", required=True, help="stability.csv and stability.json")
    st.set_defaults(func=cmd_stability)

    sf = command(ssub, "filter", "unsupervised filter baseline: pearson, cur or fps at a feature count")
    sf.add_argument("--cache", required=True, help="descriptor cache (HDF5) of the dataset")
    sf.add_argument("--splits", required=True, help="the filter runs on the training rows")
    sf.add_argument("--method", required=True, help="pearson, cur or fps")
    sf.add_argument("--n-features", type=int, help="features kept per element (default: as many as --match keeps)")
    sf.add_argument("--match", help="chosen.json of `meltpot select path`: keep as many features per element")
    sf.add_argument("--max-rows", type=int, default=20000, help="row subsample (atoms) per element")
    sf.add_argument("--seed", type=int, default=0, help="seed of the row subsample")
    sf.add_argument("--index", help="dataset index (needed with noise features)")
    sf.add_argument("--config", help="run config: noise features as in selection.noise_features/noise_seed")
    sf.add_argument("--noise", type=int, help="confounding noise features per element (default: the config's, "
                                              "else none)")
    sf.add_argument("--noise-seed", type=int, default=0, help="seed of the noise features (with --noise)")
    sf.add_argument("--out", required=True, help="the filtered feature set (YAML); selections in .json beside it")
    sf.set_defaults(func=cmd_filter)

    sc = command(ssub, "compare", "train N seeds per feature set; test RMSE mean ± std (thesis tables C.4-C.6)")
    sc.add_argument("config")
    sc.add_argument("--cache", required=True, help="descriptor cache (HDF5) of the dataset")
    sc.add_argument("--index", required=True, help="dataset index.parquet")
    sc.add_argument("--splits", required=True, help="splits.parquet")
    sc.add_argument("--sets", nargs="*", help="NAME=featureset.yaml (subsets of the cached set); 'full' is always included")
    sc.add_argument("--seeds", type=int, default=4, help="initialisations per set (thesis: 4)")
    sc.add_argument("--workers", type=int, default=1,
                    help="processes training the sets side by side, one thread each (the numbers do not depend "
                         "on it)")
    sc.add_argument("--without-full", action="store_true",
                    help="do not train the full set (e.g. to split the comparison over several processes)")
    sc.add_argument("--max-epochs", type=int, help="override training.max_epochs (default: the config's)")
    add_threads(sc)
    sc.add_argument("--out-dir", required=True)
    sc.add_argument("--derivatives", help="derivative store: the models fit the training loss's force term "
                                          "(with selection.forces); validation force errors are reported")
    sc.set_defaults(func=cmd_compare)


def cmd_stability(args) -> int:
    """The choices of several λ paths side by side (stability.csv, stability.json)."""
    from ..selection.stability import path_stability, stability_sentence

    print(stability_sentence(path_stability(args.paths, args.out_dir)))
    return 0


def cmd_path(args) -> int:
    """λ path (GL → AGL → retrain) from a trained dense model; resumes in --out-dir."""
    from ..config import load_config
    from ..manifest import json_text
    from ..selection.run import select_path

    cfg = load_config(args.config)
    set_threads(args.threads)
    res = select_path(cfg, args.model, args.cache, args.index, args.splits, args.out_dir,
                      derivatives=args.derivatives, until_step=args.until_step, path_seed=args.path_seed)
    if "step" in res:   # one λ of the workflow's per-λ rules
        print(json_text(res, indent=None))
        return 0
    chosen, scale, unit = res["chosen"], res["scale"], res["unit"]
    print(f"{res['out']}: {len(res['table'])} λ values; chosen λ = {res['lambda']} with {res['n_total']} features "
          f"({res['keep']}), validation RMSE {chosen['val_rmse_retrained'] * scale:.4g} {unit} "
          f"(dense {chosen['val_rmse_dense'] * scale:.4g})"
          + (f"; noise features kept: {chosen['noise_kept']}" if res["n_noise"] else ""))
    return 0


def cmd_filter(args) -> int:
    """Unsupervised filter baseline (Pearson, CUR, FPS) on the training rows of the cache."""
    from ..selection.run import noise_options, select_filter

    noise, noise_seed = args.noise, args.noise_seed
    if args.config and noise is None:
        from ..config import load_config

        noise, noise_seed = noise_options(load_config(args.config))
    sel = select_filter(args.cache, args.splits, args.method, args.out, n_features=args.n_features, match=args.match,
                        max_rows=args.max_rows, seed=args.seed, index_path=args.index, noise=noise or 0,
                        noise_seed=noise_seed)
    print(f"{args.out}: {args.method} kept {sel}")
    return 0


def cmd_compare(args) -> int:
    """N seeds per feature set (full, AGL, filters): test RMSE mean ± std, kept-feature matrix."""
    from ..config import load_config
    from ..selection.run import compare_feature_sets
    from ..units import energy_unit

    sets = []
    for spec in args.sets or []:
        name, _, path = spec.partition("=")
        if not path:
            raise MeltpotError(f"--sets takes NAME=featureset.yaml, got {spec!r}")
        sets.append((name, path))
    cfg = load_config(args.config)
    set_threads(args.threads)
    table = compare_feature_sets(cfg, args.cache, args.index, args.splits, args.out_dir, sets=sets, seeds=args.seeds,
                                 without_full=args.without_full, max_epochs=args.max_epochs,
                                 derivatives=args.derivatives, workers=args.workers)
    scale, unit = energy_unit(cfg["units"])
    for r in table.itertuples():
        print(f"{r.set:>12s}: {r.n_features:3d} features ({r.n_angular} angular" + (f", {r.n_noise} noise" if r.n_noise else "") + "), test RMSE "
              f"{r.test_rmse_mean * scale:.4g} ± {r.test_rmse_std * scale:.2g} {unit} over {r.seeds} seeds")
    return 0
