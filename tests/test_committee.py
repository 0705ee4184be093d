"""A committee of HDNNPs in the LAMMPS pair style ``meltpot`` against the Python committee.

Three random Al–Ni HDNNPs (same feature set, different seeds, one with other hidden sizes) are
exported as one committee file. A short NVT run in real LAMMPS (serial and ``mpiexec -n 2``)
with ``deviation 5 devi.out`` dumps positions, the integrated (mean) forces and per-atom
energies at full precision on the same steps; on every dumped frame the Python committee
(:class:`meltpot.model.committee.Committee`: torch descriptors, autograd forces per member)
gives the deviation line, the mean forces and the mean energies. Plus: a committee of one model
twice equals the single-model export with zero deviation; a K = 1 export still runs (and the
deviation keyword needs a committee); models of different feature sets are refused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.io import read, write

from helpers import make_featureset, random_model
from lammps_points import MASSES, random_systems, rel, run_lammps, single_point
from meltpot.analysis.trajectory import read_log
from meltpot.descriptors.compute import AtomsDescriptor
from meltpot.export.torchscript import ExportError, load_torchscript, write_committee, write_torchscript
from meltpot.model.committee import Committee, deviation_from, read_deviation
from meltpot.plugin.build import build_plugin, pair_commands

EVERY = 5
STEPS = 30


@pytest.fixture(scope="module")
def plugin():
    return build_plugin()


@pytest.fixture(scope="module")
def system():
    return random_systems(7)["AlNi"]


@pytest.fixture(scope="module")
def members(system):
    fs = make_featureset(["Al", "Ni"])
    return [random_model(fs, [system], seed=50, activation="tanh"),
            random_model(fs, [system], seed=51, activation="tanh"),
            random_model(fs, [system], seed=52, hidden=(6, 5), activation="shifted_softplus")]


@pytest.fixture(scope="module")
def committee_file(system, members, tmp_path_factory):
    """The committee with the starting frame's feature range: the heated atoms leave it."""
    G = AtomsDescriptor(members[0].featureset).per_element(system)
    return write_committee(members, tmp_path_factory.mktemp("committee") / "committee.pt",
                           {el: g.min(0) for el, g in G.items()}, {el: g.max(0) for el, g in G.items()})


def nvt_run(workdir, atoms, pair, elements, nprocs=1):
    """A 30-step NVT run (1 fs, 900 K); every EVERY steps the dump of positions, forces and
    per-atom energies at full precision, and thermo at full precision."""
    workdir.mkdir(parents=True, exist_ok=True)
    write(workdir / "data.lmp", atoms, format="lammps-data", specorder=elements, atom_style="atomic")
    lines = ["units metal", "atom_style atomic", "atom_modify map array", "boundary p p p", "read_data data.lmp",
             *[f"mass {k + 1} {MASSES[el]}" for k, el in enumerate(elements)], *pair,
             "compute pe all pe/atom", "compute pm all pair meltpot",
             "velocity all create 900 5 loop geom", "timestep 0.001", "fix 1 all nvt temp 900 900 0.05",
             f"thermo {EVERY}", "thermo_style custom step pe c_pm[1] c_pm[3] c_pm[4] c_pm[5] c_pm[6]",
             "thermo_modify format float %.17g",
             f"dump d all custom {EVERY} dump.txt id type x y z fx fy fz c_pe",
             "dump_modify d sort id format float %.17g", f"run {STEPS}"]
    run_lammps(workdir, lines, nprocs=nprocs)
    frames = read(workdir / "dump.txt", index=":", format="lammps-dump-text")
    out = []
    n = len(atoms)
    raw = (workdir / "dump.txt").read_text().splitlines()
    k = 0
    for fr in frames:
        while not raw[k].startswith("ITEM: TIMESTEP"):
            k += 1
        step = int(raw[k + 1])
        body = np.array([[float(x) for x in line.split()] for line in raw[k + 9:k + 9 + n]])
        k += 9 + n
        fr.set_chemical_symbols([elements[int(t) - 1] for t in body[:, 1]])
        out.append({"step": step, "atoms": fr, "forces": body[:, 5:8], "energies": body[:, 8]})
    return out


