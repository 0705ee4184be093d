"""Evaluation of an HDNNP on the splits of a dataset: energy and force errors, per split,
per state and per phase, and the report files.

Energies go through the descriptor cache (:class:`~meltpot.train.data.EnergyDataset`, no
neighbour search), after checking that the cache was computed with the model's feature set
(:func:`~meltpot.model.modelfile.check_featureset`) and for the frames of the index. Forces
go through positions (:func:`~meltpot.model.batch.predict`, autograd), a few frames at a
time, when the frames carry force labels.

Units: energy errors per atom in meV/atom (``units: metal``) or 10⁻³ ε/atom (``units: lj``),
that is the data's energy unit × 10⁻³; force errors per Cartesian component in eV/Å or ε/σ.
RMSE = sqrt(mean(err²)), MAE = mean(|err|), ME = mean(err) (the bias), where the energy
error of a frame is (E_pred − E_ref) / n_atoms and the averages run over frames (energies)
or over all force components of all atoms (forces).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.frames import labels
from ..data.index import read_index_frames
from ..data.splits import SPLITS
from ..errors import MeltpotError
from ..manifest import jsonable, write_json
from ..model.batch import predict
from ..model.modelfile import check_featureset
from ..units import ENERGY_SCALE, unit_labels
from .data import EnergyDataset, ForceDataset

log = logging.getLogger("meltpot.train.evaluate")

#: forces="auto" evaluates forces of a split with at most this many frames
AUTO_FORCE_FRAMES = 2000


def error_stats(err) -> dict:
    """``rmse``, ``mae``, ``me`` and ``n`` of an error array (NaN for an empty one)."""
    e = np.asarray(err, dtype=float).reshape(-1)
    if e.size == 0:
        return {"rmse": math.nan, "mae": math.nan, "me": math.nan, "n": 0}
    return {"rmse": float(np.sqrt(np.mean(e * e))), "mae": float(np.mean(np.abs(e))), "me": float(np.mean(e)),
            "n": int(e.size)}


def _data_units(model, index: pd.DataFrame) -> str:
    data = sorted({str(u) for u in index["units"].dropna()}) if "units" in index else []
    if len(data) > 1:
        raise MeltpotError(f"the dataset index mixes units {data}")
    mine = getattr(model, "units", None)
    if mine and data and data[0] != mine:
        raise MeltpotError(f"the model is in {mine} units but the dataset in {data[0]} units")
    return mine or (data[0] if data else "metal")


def _force_mode(forces) -> str:
    mode = {True: "yes", False: "no", "always": "yes", "never": "no"}.get(forces, forces)
    if mode not in ("auto", "yes", "no"):
        raise MeltpotError(f"forces = {forces!r} unknown; allowed: auto, yes, no")
    return mode


def _predict_forces(model, graphs, device):
    """Energies and forces of frames: by the compiled kernel on the CPU when it builds (the same
    numbers, no autograd through the descriptors), else by autograd through positions."""
    from ..descriptors.kernel import KernelBuildError
    from ..model.batch import predict_compiled

    if torch.device(device).type == "cpu" and not getattr(model.featureset, "has_noise", False):
        try:
            return predict_compiled(model, graphs)
        except KernelBuildError as exc:
            log.warning("compiled kernel unavailable (%s): forces through positions by autograd", exc)
    return predict(model, graphs, forces=True)


def _force_errors(model, index, root, frame_ids, batch_frames, device):
    """Force predictions for the frames (those with force labels), a batch at a time.

    Returns (ref (N, 3), pred (N, 3), frame id per atom (N,), energies from positions
    per frame id, number of frames without forces).
    """
    frames, sources = read_index_frames(index, root, frame_ids)
    keep = [k for k, fr in enumerate(frames) if "forces" in labels(fr)]
    ref, pred, fid_atom, e_pos = [], [], [], {}
    for s in range(0, len(keep), batch_frames):
        sel = keep[s:s + batch_frames]
        ds = ForceDataset([frames[k] for k in sel], model.elements, model.cutoff, device=device,
                          sources=[sources[k] for k in sel])
        out = _predict_forces(model, ds.graphs, device)
        ref.append(torch.cat(ds.forces).cpu().numpy())
        pred.append(out["forces"].detach().cpu().numpy())
        fid_atom.append(np.repeat(frame_ids[sel], ds.n_atoms.cpu().numpy()))
        for k, e in zip(sel, out["energy"].detach().cpu().numpy()):
            e_pos[int(frame_ids[k])] = float(e)
    cat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))
    return (cat(ref, (0, 3)), cat(pred, (0, 3)), cat(fid_atom, (0,)).astype(np.int64), e_pos,
            len(frames) - len(keep))


def _group_table(pred: pd.DataFrame, forces: dict, by: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Metrics per (split, ``by``): frames, atoms, energy RMSE/MAE/ME (scaled), force RMSE/MAE."""
    rows = []
    for (split, key), grp in pred.groupby(["split", by], sort=False, observed=True):
        e = error_stats((grp["E_pred"] - grp["E_ref"]).to_numpy() * ENERGY_SCALE)
        row = {"split": split, by: key}
        for col in extra:
            row[col] = grp[col].iloc[0]
        row.update(n_frames=len(grp), n_atoms=int(grp["n_atoms"].sum()), energy_rmse=e["rmse"],
                   energy_mae=e["mae"], energy_me=e["me"])
        f = forces.get(split)
        if f is not None and len(f["frame_id"]):
            mask = np.isin(f["frame_id"], grp["frame_id"].to_numpy())
            fs = error_stats(f["pred"][mask] - f["ref"][mask])
            row.update(force_rmse=fs["rmse"], force_mae=fs["mae"], n_force_components=fs["n"])
        else:
            row.update(force_rmse=math.nan, force_mae=math.nan, n_force_components=0)
        rows.append(row)
    cols = ["split", by, *extra, "n_frames", "n_atoms", "energy_rmse", "energy_mae", "energy_me", "force_rmse",
            "force_mae", "n_force_components"]
    return pd.DataFrame(rows, columns=cols)


