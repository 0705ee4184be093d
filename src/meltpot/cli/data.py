"""``meltpot import``, ``dataset``, ``split``, ``frames convert|check``: frames into a dataset
(:mod:`meltpot.data`)."""

from __future__ import annotations

from pathlib import Path

from .options import command, group

FORMATS = ["extxyz", "vasp-out", "vasp-xml", "n2p2", "deepmd-npy", "ase-db"]   # = meltpot.data.io.FORMATS
WRITE_FORMATS = ["extxyz", "n2p2", "deepmd-npy", "ase-db"]                       # = …io.WRITE_FORMATS


def add_commands(sub) -> None:
    i = command(sub, "import", "import an existing trajectory named in the config's imports")
    i.add_argument("config")
    i.add_argument("--id", required=True, help="id of the config's imports entry")
    i.add_argument("--out", required=True, help="extxyz file")
    i.set_defaults(func=cmd_import)

    d = command(sub, "dataset", "validate frames; write index.parquet, states.csv/png, validation report")
    d.add_argument("config")
    d.add_argument("--frames", nargs="+", required=True, help="extxyz files (sampled or imported)")
    d.add_argument("--out-dir", required=True)
    d.add_argument("--n2p2", action="store_true", help="also write the dataset as n2p2 input.data")
    d.set_defaults(func=cmd_dataset)

    sp = command(sub, "split", "train/validation/test split of a dataset index")
    sp.add_argument("config")
    sp.add_argument("--index", required=True, help="dataset index.parquet")
    sp.add_argument("--out", required=True, help="splits.parquet")
    sp.set_defaults(func=cmd_split)

    fsub = group(sub, "frames", "frame file tools")
    fc = command(fsub, "convert", "convert between extxyz, VASP OUTCAR/vasprun.xml and n2p2 input.data")
    fc.add_argument("input")
    fc.add_argument("output")
    fc.add_argument("--input-format", choices=FORMATS, help="default: from the file name")
    fc.add_argument("--output-format", choices=list(WRITE_FORMATS), help="default: from the file name (a DeePMD "
                                                                          "folder needs deepmd-npy)")
    fc.add_argument("--n2p2-units", choices=["metal", "atomic"], default="metal", help="units of n2p2 files")
    fc.set_defaults(func=cmd_frames_convert)
    fk = command(fsub, "check", "validate frame files and list every bad frame")
    fk.add_argument("files", nargs="+")
    fk.add_argument("--format", choices=FORMATS, help="default: from the file name")
    fk.add_argument("--elements", nargs="+", help="allowed elements (default: any)")
    fk.add_argument("--min-distance", type=float, default=0.5, help="smallest allowed interatomic distance (Å)")
    fk.add_argument("--min-cell-width", type=float, help="smallest allowed perpendicular cell width (Å; "
                                                         "default: not checked)")
    fk.add_argument("--require-stress", action="store_true", help="frames without stress are bad")
    fk.set_defaults(func=cmd_frames_check)


def cmd_import(args) -> int:
    from ..config import load_config
    from ..data.dataset import import_frames
    from ..data.io import write_frames

    cfg = load_config(args.config)
    path, frames = import_frames(cfg, args.id, config_name=str(args.config))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_frames(out, frames, format="extxyz")
    print(f"{path}: {len(frames)} frames imported into {out}")
    return 0


def cmd_dataset(args) -> int:
    """Validate all frames, then write the index, the per-state table and its plot."""
    from ..config import load_config
    from ..data.dataset import build_dataset

    ds = build_dataset(load_config(args.config), args.frames, args.out_dir, n2p2=args.n2p2)
    print(f"{ds.index_path}: {ds.n_frames} frames from {ds.n_files} file(s); "
          f"{ds.n_dropped} dropped; {ds.n_states} states")
    return 0


def cmd_split(args) -> int:
    import pandas as pd

    from ..config import load_config
    from ..data.dataset import split_dataset

    cfg = load_config(args.config)
    table, seed = split_dataset(cfg, pd.read_parquet(args.index))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.out, index=False)
    counts = table["split"].value_counts().reindex(["train", "validation", "test"]).to_dict()
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" (by {cfg['split']['by']}, seed {seed})")
    return 0


def cmd_frames_convert(args) -> int:
    from ..data.io import read_frames, write_frames

    frames = read_frames(args.input, format=args.input_format, units=args.n2p2_units)
    write_frames(args.output, frames, format=args.output_format)
    print(f"{args.output}: {len(frames)} frames")
    return 0


def cmd_frames_check(args) -> int:
    from ..data.io import read_frames
    from ..data.validate import ValidationSettings, validate_frames

    settings = ValidationSettings(elements=args.elements, min_distance=args.min_distance,
                                  min_cell_width=args.min_cell_width, require_stress=args.require_stress)
    bad = 0
    for file in args.files:
        frames = read_frames(file, format=args.format)
        kept, report = validate_frames(frames, settings, source=str(file), on_error="drop")
        for r in report:
            print(f"{r['source']}, frame {r['index']}: {r['reason']}")
        bad += len(report)
        print(f"{file}: {len(kept)}/{len(frames)} frames valid")
    return 1 if bad else 0
