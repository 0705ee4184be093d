"""``meltpot descriptors derivatives``: the derivative store for force training (this stage's
newer commands; compute/info/export still live in :mod:`meltpot.cli`)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def store_frames(cfg: dict, index, splits) -> dict:
    """Frame ids per split whose forces the derivative store holds (``descriptors.derivatives``:
    ``train_frames`` / ``validation_frames``, null = all; drawn per state, seeded)."""
    from ..seeds import derive_seed
    from .derivatives import choose_frames

    d = cfg["descriptors"]["derivatives"]
    out = {}
    for split, key in (("train", "train_frames"), ("validation", "validation_frames")):
        out[split] = choose_frames(splits, index, split, d[key], derive_seed(cfg["seed"], "force-frames", split))
    return out


def cmd_derivatives(args) -> int:
    import numpy as np

    from ..config import load_config, load_run_featureset
    from ..data.splits import read_splits
    from .cache import read_index
    from .derivatives import build_store

    cfg = load_config(args.config)
    d = cfg["descriptors"]["derivatives"]
    if args.train_frames is not None:
        d["train_frames"] = None if args.train_frames < 0 else args.train_frames
    if args.validation_frames is not None:
        d["validation_frames"] = None if args.validation_frames < 0 else args.validation_frames
    fs = load_run_featureset(cfg)
    index = read_index(args.index)
    splits = read_splits(args.splits)
    chosen = store_frames(cfg, index, splits)
    ids = np.sort(np.concatenate([chosen["train"], chosen["validation"]]))
    pos = {int(f): k for k, f in enumerate(index["frame_id"])}
    ids = np.asarray(sorted(ids, key=lambda f: pos[int(f)]), dtype=np.int64)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    res = build_store(args.index, args.out, fs, ids, dtype=args.dtype or d["dtype"],
                      missing_forces=d["missing_forces"], backend=args.backend or d["backend"],
                      progress=not args.no_progress)
    info = {"path": str(res.path), "action": res.action, "backend": res.backend, "frames": res.n_frames,
            "train_frames": int(len(chosen["train"])), "validation_frames": int(len(chosen["validation"])),
            "pairs": res.n_pairs, "bytes": res.bytes, "bytes_per_frame": res.bytes / max(res.n_frames, 1),
            "seconds": res.seconds, "skipped_without_forces": res.skipped}
    print(json.dumps(info))
    return 0


def add_commands(subparsers) -> None:
    """Add ``derivatives`` to the ``descriptors`` sub-command group."""
    p = subparsers.add_parser("derivatives", help="compute (or reuse) the derivative store ∂G/∂r for force "
                                                  "training (frames of descriptors.derivatives)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_derivatives)