@pytest.mark.parametrize("nprocs", [1, 2])
def test_lammps_deviation_equals_python_committee_on_nvt_frames(nprocs, system, members, committee_file, plugin,
                                                               tmp_path):
    """The deviation file (every 5 steps of a 30-step NVT run), the integrated forces and the
    per-atom energies equal the Python committee's on the dumped frames; compute pair meltpot's
    c_ID[3..6] carry the same four values; the extrapolation column counts the atoms outside the
    export's range (Python descriptors against its feature_min/max), as c_ID[1]."""
    elements = members[0].elements
    pair = pair_commands(committee_file, elements, plugin=plugin, deviation=(EVERY, tmp_path / "devi.out"))
    frames = nvt_run(tmp_path, system, pair, elements, nprocs=nprocs)
    devi = read_deviation(tmp_path / "devi.out")
    assert list(devi["step"]) == list(range(0, STEPS + 1, EVERY)) == [f["step"] for f in frames]
    header = (tmp_path / "devi.out").read_text().splitlines()[0]
    assert "3 models" in header and "eV/Angstrom" in header
    committee = Committee(members)
    mod = load_torchscript(committee_file)
    desc = AtomsDescriptor(members[0].featureset)
    worst = {}
    for fr, (_, row) in zip(frames, devi.iterrows()):
        G, species = desc.features(fr["atoms"])
        outside = ((G < mod.feature_min[species]) | (G > mod.feature_max[species])).any(1).sum()
        assert row["extrapolating"] == int(outside)
        per = committee.evaluate(fr["atoms"])
        ref = deviation_from(per)
        assert ref["max_devi_f"] > 1e-2 and ref["devi_e"] > 1e-4          # the members really disagree
        for col in ("max_devi_f", "min_devi_f", "avg_devi_f", "devi_e"):
            worst[col] = max(worst.get(col, 0.0), abs(row[col] - ref[col]) / abs(ref[col]))
        worst["forces"] = max(worst.get("forces", 0.0), rel(fr["forces"], per["forces"].mean(0)))
        worst["energies"] = max(worst.get("energies", 0.0), rel(fr["energies"], per["energies"].mean(0)))
    print("worst relative differences", nprocs, worst)
    assert max(worst.values()) < 1e-10, worst
    # compute pair meltpot: c_pm[3..6] = the last deviation line (every thermo step is a deviation step)
    th = read_log(tmp_path / "log.lammps")
    for k, col in zip(range(3, 7), ("max_devi_f", "min_devi_f", "avg_devi_f", "devi_e")):
        assert np.allclose(th[f"c_pm[{k}]"].to_numpy(), devi[col].to_numpy(), rtol=1e-14, atol=0)
    assert (th["c_pm[1]"].to_numpy() == devi["extrapolating"].to_numpy()).all()
    assert devi["extrapolating"].iloc[0] == 0 and devi["extrapolating"].max() > 0
    log = (tmp_path / "log.lammps").read_text()
    assert "committee of 3 models: LAMMPS integrates the committee mean; deviation every 5 steps" in log


@pytest.mark.parametrize("nprocs", [1, 2])
def test_committee_of_one_model_twice_equals_the_single_export(nprocs, system, members, plugin, tmp_path):
    """A committee [m, m]: the same energies, forces and virial as m's single-model export (and
    as the Python model), deviation exactly zero."""
    from lammps_points import python_reference

    m = members[0]
    single = write_torchscript(m, tmp_path / "single.pt")
    twice = write_committee([m, m], tmp_path / "twice.pt")
    a = single_point(tmp_path / "a", system, pair_commands(single, m.elements, plugin=plugin), m.elements,
                     nprocs=nprocs)
    b = single_point(tmp_path / "b", system, pair_commands(twice, m.elements, plugin=plugin,
                                                          deviation=(1, tmp_path / "devi.out")),
                     m.elements, nprocs=nprocs)
    ref = python_reference(m, a["atoms"])
    assert abs(a["energy"] - ref["energy"]) < 1e-10 * abs(ref["energy"])        # the K = 1 export as before
    assert rel(a["forces"], ref["forces"]) < 1e-9 and rel(a["stress"], ref["stress"]) < 1e-9
    assert abs(b["energy"] - a["energy"]) < 1e-13 * abs(a["energy"])
    for key in ("energies", "forces", "stress", "stress_atom_sum"):
        assert rel(b[key], a[key]) < 1e-13, key
    devi = read_deviation(tmp_path / "devi.out")
    assert len(devi) == 1 and (devi[["max_devi_f", "min_devi_f", "avg_devi_f", "devi_e"]].to_numpy() == 0).all()
    assert devi["extrapolating"].iloc[0] == -1                      # no training range in the export