def evaluate_model(model, cache, index, splits, root=None, splits_to=("validation", "test"), forces="auto",
                   batch_frames: int = 16, check_frames: bool = True) -> dict:
    """Errors of ``model`` on the splits ``splits_to`` of a dataset (see module docstring).

    ``cache``: a :class:`~meltpot.descriptors.cache.DescriptorCache` or its path; ``index``:
    the dataset index (DataFrame or path); ``splits``: the split table (DataFrame or path);
    ``root``: folder the index's file paths are relative to (default: the index file's
    folder). ``forces``: "auto" (a split with ≤ 2000 frames), "yes"/True or "no"/False.
    ``batch_frames``: frames per force evaluation. ``check_frames``: refuse a cache whose
    frames key differs from the index's frames (hashes the frame files once).

    Returns a dict: ``units``, ``energy_unit``, ``force_unit``, ``model``, ``cache``,
    ``splits`` (per split: n_frames, n_atoms, energy_rmse/mae/me, and when evaluated
    force_rmse/mae, n_force_frames, n_force_components, energy_positions_vs_cache), the
    DataFrames ``per_state``, ``per_phase`` and ``predictions`` (frame_id, split, state_id,
    phase, heldout, n_atoms, E_ref, E_pred: energies per atom in the data's unit), and
    ``forces`` (per split with forces: frame_id (N,), phase (N,), ref and pred (N, 3)).
    """
    from ..descriptors.cache import DescriptorCache, frames_key, read_index

    mode = _force_mode(forces)
    if not isinstance(index, pd.DataFrame):
        index_path = Path(index)
        index = read_index(index_path)
        root = index_path.parent if root is None else root
    if root is None:
        raise MeltpotError("evaluate_model: give root (the folder the index's file paths are relative to)")
    root = Path(root)
    if not isinstance(splits, pd.DataFrame):
        from ..data.splits import read_splits

        if not Path(splits).exists():
            raise MeltpotError(f"split table {splits} does not exist")
        splits = read_splits(splits)
    unknown = [s for s in splits_to if s not in SPLITS]
    if unknown:
        raise MeltpotError(f"split(s) {', '.join(unknown)} unknown; allowed: {', '.join(SPLITS)}")
    units = _data_units(model, index)
    ulab = unit_labels(units)
    own = not isinstance(cache, DescriptorCache)
    cache = DescriptorCache(cache) if own else cache
    try:
        info = cache.info()
        check_featureset(model, info["featureset_hash"], what=f"the descriptors in {cache.path}")
        if check_frames and frames_key(index, root) != info["frames_key"]:
            raise MeltpotError(f"descriptor cache {cache.path} was computed for other frames than the dataset "
                               "index (frames key differs): recompute it for this dataset")
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            result = _evaluate(model, cache, index, splits, root, splits_to, mode, batch_frames, device)
        finally:
            model.train(was_training)
    finally:
        if own:
            cache.close()
    result.update(units=units, energy_unit=ulab["energy"], force_unit=ulab["force"],
                  model={**model.describe(), "featureset": model.featureset.name,
                         "featureset_hash": model.featureset.content_hash(),
                         "metadata": getattr(model, "metadata", {})},
                  cache={"path": str(info["path"]), "featureset": info["featureset"],
                         "featureset_hash": info["featureset_hash"], "key": info["key"]})
    return result


