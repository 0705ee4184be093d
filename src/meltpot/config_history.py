"""Config history of a run folder: a run_id whose config changes keeps the earlier configs.

Within one ``run_id`` a changed key reruns the stages that depend on it, in place (the
workflow's stage configs decide which). So that this is never silent, the previous
``config.yaml`` is copied to ``config_history/<UTC time>_<sha256[:12]>.yaml`` before the new one
is written, and the changed top-level keys are reported. Use another ``run_id`` to keep whole
result sets side by side.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timezone
from pathlib import Path

import yaml


def changed_keys(old_text: str, new_text: str) -> list[str]:
    """Top-level keys whose values differ between two YAML configs (dotted one level down)."""
    old, new = yaml.safe_load(old_text) or {}, yaml.safe_load(new_text) or {}
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(key)
    return out


def archive_if_changed(config_path: str | Path, new_text: str) -> tuple[Path | None, list[str]]:
    """Copy ``config_path`` into ``config_history/`` next to it when ``new_text`` differs from it;
    returns (archive path or None, changed keys)."""
    path = Path(config_path)
    if not path.exists():
        return None, []
    old_text = path.read_text()
    if old_text == new_text:
        return None, []
    keys = changed_keys(old_text, new_text)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(old_text.encode()).hexdigest()[:12]
    dest = path.parent / "config_history" / f"{stamp}_{digest}.yaml"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, dest)
    return dest, keys