def test_committee_export_refuses_different_feature_sets(system, members, tmp_path):
    other = random_model(make_featureset(["Al", "Ni"], zetas=(1, 2)), [system], seed=53)
    with pytest.raises(ExportError, match="member 3 has a different feature set than member 1 .the functions of Al, Ni"):
        write_committee([members[0], members[1], other], tmp_path / "bad.pt")
    al = random_model(make_featureset(["Al"]), [random_systems(7)["Al"]], seed=54)
    with pytest.raises(ExportError, match="member 2 has elements"):
        write_committee([members[0], al], tmp_path / "bad.pt")
    with pytest.raises(ExportError, match="at least 2 models"):
        write_committee([members[0]], tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_committee_export_routes(system, members, committee_file):
    """committee_energies_and_gradients: every member's energies and dE/dG; energies_and_gradients
    and forward: the mean."""
    mod = load_torchscript(committee_file)
    assert mod.committee_size == 3 and mod.format_version == 3
    G = torch.rand(7, max(members[0].n_features), dtype=torch.float64)
    sp = torch.tensor([0, 1, 0, 0, 1, 1, 0])
    e, d = mod.committee_energies_and_gradients(G, sp)
    assert e.shape == (3, 7) and d.shape == (3, 7, G.shape[1])
    for k, m in enumerate(members):
        Gk = G.clone().requires_grad_(True)
        ek = m.atomic_energies(Gk, sp)
        dk, = torch.autograd.grad(ek.sum(), Gk)
        assert torch.allclose(e[k], ek.detach(), rtol=1e-12, atol=0) and torch.allclose(d[k], dk, rtol=1e-12, atol=1e-15)
    em, dm = mod.energies_and_gradients(G, sp)
    assert torch.allclose(em, e.mean(0), rtol=1e-14) and torch.allclose(dm, d.mean(0), rtol=1e-14)
    e0, d0 = mod.committee_energies_and_gradients(G[:0], sp[:0])
    assert e0.shape == (3, 0) and d0.shape == (3, 0, G.shape[1])


def test_deviation_keyword_errors(members, committee_file, plugin, tmp_path):
    single = write_torchscript(members[0], tmp_path / "single.pt")
    base = ["units metal", "region b block 0 8 0 8 0 8", "create_box 2 b", "create_atoms 1 random 10 5 b",
            "mass * 27", f"plugin load {plugin}"]
    cases = {
        "single": (f"pair_style meltpot {single} deviation 10 d.out", "deviation needs a committee export"),
        "zero": (f"pair_style meltpot {committee_file} deviation 0 d.out", "needs N >= 1"),
        "missing": (f"pair_style meltpot {committee_file} deviation 10", "deviation needs two values"),
        "file": (f"pair_style meltpot {committee_file} deviation 10 {tmp_path}/no/such/dir/d.out",
                 "cannot open deviation file"),
    }
    for case, (line, message) in cases.items():
        res = run_lammps(tmp_path / case, base + [line, "pair_coeff * * Al Ni", "run 0"], check=False)
        assert res.returncode != 0 and message in res.stdout, (case, res.stdout[-1500:])


def test_export_cli_writes_a_committee(system, members, tmp_path, capsys):
    from meltpot.cli import main
    from meltpot.model import save_model

    paths = []
    for k, m in enumerate(members):
        paths.append(tmp_path / f"m{k}.pt")
        save_model(m, paths[-1])
    assert main(["export", "torchscript", *map(str, paths), "--out", str(tmp_path / "c.pt")]) == 0
    assert "a committee of 3 models" in capsys.readouterr().out
    assert load_torchscript(tmp_path / "c.pt").committee_size == 3
    other = random_model(make_featureset(["Al", "Ni"], zetas=(1, 2)), [system], seed=53)
    save_model(other, tmp_path / "other.pt")
    assert main(["export", "torchscript", str(paths[0]), str(tmp_path / "other.pt"), "--out",
                 str(tmp_path / "bad.pt")]) == 2
    assert "different feature set" in capsys.readouterr().err


def test_deviation_with_a_rank_without_atoms(members, committee_file, plugin, tmp_path):
    """An Al–Ni slab in a box 40 Å long in x on two ranks split along x: the second rank owns no
    atom (its min over no atoms must not win); the line equals the Python committee's."""
    from ase.build import bulk

    slab = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    slab.rattle(0.1, seed=3)
    slab.set_chemical_symbols(["Al", "Ni"] * 16)
    slab.set_cell(np.diag([40.0, 8.1, 8.1]), scale_atoms=False)
    slab.positions[:, 0] += 4.0
    elements = members[0].elements
    lmp = single_point(tmp_path, slab, pair_commands(committee_file, elements, plugin=plugin,
                                                     deviation=(1, tmp_path / "devi.out")), elements, nprocs=2)
    assert "2 by 1 by 1 MPI processor grid" in (tmp_path / "log.lammps").read_text()
    row = read_deviation(tmp_path / "devi.out").iloc[0]
    ref = Committee(members).deviation(lmp["atoms"])
    for col in ("max_devi_f", "min_devi_f", "avg_devi_f", "devi_e"):
        assert abs(row[col] - ref[col]) < 1e-10 * abs(ref[col]), col
    assert rel(lmp["forces"], Committee(members).mean(lmp["atoms"])["forces"]) < 1e-10


def test_md_render_writes_the_deviation_keyword(plugin, tmp_path, capsys):
    """`meltpot md render … --plugin SO --model COMMITTEE --deviation 10`: the pair_style line
    carries `deviation 10 model_devi.out`; --deviation without the plugin route is refused."""
    import yaml

    from meltpot.cli import main

    atoms = random_systems(7)["Al"]
    fs = make_featureset(["Al"])
    committee = write_committee([random_model(fs, [atoms], seed=s) for s in (60, 61)], tmp_path / "c.pt")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({
        "run_id": "committee-test", "elements": ["Al"],
        "reference": {"engine": "lammps", "pair_style": "eam/fs", "pair_coeff": ["* * Al_mm.eam.fs Al"]},
        "sampling": {"states": [{"id": "fcc_300K", "phase": "fcc", "T": 300, "P": 0}]},
        "md": {"timestep": 0.002, "run": {"n_atoms": 32, "melt_steps": 10, "cool_steps": 10}}}))
    assert main(["md", "render", "nvt", str(cfg), "--plugin", str(plugin), "--model", str(committee),
                 "--deviation", "10", "--out-dir", str(tmp_path / "r")]) == 0
    assert f"pair_style meltpot {committee} device cpu deviation 10 model_devi.out" in \
        (tmp_path / "r" / "in.lammps").read_text()
    assert main(["md", "render", "nvt", str(cfg), "--deviation", "10", "--out-dir", str(tmp_path / "s")]) == 2
    assert "--deviation is the meltpot pair style's committee output" in capsys.readouterr().err