def _evaluate(model, cache, index, splits, root, splits_to, mode, batch_frames, device) -> dict:
    split_of = splits.set_index("frame_id")
    table = index[["frame_id", "state_id", "phase", "n_atoms"]].copy()
    table["split"] = split_of["split"].astype(str).reindex(table["frame_id"]).to_numpy()
    table["heldout"] = (split_of["heldout"].reindex(table["frame_id"]).fillna(False).astype(bool).to_numpy()
                        if "heldout" in split_of else False)
    summary, preds, force_data = {}, [], {}
    for split in splits_to:
        sub = table[table["split"] == split]
        ids = sub["frame_id"].to_numpy(np.int64)
        entry = {"n_frames": int(len(ids)), "n_atoms": int(sub["n_atoms"].sum()),
                 "n_heldout_frames": int(sub["heldout"].sum())}
        summary[split] = entry
        if not len(ids):
            entry.update(energy_rmse=None, energy_mae=None, energy_me=None)
            continue
        log.info("%s: energies of %d frames from %s", split, len(ids), cache.path)
        ds = EnergyDataset(cache, index, ids, device=device)
        with torch.no_grad():
            e_pred = ds.predict(model).cpu().numpy()
        n = ds.n_atoms.cpu().numpy().astype(float)
        e_ref = ds.energy.cpu().numpy()
        frame = pd.DataFrame({"frame_id": ids, "split": split, "state_id": sub["state_id"].astype(str).to_numpy(),
                              "phase": sub["phase"].astype(str).to_numpy(), "heldout": sub["heldout"].to_numpy(),
                              "n_atoms": n.astype(np.int64), "E_ref": e_ref / n, "E_pred": e_pred / n})
        preds.append(frame)
        e = error_stats((frame["E_pred"] - frame["E_ref"]).to_numpy() * ENERGY_SCALE)
        entry.update(energy_rmse=e["rmse"], energy_mae=e["mae"], energy_me=e["me"])
        do_forces = mode == "yes" or (mode == "auto" and len(ids) <= AUTO_FORCE_FRAMES)
        entry["forces_evaluated"] = do_forces
        if not do_forces:
            continue
        log.info("%s: forces of %d frames through positions", split, len(ids))
        ref, pred, fid, e_pos, missing = _force_errors(model, index, root, ids, batch_frames, device)
        if missing:
            log.warning("%s: %d of %d frames have no force labels; their forces are not evaluated", split,
                        missing, len(ids))
        if not e_pos:
            entry.update(force_rmse=None, force_mae=None, n_force_frames=0)
            continue
        phase_of = dict(zip(frame["frame_id"], frame["phase"]))
        force_data[split] = {"frame_id": fid, "phase": np.array([phase_of[int(f)] for f in fid], dtype=object),
                             "ref": ref, "pred": pred}
        f = error_stats(pred - ref)
        # the same model through positions and through the cache: a stale or mismatched cache shows here
        e_cache = dict(zip(frame["frame_id"], e_pred / n))
        n_of = dict(zip(frame["frame_id"], n))
        gap = max((abs(e_pos[k] / n_of[k] - e_cache[k]) for k in e_pos), default=math.nan)
        if gap > 1e-6:
            log.warning("%s: energies from positions and from the cache differ by up to %.3g per atom", split, gap)
        entry.update(force_rmse=f["rmse"], force_mae=f["mae"], force_me=f["me"], n_force_frames=len(e_pos),
                     n_force_components=f["n"], energy_positions_vs_cache=gap)
    predictions = (pd.concat(preds, ignore_index=True) if preds else
                   pd.DataFrame(columns=["frame_id", "split", "state_id", "phase", "heldout", "n_atoms", "E_ref",
                                         "E_pred"]))
    return {"splits": summary, "predictions": predictions, "forces": force_data,
            "per_state": _group_table(predictions, force_data, "state_id", extra=("phase", "heldout")),
            "per_phase": _group_table(predictions, force_data, "phase")}


