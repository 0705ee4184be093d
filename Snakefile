# meltpot workflow. Run: snakemake --cores 2            (the small default, config/config.yaml)
#                    or: snakemake --cores 2 --configfile config/presets/lj.yaml
# Every rule is a thin call of the `meltpot` CLI; the library never imports Snakemake.

configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/sample.smk"


rule all:
    input:
        f"{RUN}/dataset/index.parquet",
        f"{RUN}/dataset/splits.parquet",
        f"{RUN}/manifest.json",
