"""Model files: architecture, feature set, scaling, element list and training metadata.

A model file is a ``torch.save`` of plain data (loadable with ``weights_only=True``):
``format``, ``version``, ``architecture`` (elements; hidden sizes: a list, or {element: list}
where the elements' networks differ; activation: a name, or one name per layer with the output
layer's last; version 1 as before for a list and a name, version 2 for the others), ``featureset``
(the resolved feature set as a dict) and its content hash, ``state_dict`` (weights, feature
scaling, reference energies), ``units`` and ``metadata`` (training settings, metrics, data
keys). :func:`load_model` rebuilds the HDNNP and checks it; :func:`check_featureset` refuses
descriptors of another feature set.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..descriptors.featureset import FeatureSet
from ..errors import MeltpotError
from .hdnnp import HDNNP

FORMAT = "meltpot-hdnnp"
#: version 1: hidden a list, activation a name; version 2 (written only for such models): hidden
#: sizes per element or one activation per layer, which readers of version 1 cannot build
VERSION = 1
VERSIONS = (1, 2)


class ModelFileError(MeltpotError):
    """A model file that cannot be used (missing, truncated, wrong format, other feature set)."""


def model_payload(model: HDNNP, units: str | None = None, metadata: dict | None = None) -> dict:
    units = units or getattr(model, "units", "metal")
    arch = {k: v for k, v in model.describe().items() if k in ("elements", "hidden", "activation")}
    version = VERSION if isinstance(arch["hidden"], list) and isinstance(arch["activation"], str) else 2
    return {
        "format": FORMAT, "version": version,
        "architecture": arch,
        "featureset": model.featureset.to_dict(),
        "featureset_hash": model.featureset.content_hash(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "units": units,
        "metadata": metadata or {},
    }


def save_model(model: HDNNP, path: str | Path, units: str | None = None, metadata: dict | None = None) -> None:
    """Write a model file atomically (temporary file, then rename); ``units`` default: the
    model's own (``model.units``, else metal)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save(model_payload(model, units, metadata), tmp)
    tmp.replace(path)


def load_torch_file(path: str | Path, what: str, error=MeltpotError, fmt: str | None = None,
                    version: int | None = None) -> dict:
    """``torch.load`` of plain data (weights_only) with one clear error for a missing,
    truncated or corrupt file (``error(f"{path}: not a readable {what} …")``), and, when given,
    a check that it is a dict of format ``fmt`` and version ``version``."""
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError for broken files
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise error(f"{path}: not a readable {what} (truncated or corrupt?): {type(exc).__name__}: {first}") from exc
    if fmt is not None and (not isinstance(payload, dict) or payload.get("format") != fmt):
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise error(f"{path}: not a {what} (format {found!r})")
    if version is not None and payload.get("version") != version:
        raise error(f"{path}: {what} version {payload.get('version')} is not supported (expected {version})")
    return payload


def read_payload(path: str | Path) -> dict:
    path = Path(path)
    payload = load_torch_file(path, "meltpot model file", ModelFileError, fmt=FORMAT)
    if payload.get("version") not in VERSIONS:
        raise ModelFileError(f"{path}: meltpot model file version {payload.get('version')} is not supported "
                             f"(expected one of {', '.join(map(str, VERSIONS))})")
    missing = sorted({"architecture", "featureset", "featureset_hash", "state_dict"} - set(payload))
    if missing:
        raise ModelFileError(f"{path}: model file lacks {', '.join(missing)}")
    return payload


def model_from_payload(payload: dict, source: str = "model") -> HDNNP:
    arch = payload["architecture"]
    fs = FeatureSet.from_dict(payload["featureset"])
    if fs.content_hash() != payload["featureset_hash"]:
        raise ModelFileError(f"{source}: the stored feature set does not match its hash (file altered?)")
    model = HDNNP(fs, hidden=arch["hidden"], activation=arch["activation"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise ModelFileError(f"{source}: weights do not fit the stored architecture: {detail}") from exc
    model.units = payload.get("units", "metal")
    model.metadata = payload.get("metadata", {})
    return model


def load_model(path: str | Path) -> HDNNP:
    """The HDNNP stored in ``path`` (ModelFileError naming the file if it is unusable)."""
    return model_from_payload(read_payload(path), str(path))


def resolve_model_path(spec: str) -> str:
    """A model file, or for a ``chosen.json`` of ``meltpot select path`` the retrained model of its λ."""
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


def check_featureset(model: HDNNP, featureset_hash: str, what: str = "descriptors", source: str | None = None) -> None:
    """Refuse descriptors computed with another feature set than the model's (``source``:
    the model file, named in the error)."""
    mine = model.featureset.content_hash()
    if featureset_hash != mine:
        prefix = f"{source}: " if source else ""
        raise ModelFileError(f"{prefix}{what} were computed with feature set {featureset_hash[:12]}, but the model "
                             f"was trained on {model.featureset.name} ({mine[:12]}): recompute the descriptors "
                             "with the model's feature set")
