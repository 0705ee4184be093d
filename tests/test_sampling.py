"""Sampling protocols with the real LAMMPS reference: temperatures reached, volumes, tags."""

import math

import numpy as np
import pytest
from ase.io import read

from meltpot.config import validate_config
from meltpot.reference import make_engine
from meltpot.sampling.grid import expand_states
from meltpot.sampling.structures import volume_per_atom_from_density
from meltpot.sampling.protocols import sample_unit

AL = {
    "run_id": "t", "seed": 11, "units": "metal", "elements": ["Al"],
    "reference": {"engine": "lammps", "pair_style": "eam/fs", "pair_coeff": ["* * Al_mm.eam.fs Al"]},
    "md": {"timestep": 0.002},
}


def _run(cfg, tmp_path, unit_id):
    cfg = validate_config(cfg)
    unit = next(u for u in expand_states(cfg) if u.unit_id == unit_id)
    engine = make_engine(cfg["reference"], cfg["elements"], cfg["units"])
    out = tmp_path / f"{unit_id}.extxyz"
    summary = sample_unit(cfg, unit, engine, out, progress=False)
    return cfg, unit, read(out, ":"), summary


def test_quench_branch_reaches_its_temperatures_and_densities(tmp_path):
    table = [[700, 2.40], [1300, 2.25]]
    cfg = dict(AL, sampling={
        "n_atoms": 108, "melt_temperature": 2000, "melt_steps": 500, "equilibration_steps": 1000,
        "production_steps": 3000, "sample_every": 30,
        "branches": [{"id": "q", "kind": "quench", "phase": "liquid", "temperatures": [1300, 1000, 700],
                      "density_table": table}]})
    cfg, unit, frames, summary = _run(cfg, tmp_path, "q")
    assert len(frames) == 3 * 100
    by_state = {}
    for fr in frames:
        by_state.setdefault(fr.info["state_id"], []).append(fr)
    assert list(by_state) == ["q_T1300K", "q_T1000K", "q_T700K"]
    for sid, frs in by_state.items():
        T = frs[0].info["T_target"]
        T_mean = np.mean([f.info["T_inst"] for f in frs])
        assert abs(T_mean / T - 1) < 0.04, (sid, T_mean)
        rho = np.interp(T, [700, 1300], [2.40, 2.25])
        v = volume_per_atom_from_density(rho, {}, ["Al"])
        assert frs[0].get_volume() / len(frs[0]) == pytest.approx(v, rel=1e-6)
        assert all(f.info["branch"] == "q" and f.info["phase"] == "liquid" for f in frs)
        assert math.isnan(frs[0].info["P_target"])
    # the quench lowers the potential energy per atom monotonically
    e = [np.mean([f.get_potential_energy() / len(f) for f in frs]) for frs in by_state.values()]
    assert e[0] > e[1] > e[2]
    assert summary["states"]["q_T700K"]["frames"] == 100


def test_heating_branch_npt_expands_at_zero_pressure(tmp_path):
    cfg = dict(AL, sampling={
        "n_atoms": 108, "equilibration_steps": 1500, "production_steps": 1500, "sample_every": 50,
        "branches": [{"id": "h", "kind": "heating", "phase": "fcc", "temperatures": [100, 700], "P": 0}]})
    cfg, unit, frames, _ = _run(cfg, tmp_path, "h")
    from meltpot.data.index import frame_row

    rows = {}
    for fr in frames:
        rows.setdefault(fr.info["state_id"], []).append(frame_row(fr, "metal"))
    v = {sid: np.mean([r["volume_per_atom"] for r in rs]) for sid, rs in rows.items()}
    p = {sid: np.mean([r["P_inst"] for r in rs]) for sid, rs in rows.items()}
    assert v["h_T700K"] > v["h_T100K"] * 1.01  # thermal expansion of fcc Al
    assert all(abs(x) < 0.3 for x in p.values()), p  # GPa: the barostat holds P ≈ 0
    # fcc Al at 100 K with the Mendelev EAM: a ≈ 4.05 Å → 16.6 Å³/atom
    assert v["h_T100K"] == pytest.approx(16.6, rel=0.02)
    assert all(fr.get_stress().shape == (6,) for fr in frames)


