"""Config validation: defaults, schema errors that name the key, semantic checks."""

import copy
from pathlib import Path

import pytest
import yaml

from meltpot.config import config_hash, load_config, validate_config
from meltpot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "config" / "config.yaml"


@pytest.fixture()
def raw():
    return yaml.safe_load(DEFAULT.read_text())


def test_default_and_presets_are_valid():
    cfg = load_config(DEFAULT)
    assert cfg["run_id"] == "al-default"
    assert cfg["md"]["timestep"] == 0.002
    assert cfg["split"]["seed"] is None  # default filled in
    for preset in sorted((ROOT / "config" / "presets").glob("*.yaml")):
        load_config(preset)


def test_schema_usable_by_snakemake_validate(raw):
    from snakemake.utils import validate

    cfg = copy.deepcopy(raw)
    del cfg["md"]["timestep"]
    validate(cfg, schema=str(ROOT / "config" / "schema.yaml"), set_default=True)  # raises if invalid
    assert cfg["md"]["timestep"] == 0.002  # Snakemake applied the schema's default
    bad = copy.deepcopy(raw)
    bad["units"] = "si"
    with pytest.raises(Exception, match="si"):
        validate(bad, schema=str(ROOT / "config" / "schema.yaml"))


def test_unknown_key_named_with_allowed_keys(raw):
    raw["sampling"]["prodution_steps"] = 10
    with pytest.raises(ConfigError) as exc:
        validate_config(raw, source="my.yaml")
    msg = str(exc.value)
    assert "my.yaml" in msg and "sampling.prodution_steps" in msg and "production_steps" in msg


def test_unknown_top_level_key(raw):
    raw["sampels"] = 1
    with pytest.raises(ConfigError, match=r"unknown key sampels"):
        validate_config(raw)


def test_bad_enum_lists_allowed_values(raw):
    raw["sampling"]["states"][0]["phase"] = "fc"
    with pytest.raises(ConfigError) as exc:
        validate_config(raw)
    assert "sampling.states[0].phase" in str(exc.value)
    assert "liquid, fcc, bcc, hcp" in str(exc.value)


def test_wrong_type_named(raw):
    raw["sampling"]["n_atoms"] = "many"
    with pytest.raises(ConfigError, match=r"sampling.n_atoms = 'many' has the wrong type"):
        validate_config(raw)


def test_engine_specific_required_keys(raw):
    del raw["reference"]["pair_style"]
    with pytest.raises(ConfigError, match="pair_style"):
        validate_config(raw)


def test_state_needs_exactly_one_volume_control(raw):
    raw["sampling"]["states"][0]["density"] = 2.7  # already has P
    with pytest.raises(ConfigError, match=r"states\[0\] needs exactly one of P"):
        validate_config(raw)


def test_composition_checks(raw):
    raw["sampling"]["states"][0]["composition"] = {"Al": 0.5, "Ni": 0.5}
    with pytest.raises(ConfigError, match="Ni, not in elements"):
        validate_config(raw)
    raw["elements"] = ["Al", "Ni"]
    raw["sampling"]["states"][0]["composition"] = {"Al": 0.5, "Ni": 0.4}
    with pytest.raises(ConfigError, match="add up to 0.9"):
        validate_config(raw)


def test_duplicate_state_ids(raw):
    raw["sampling"]["states"][1]["id"] = raw["sampling"]["states"][0]["id"]
    with pytest.raises(ConfigError, match="repeated: fcc_300K"):
        validate_config(raw)


def test_unknown_holdout_state(raw):
    raw["split"]["holdout_states"] = ["liquid_951K"]
    with pytest.raises(ConfigError, match="liquid_951K"):
        validate_config(raw)


def test_split_fractions(raw):
    raw["split"]["test"] = 0.2
    with pytest.raises(ConfigError, match="must be 1"):
        validate_config(raw)


def test_liquid_needs_melt_temperature(raw):
    del raw["sampling"]["melt_temperature"]
    with pytest.raises(ConfigError, match="melt_temperature"):
        validate_config(raw)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_id: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_hash_ignores_key_order_and_private_keys(raw):
    a = validate_config(raw)
    b = validate_config(dict(reversed(list(raw.items()))))
    b["_base_dir"] = "/elsewhere"
    assert config_hash(a) == config_hash(b)
    raw["seed"] = 1
    assert config_hash(validate_config(raw)) != config_hash(a)


def test_cli_reports_bad_key_before_work(tmp_path, raw, capsys):
    from meltpot.cli import main

    raw["reference"]["pair_stlye"] = "eam"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "reference.pair_stlye" in err and str(path) in err


def test_no_hot_preset_is_the_default_without_the_hot_liquids():
    """config/presets/al-no-hot.yaml (issue 15's stability check) must not drift from the default."""
    import yaml

    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    no_hot = yaml.safe_load((ROOT / "config" / "presets" / "al-no-hot.yaml").read_text())
    hot = {"liquid_2000K", "liquid_2500K_10GPa", "liquid_3000K_20GPa"}
    assert {s["id"] for s in default["sampling"]["states"]} - {s["id"] for s in no_hot["sampling"]["states"]} == hot
    default["sampling"]["states"] = [s for s in default["sampling"]["states"] if s["id"] not in hot]
    default["run_id"] = no_hot["run_id"]
    assert default == no_hot
