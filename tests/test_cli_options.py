"""One vocabulary on the command line (meltpot.cli.options): every numeric option states its unit
and default in ``--help``; renamed options keep their old names as deprecated aliases (one line on
stderr, same result); ``--units``/``--timestep``/``--types`` default to the run's config or what
the input files state."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meltpot.cli import build_parser, main
from meltpot.cli.options import HelpFormatter
from meltpot.errors import MeltpotError

ROOT = Path(__file__).resolve().parents[1]
#: words that give a float option its unit (or say it has none)
UNIT_MARKERS = ("Å", "ps", "fs", "τ", "σ", "K ", "K;", "bar", "eV", "time units", "energy units", "length units",
                "thermo units", "fraction", "dimensionless", "g/mol", "atoms", "%", "1/length")
#: every deprecated alias: command → {old name: new name}
ALIASES = {
    "analyze msd": {"--out": "--out-dir"},
    "analyze viscosity": {"--out": "--out-dir"},
    "analyze interdiffusion": {"--out": "--out-dir"},
    "analyze cna": {"--dt": "--timestep"},
    "analyze steinhardt": {"--dt": "--timestep"},
    "analyze clusters": {"--dt": "--timestep"},
    "analyze enthalpy-drop": {"--dt": "--timestep"},
    "analyze two-phase": {"--dt": "--timestep"},
}
#: the least each command needs to parse (positionals and required options)
MINIMAL = {
    "analyze msd": ["f.dump"],
    "analyze viscosity": ["log.lammps"],
    "analyze interdiffusion": ["f.dump", "--pair", "Al", "Ni"],
    "analyze cna": ["f.dump", "--out", "c.csv"],
    "analyze steinhardt": ["f.dump", "--out", "c.csv"],
    "analyze clusters": ["f.dump", "--out", "c.csv"],
    "analyze enthalpy-drop": ["log.lammps", "--out", "h.csv"],
    "analyze two-phase": ["log.lammps", "--out", "t.csv"],
}


def _commands(parser, path=()):
    """(command words, parser) of every leaf subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
    for a in subs:
        for name, sp in a.choices.items():
            yield from _commands(sp, (*path, name))


def test_every_numeric_option_states_its_unit_and_default():
    missing = []
    for cmd, p in _commands(build_parser()):
        for a in p._actions:
            if a.type not in (int, float) or not a.option_strings:
                continue
            text = a.help or ""
            if not text:
                missing.append(f"{cmd} {a.option_strings[0]}: no help")
            if a.default is None and not a.required and "default" not in text.lower():
                missing.append(f"{cmd} {a.option_strings[0]}: no default stated")
            if a.type is float and not any(m in text for m in UNIT_MARKERS):
                missing.append(f"{cmd} {a.option_strings[0]}: no unit ({text})")
    assert not missing, "\n".join(missing)


def test_help_shows_defaults_and_hides_deprecated_names():
    for cmd, p in _commands(build_parser()):
        assert p.formatter_class is HelpFormatter, cmd
        text = p.format_help()
        for a in p._actions:
            if a.option_strings and a.type in (int, float) and a.default is not None and not a.required:
                assert f"(default: {a.default})" in " ".join(text.split()), (cmd, a.option_strings)
        for old in ALIASES.get(cmd, {}):
            assert f"{old} " not in text.replace(f"{old}-", ""), (cmd, old)


def test_the_aliases_above_are_all_there_are():
    found = {}
    for cmd, p in _commands(build_parser()):
        for a in p._actions:
            for old in getattr(a, "deprecated", ()):
                new = next(s for s in a.option_strings if s not in a.deprecated)
                found.setdefault(cmd, {})[old] = new
    assert found == ALIASES


@pytest.mark.parametrize("cmd", sorted(ALIASES))
def test_deprecated_alias_parses_the_same_and_says_so(cmd, capsys):
    words = cmd.split()
    for old, new in ALIASES[cmd].items():
        value = "x" if old == "--out" else "0.002"
        a = build_parser().parse_args([*words, *MINIMAL[cmd], new, value])
        assert capsys.readouterr().err == ""
        b = build_parser().parse_args([*words, *MINIMAL[cmd], old, value])
        err = capsys.readouterr().err
        assert vars(a) == vars(b)
        assert err.count("\n") == 1 and f"{old} is deprecated, use {new}" in err


# ----------------------------------------------------------------------------- defaults of units and timestep
def _dump(path: Path, n_frames=40, every=10, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 6, size=(1, 8, 3)) + rng.normal(scale=0.05, size=(n_frames, 8, 3)).cumsum(axis=0)
    lines = []
    for k in range(n_frames):
        lines += ["ITEM: TIMESTEP", str(k * every), "ITEM: NUMBER OF ATOMS", "8",
                  "ITEM: BOX BOUNDS pp pp pp", "0 6", "0 6", "0 6", "ITEM: ATOMS id type xu yu zu"]
        lines += [f"{i + 1} 1 {x:.8f} {y:.8f} {z:.8f}" for i, (x, y, z) in enumerate(pos[k])]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _msd(dump, out, *extra) -> pd.DataFrame:
    assert main(["analyze", "msd", str(dump), "--out-dir", str(out), "--no-progress", *extra]) == 0
    return pd.read_csv(out / "diffusion.csv")


def test_msd_units_and_timestep_from_the_config(tmp_path, capsys):
    dump = _dump(tmp_path / "run" / "dump.lammpstrj")
    lj = _msd(dump, tmp_path / "lj", "--config", str(ROOT / "config" / "presets" / "lj-tiny.yaml"))
    assert lj["unit"].iloc[0] == "σ²/τ" and lj["species"].tolist()[0] == "Ar"  # types from its elements
    explicit = _msd(dump, tmp_path / "explicit", "--units", "lj", "--timestep", "0.001", "--types", "1=Ar")
    pd.testing.assert_frame_equal(lj, explicit)
    # without a config and files that say nothing: metal, and the timestep must be given
    metal = _msd(dump, tmp_path / "metal", "--timestep", "0.001")
    assert metal["unit"].iloc[0] == "Å²/ps"
    with pytest.raises(MeltpotError, match="give --timestep"):
        from meltpot.cli.analyze.common import run_defaults

        run_defaults(build_parser().parse_args(["analyze", "msd", str(dump)]), [dump], need_timestep=True)
    assert main(["analyze", "msd", str(dump), "--out-dir", str(tmp_path / "none"), "--no-progress"]) == 2
    assert "give --timestep" in capsys.readouterr().err


def test_msd_units_and_timestep_from_the_run_folder(tmp_path, capsys):
    """A `meltpot md run` folder of an LJ config: in.lammps beside the dump says units lj and the
    timestep; msd must not fall back to metal (the old default)."""
    dump = _dump(tmp_path / "run" / "dump.lammpstrj")
    (dump.parent / "in.lammps").write_text("units lj\natom_style atomic\ntimestep 0.005\nrun 100\n")
    got = _msd(dump, tmp_path / "out")
    err = capsys.readouterr().err
    assert "units lj" in err and "timestep 0.005" in err and "in.lammps" in err
    assert got["unit"].iloc[0] == "σ²/τ"
    explicit = _msd(dump, tmp_path / "explicit", "--units", "lj", "--timestep", "0.005")
    pd.testing.assert_frame_equal(got, explicit)
    # an explicit option wins over the files
    assert _msd(dump, tmp_path / "metal", "--units", "metal")["unit"].iloc[0] == "Å²/ps"