def metrics_dict(results: dict) -> dict:
    """The JSON part of :func:`evaluate_model`'s results (no tables or arrays; NaN → null)."""
    keys = ("units", "energy_unit", "force_unit", "model", "cache", "splits")
    return jsonable({k: results[k] for k in keys if k in results})


def write_report(results: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``metrics.json``, ``per_state.csv``, ``per_phase.csv`` and ``predictions.parquet`` in
    ``out_dir``; returns their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "per_state": out / "per_state.csv",
             "per_phase": out / "per_phase.csv", "predictions": out / "predictions.parquet"}
    write_json(paths["metrics"], metrics_dict(results), ensure_ascii=False)
    results["per_state"].to_csv(paths["per_state"], index=False)
    results["per_phase"].to_csv(paths["per_phase"], index=False)
    results["predictions"].to_parquet(paths["predictions"], index=False)
    return paths


def evaluate_file(model_path, cache, index, splits, out_dir, *, units: str, config_name: str = "the config",
                  history=None, forces="auto", splits_to=("validation", "test"), batch_frames: int = 16,
                  device: str = "cpu") -> tuple[dict, dict[str, Path]]:
    """``meltpot evaluate``: the model file's errors on the splits (:func:`evaluate_model`), the
    report files (:func:`write_report`), parity plots and, with ``history`` (a training run's
    learning-curve CSV), the learning curve. ``units``: the run's; a model in other units is
    refused. Returns (results, paths of the files written by name)."""
    from ..descriptors.cache import DescriptorCache
    from ..model.modelfile import ModelFileError, load_model
    from .plots import plot_energy_parity, plot_force_parity, plot_learning_curve

    if history and not Path(history).is_file():
        raise MeltpotError(f"history file {history} does not exist")
    model = load_model(model_path)
    if getattr(model, "units", units) != units:
        raise ModelFileError(f"{model_path}: the model is in {model.units} units, but {config_name} uses "
                             f"{units} units")
    model = model.to(device)
    with DescriptorCache(cache) as c:
        try:
            results = evaluate_model(model, c, index, splits, splits_to=tuple(splits_to), forces=forces,
                                     batch_frames=batch_frames)
        except ModelFileError as exc:  # another feature set: name the model file too
            raise ModelFileError(f"{model_path}: {exc}") from exc
    out = Path(out_dir)
    paths = write_report(results, out)
    units = results["units"]
    if len(results["predictions"]):
        paths["parity_energy"] = out / "parity_energy.png"
        plot_energy_parity(results["predictions"], paths["parity_energy"], units, results["splits"])
    if results["forces"]:
        paths["parity_forces"] = out / "parity_forces.png"
        plot_force_parity(results["forces"], paths["parity_forces"], units, results["splits"])
    if history:
        paths["learning_curve"] = out / "learning_curve.png"
        plot_learning_curve(history, paths["learning_curve"], units, title=Path(model_path).name)
    return results, paths