def test_model_deviation_cli_equals_the_committee(system, members, tmp_path, capsys):
    """`meltpot model deviation` on frames: one row per frame, equal to Committee.deviation, and a
    committee of one model twice deviates by exactly 0."""
    import pandas as pd

    from meltpot.cli import main
    from meltpot.data.io import write_frames
    from meltpot.model import save_model
    from meltpot.model.committee import Committee

    paths = []
    for k, m in enumerate(members):
        paths.append(tmp_path / f"m{k}.pt")
        save_model(m, paths[-1])
    frames = [system.copy(), system.copy()]
    frames[1].rattle(0.05, seed=9)
    write_frames(tmp_path / "f.extxyz", frames)
    assert main(["model", "deviation", *map(str, paths), "--frames", str(tmp_path / "f.extxyz"),
                 "--out", str(tmp_path / "d.csv")]) == 0
    table = pd.read_csv(tmp_path / "d.csv")
    assert list(table["frame"]) == [0, 1]
    com = Committee.from_files(paths)
    for k, atoms in enumerate(frames):
        dev = com.deviation(atoms)
        for c in ("max_devi_f", "min_devi_f", "avg_devi_f", "devi_e"):
            assert table.loc[k, c] == pytest.approx(dev[c], rel=1e-12)
    assert main(["model", "deviation", str(paths[0]), str(paths[0]), "--frames", str(tmp_path / "f.extxyz"),
                 "--out", str(tmp_path / "z.csv")]) == 0
    assert (pd.read_csv(tmp_path / "z.csv")[["max_devi_f", "devi_e"]] == 0).all().all()
