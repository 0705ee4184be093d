"""State grids, branches and initial structures."""

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from meltpot.config import validate_config
from meltpot.sampling.grid import expand_states
from meltpot.sampling.protocols import build_segments
from meltpot.sampling.structures import (build_lattice, decorate, initial_structure,
                                         volume_per_atom_from_density)

BASE = {
    "run_id": "t", "elements": ["Al", "Ni"], "units": "metal",
    "reference": {"engine": "lammps", "pair_style": "eam/alloy", "pair_coeff": ["* * NiAlH_jea.eam.alloy Al Ni"]},
    "sampling": {"melt_temperature": 2500},
}


def test_grid_cartesian_product_and_names():
    cfg = validate_config(dict(BASE, sampling={
        "melt_temperature": 2500,
        "grid": [{"phase": ["fcc", "liquid"], "T": [300, 1500], "P": [0, 10],
                  "composition": [{"Al": 0.75, "Ni": 0.25}]}]}))
    units = expand_states(cfg)
    assert len(units) == 8
    ids = [u.unit_id for u in units]
    assert "liquid_T1500K_P10_Al0.75Ni0.25" in ids
    assert all(u.steps[0].ensemble == "npt" for u in units)


def test_branch_density_interpolation_and_ids():
    cfg = validate_config(dict(BASE, elements=["Al"], sampling={
        "melt_temperature": 2000,
        "branches": [{"id": "q", "kind": "quench", "phase": "liquid", "temperatures": [1300, 1100, 900],
                      "density_table": [[900, 2.4], [1300, 2.2]]}]}))
    (unit,) = expand_states(cfg)
    assert unit.state_ids == ["q_T1300K", "q_T1100K", "q_T900K"]
    assert [s.density for s in unit.steps] == pytest.approx([2.2, 2.3, 2.4])
    assert all(s.branch == "q" and s.ensemble == "nvt" for s in unit.steps)
    segments, production = build_segments(cfg, unit, 256, seed=1)
    labels = [s.label for s in segments]
    assert labels[:2] == ["melt", "cool"]
    assert segments[0].velocity_seed == 1 and all(s.velocity_seed is None for s in segments[1:])
    # each production segment at its own temperature and the volume of its density
    for i, spec in production.items():
        assert segments[i].temperature == spec.T and segments[i].sample_every > 0
        v = volume_per_atom_from_density(spec.density, {}, ["Al"]) * 256
        assert segments[i].volume == pytest.approx(v)


def test_lattices_have_right_volume_and_neighbours():
    v = 16.6
    for phase, n_nb in (("fcc", 12), ("bcc", 8), ("hcp", 12)):
        atoms = build_lattice(phase, 256, v)
        assert atoms.get_volume() / len(atoms) == pytest.approx(v)
        a = (4 * v) ** (1 / 3) if phase != "bcc" else (2 * v) ** (1 / 3)
        nn = a / np.sqrt(2) if phase != "bcc" else a * np.sqrt(3) / 2
        i, _ = neighbor_list("ij", atoms, nn * 1.02)
        assert np.all(np.bincount(i, minlength=len(atoms)) == n_nb), phase
    assert len(build_lattice("fcc", 256, v)) == 256
    assert len(build_lattice("bcc", 250, v)) == 250


def test_random_alloy_exact_counts_and_seeded():
    atoms = build_lattice("fcc", 108, 14.0)
    a = decorate(atoms.copy(), {"Al": 0.7, "Ni": 0.3}, ["Al", "Ni"], np.random.default_rng(3))
    b = decorate(atoms.copy(), {"Al": 0.7, "Ni": 0.3}, ["Al", "Ni"], np.random.default_rng(3))
    syms = a.get_chemical_symbols()
    assert syms.count("Ni") == round(0.3 * 108) and syms == b.get_chemical_symbols()
    liq = initial_structure("liquid", 32, 14.0, {}, ["Al"], np.random.default_rng(0))
    assert set(liq.get_chemical_symbols()) == {"Al"} and len(liq) == 32


def test_mass_density_conversion():
    # fcc Al: a = 4.05 Å → 2.698 g/cm³
    v = 4.05**3 / 4
    assert volume_per_atom_from_density(2.6986, {}, ["Al"]) == pytest.approx(v, rel=1e-3)