def test_cubic_crystals_keep_their_structure_under_npt(tmp_path):
    """bcc Al (unstable at 0 GPa) is kept at 10 GPa in a cubic cell; fcc and hcp at 0 GPa."""
    from ase.neighborlist import neighbor_list

    cfg = dict(AL, sampling={
        "n_atoms": 128, "equilibration_steps": 500, "production_steps": 1500, "sample_every": 1500,
        "states": [{"id": "bcc", "phase": "bcc", "T": 10, "P": 10}, {"id": "fcc", "phase": "fcc", "T": 10, "P": 10},
                   {"id": "hcp", "phase": "hcp", "T": 10, "P": 0}]})
    (bcc,), (fcc,), (hcp,) = (_run(cfg, tmp_path, x)[2] for x in ("bcc", "fcc", "hcp"))
    # bcc: 8 nearest neighbours at a√3/2 (fcc would give 12 at a/√2)
    a = (2 * bcc.get_volume() / len(bcc)) ** (1 / 3)
    i = neighbor_list("i", bcc, 0.5 * (a * 3**0.5 / 2 + a))
    assert np.all(np.bincount(i) == 8)
    e_bcc, e_fcc = bcc.get_potential_energy() / len(bcc), fcc.get_potential_energy() / len(fcc)
    assert e_bcc - e_fcc > 0.02  # eV/atom: bcc stays above fcc
    # close-packed hcp: 12 neighbours within the midpoint of the first two shells
    a_hcp = (hcp.get_volume() / len(hcp) * 4 / (3**0.5 * (8 / 3) ** 0.5)) ** (1 / 3)
    assert np.all(np.bincount(neighbor_list("i", hcp, 0.5 * (a_hcp + a_hcp * 2**0.5))) == 12)
    lengths = bcc.cell.lengths()
    assert np.ptp(lengths) / lengths.mean() < 1e-9  # the cell stays cubic


def test_alni_preset_branches_run_with_the_alloy_eam(tmp_path):
    """The Al–Ni preset (thesis ch. 4) at reduced size: the equiatomic quench and bcc heating
    branches run with the Ni–Al EAM and keep their composition; hotter liquid, higher energy."""
    import yaml

    cfg = yaml.safe_load(open(__file__.replace("tests/test_sampling.py", "config/presets/alni-thesis.yaml")))
    cfg["sampling"].update(n_atoms=54, melt_steps=300, equilibration_steps=200, production_steps=400,
                           sample_every=100)
    for b in cfg["sampling"]["branches"]:
        if b["id"] == "quench_Ni50":
            b["temperatures"] = [2400, 1600]
        if b["id"] == "heating_Ni50":
            b["temperatures"] = [10, 600]
    _, _, frames, _ = _run(cfg, tmp_path, "quench_Ni50")
    assert len(frames) == 8
    for fr in frames:
        sym = fr.get_chemical_symbols()
        assert 2 * sym.count("Ni") == 2 * sym.count("Al") == len(sym) and np.isfinite(fr.get_forces()).all()
    e = {}
    for fr in frames:
        e.setdefault(fr.info["T_target"], []).append(fr.get_potential_energy() / len(fr))
    assert np.mean(e[2400]) > np.mean(e[1600])
    _, _, crystal, _ = _run(cfg, tmp_path, "heating_Ni50")
    assert len(crystal) == 8 and crystal[0].info["phase"] == "bcc"


def test_alcuni_preset_ternary_state_runs_with_emt(tmp_path):
    """The Al–Cu–Ni preset (Ryltsev & Chtchelkatchev compositions) at reduced size: the
    equiatomic ternary liquid runs with ASE's EMT and holds all three elements."""
    import yaml

    cfg = yaml.safe_load(open(__file__.replace("tests/test_sampling.py", "config/presets/alcuni-ryltsev.yaml")))
    cfg["sampling"].update(n_atoms=32, melt_steps=20, equilibration_steps=20, production_steps=40, sample_every=20)
    _, unit, frames, _ = _run(cfg, tmp_path, "AlCuNi")
    assert len(frames) == 2 and unit.unit_id == "AlCuNi"
    for fr in frames:
        sym = fr.get_chemical_symbols()
        assert {"Al", "Cu", "Ni"} <= set(sym) and max(sym.count(e) for e in ("Al", "Cu", "Ni")) <= 12
        assert np.isfinite(fr.get_forces()).all() and fr.info["T_target"] == 1673
