# LAMMPS stage: export the trained potential (TorchScript for the meltpot pair-style plugin, built
# once and cached outside the run; or an ML-IAP pickle, validation_md.route: mliap), run the same
# NVT protocol with the reference potential and with the ML potential from the reference's
# liquid, and compare density, energy, g(r), D.

POTENTIAL_SOURCE = f"{RUN}/models/dense.pt" if VMD["model"] == "dense" else f"{RUN}/selection/agl/chosen.json"


rule plugin:
    input:
        PLUGIN_SOURCES,
    output:
        f"{RUN}/lammps/plugin.txt",
    log:
        f"{RUN}/logs/plugin.log",
    conda:
        ENV
    shell:
        "meltpot plugin build > {output} 2> {log}"


rule export_potential:
    input:
        config=run_config(),
        stage=stage_config("validation_md"),
        model=POTENTIAL_SOURCE,
        cache=DESCRIPTORS,
    output:
        ML_POTENTIAL,
    log:
        f"{RUN}/logs/export_potential.log",
    params:
        how="mliap" if ML_ROUTE == "mliap" else "torchscript",
        cache=lambda wc, input: "" if ML_ROUTE == "mliap" else f"--cache {input.cache}",
    conda:
        ENV_ML
    shell:
        "meltpot export {params.how} {input.model} {params.cache} --out {output} > {log} 2>&1"


rule md_validation_reference:
    input:
        config=run_config(),
        stage=stage_config("validation_md"),
    output:
        summary=f"{VAL}/reference/summary.json",
        dump=f"{VAL}/reference/dump.lammpstrj",
        thermo=f"{VAL}/reference/thermo.csv",
    log:
        f"{RUN}/logs/md_validation_reference.log",
    benchmark:
        f"{RUN}/benchmarks/md_validation_reference.tsv"
    threads: 1
    params:
        sets=_md_sets(False),
        out_dir=lambda wc, output: Path(output.summary).parent,
    conda:
        ENV
    shell:
        "meltpot md run nvt {input.config} --set {params.sets} --out-dir {params.out_dir} > {log} 2>&1"


rule md_validation_model:
    input:
        unpack(lambda wc: ml_potential_inputs(True)),
        config=run_config(),
        stage=stage_config("validation_md"),
        start=f"{VAL}/reference/dump.lammpstrj",
    output:
        summary=f"{VAL}/model/summary.json",
        dump=f"{VAL}/model/dump.lammpstrj",
        thermo=f"{VAL}/model/thermo.csv",
    log:
        f"{RUN}/logs/md_validation_model.log",
    benchmark:
        f"{RUN}/benchmarks/md_validation_model.tsv"
    threads: 1
    resources:
        gpu=md_gpus(True),
    params:
        sets=_md_sets(True),
        out_dir=lambda wc, output: Path(output.summary).parent,
        pot=lambda wc, input: ml_potential_args(input),
        limit="" if VMD["extrapolation_limit"] is None else f"--extrapolation-limit {VMD['extrapolation_limit']}",
    conda:
        ENV_ML
    shell:
        "meltpot md run nvt {input.config} --set {params.sets} structure_file=$(realpath {input.start})"
        " --out-dir {params.out_dir} {params.pot} {params.limit} > {log} 2>&1"


rule md_validation_compare:
    input:
        config=run_config(),
        reference=f"{VAL}/reference/summary.json",
        model=f"{VAL}/model/summary.json",
    output:
        table=report(f"{VAL}/comparison/comparison.csv", caption="../../report/md_validation.rst",
                     category="4 LAMMPS validation"),
        gr=report(f"{VAL}/comparison/gr.png", caption="../../report/md_validation.rst",
                  category="4 LAMMPS validation"),
        msd=f"{VAL}/comparison/msd.png",
        json=f"{VAL}/comparison/comparison.json",
    log:
        f"{RUN}/logs/md_validation_compare.log",
    params:
        reference=lambda wc, input: Path(input.reference).parent,
        model=lambda wc, input: Path(input.model).parent,
        out_dir=lambda wc, output: Path(output.table).parent,
    conda:
        ENV
    shell:
        "meltpot md compare reference={params.reference} model={params.model} --config {input.config}"
        " --out-dir {params.out_dir} > {log} 2>&1"
