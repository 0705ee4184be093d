"""The dataset stage of a run config: imported frames, the validated dataset index with its
tables, and the train/validation/test split (``meltpot import``, ``dataset``, ``split``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import MeltpotError


def import_frames(cfg: dict, import_id: str, config_name: str = "the config") -> tuple[Path, list]:
    """(source path, frames) of the config's ``imports`` entry ``import_id``, every frame tagged
    as one state of that id (phase, T, P, composition, engine ``import:<format>``, origin)."""
    from .frames import composition_string
    from .io import read_frames

    entries = {e["id"]: e for e in cfg["imports"]}
    if import_id not in entries:
        raise MeltpotError(f"{config_name}: no import with id {import_id!r}; known: {', '.join(entries) or 'none'}")
    entry = entries[import_id]
    path = Path(entry["path"])
    if not path.is_absolute():
        path = Path(cfg["_base_dir"]) / path
    frames = read_frames(path, format=entry.get("format"), units=entry.get("n2p2_units", "metal"))
    fmt = entry.get("format") or "auto"
    for fr in frames:
        fr.info.update(state_id=entry["id"], branch="", phase=entry.get("phase", "imported"),
                       T_target=entry.get("T", math.nan), P_target=entry.get("P", math.nan),
                       composition=composition_string(fr.get_chemical_symbols(), order=cfg["elements"]),
                       engine=f"import:{fmt}", units="metal", origin=f"{path}#{fr.info['source_index']}")
        if fr.get_velocities() is not None and fr.get_momenta().any():
            fr.info["T_inst"] = float(fr.get_temperature())
    return path, frames


@dataclass
class Dataset:
    """What :func:`build_dataset` wrote: the index path and its counts."""

    index_path: Path
    n_frames: int
    n_files: int
    n_dropped: int
    n_states: int


def build_dataset(cfg: dict, frame_files, out_dir, n2p2: bool = False) -> Dataset:
    """Validate every frame of ``frame_files`` (the config's ``validation`` block), then write
    ``index.parquet``, ``states.csv``, ``validation_report.csv`` and ``states.png`` into
    ``out_dir`` (and ``input.data`` in n2p2 format with ``n2p2``)."""
    import pandas as pd

    from ..plots import plot_states
    from .index import build_index, state_summary
    from .io import read_frames
    from .validate import ValidationSettings, validate_frames

    v = cfg["validation"]
    settings = ValidationSettings(elements=cfg["elements"], min_distance=v["min_distance"],
                                  min_cell_width=v["min_cell_width"], require_stress=v["require_stress"],
                                  max_force=v["max_force"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries, report = [], []
    for file in frame_files:
        if Path(file).stat().st_size == 0:   # a labelling chunk whose every frame was dropped
            continue
        frames = read_frames(file, format="extxyz")
        kept, rep = validate_frames(frames, settings, source=str(file), on_error=v["on_error"])
        report += rep
        entries += [(file, fr.info["source_index"], fr) for fr in kept]
    if not entries:
        raise MeltpotError("no valid frames: every frame was dropped (see the validation report)")
    index = build_index(entries, root=out, units=cfg["units"])
    index_path = out / "index.parquet"
    index.to_parquet(index_path, index=False)
    states = state_summary(index)
    states.to_csv(out / "states.csv", index=False)
    pd.DataFrame(report, columns=["source", "index", "reason"]).to_csv(out / "validation_report.csv", index=False)
    plot_states(index, out / "states.png", units=cfg["units"])
    if n2p2:
        from .io import write_n2p2

        write_n2p2(out / "input.data", [fr for _, _, fr in entries])
    return Dataset(index_path=index_path, n_frames=len(index), n_files=len(frame_files), n_dropped=len(report),
                   n_states=int(index["state_id"].nunique()))


def split_dataset(cfg: dict, index):
    """(splits table, seed) of a dataset index by the config's ``split`` block (the seed
    derived from the run's master seed unless ``split.seed`` is given)."""
    from ..seeds import derive_seed
    from .splits import make_splits

    s = cfg["split"]
    seed = s["seed"] if s["seed"] is not None else derive_seed(cfg["seed"], "split")
    table = make_splits(index, by=s["by"], train=s["train"], validation=s["validation"], test=s["test"],
                        holdout_states=s["holdout_states"], seed=seed)
    return table, seed
