# meltpot workflow. Run: snakemake --cores 2            (the small default, config/config.yaml)
#                    or: snakemake --cores 2 --configfile config/presets/lj.yaml
# Every rule is a thin call of the `meltpot` CLI; the library never imports Snakemake.

# config/config.yaml is the default. A --configfile (a preset) replaces it whole: Snakemake's
# configfile directive would deep-merge the two and mix the default's states into a preset.
# --config key=value overrides apply on top of either.
include: "workflow/rules/common.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/label.smk"
include: "workflow/rules/descriptors.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/lammps.smk"
include: "workflow/rules/nucleation.smk"
include: "workflow/rules/transport.smk"
include: "workflow/rules/melting.smk"
include: "workflow/rules/active.smk"
include: "workflow/rules/cluster.smk"

# tiny bookkeeping rules run on the submitting host, never as cluster jobs
localrules: stage_config


onstart:
    # a Slurm run: failing status queries end it within a bounded time (workflow/rules/cluster.smk)
    start_cluster_guards()
    # a changed config under an existing run_id: keep the previous one (config_history/) and say
    # which keys changed; the stages that depend on them rerun in place
    from meltpot.config_history import archive_if_changed

    _archived, _keys = archive_if_changed(RUN_CONFIG, yaml_text(CFG))
    if _archived:
        print(f"meltpot: the config of run {CFG['run_id']} changed ({', '.join(_keys)}); "
              f"the previous one is kept as {_archived}; dependent stages rerun in place")
        write_run_config()


rule all:
    input:
        f"{RUN}/dataset/index.parquet",
        f"{RUN}/dataset/splits.parquet",
        DESCRIPTORS,
        f"{RUN}/evaluation/dense/metrics.json",
        f"{RUN}/selection/comparison/comparison.csv",
        *STABILITY,
        *([f"{VAL}/comparison/comparison.csv"] if VMD["enabled"] else []),
        *([f"{NUCDIR}/ttt_fraction.csv", f"{NUCDIR}/rates.csv"] if NUC["enabled"] else []),
        *([f"{TRDIR}/arrhenius.csv"] if TRN["enabled"] else []),
        *([f"{MLTDIR}/melting.csv"] if MLT["enabled"] else []),
        *([f"{RUN}/active/iterations.csv"] if AL["enabled"] else []),
        f"{RUN}/manifest.json",
        f"{RUN}/summary.md",
