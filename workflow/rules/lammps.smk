# LAMMPS stage: export the trained potential (TorchScript for the meltpot pair-style plugin, built
# once and cached outside the run; or an ML-IAP pickle, validation_md.route: mliap), run the same
# NVT protocol with the reference potential and with the ML potential from the reference's
# liquid, validation_md.replicas times (replica k: velocity seed of --replica k; model replica k
# from reference replica k's dump), and compare density, energy, g(r), D over the replicas (means,
# spreads, verdicts). One temperature: md/validation/{reference,model}/r<k>/ and comparison/;
# several (validation_md.temperatures): md/validation/T<T>/… and the merged comparison/.

# the validated model: the dense one, the selection's choice, or the active-learning loop's final
# committee (its members exported together: LAMMPS integrates the committee mean)
if VMD["model"] == "active":
    POTENTIAL_SOURCE, POTENTIAL_CACHE = al_final_members, al_final_cache
else:
    POTENTIAL_SOURCE = f"{RUN}/models/dense.pt" if VMD["model"] == "dense" else f"{RUN}/selection/agl/chosen.json"
    POTENTIAL_CACHE = DESCRIPTORS


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
        cache=POTENTIAL_CACHE,
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
        summary=f"{VAL_T}/reference/r{{replica}}/summary.json",
        dump=f"{VAL_T}/reference/r{{replica}}/dump.lammpstrj",
        thermo=f"{VAL_T}/reference/r{{replica}}/thermo.csv",
    wildcard_constraints:
        T=r"[0-9.]+",
        replica=r"[0-9]+",
    log:
        f"{RUN}/logs/md_validation_reference{VAL_TAG}_r{{replica}}.log",
    benchmark:
        f"{RUN}/benchmarks/md_validation_reference{VAL_TAG}_r{{replica}}.tsv"
    threads: 1
    params:
        sets=lambda wc: _md_sets(False, val_temperature(wc)),
        out_dir=lambda wc, output: Path(output.summary).parent,
    conda:
        ENV
    shell:
        "meltpot md run nvt {input.config} --set {params.sets} --replica {wildcards.replica}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule md_validation_model:
    input:
        unpack(lambda wc: ml_potential_inputs(True)),
        config=run_config(),
        stage=stage_config("validation_md"),
        start=f"{VAL_T}/reference/r{{replica}}/dump.lammpstrj",
    output:
        summary=f"{VAL_T}/model/r{{replica}}/summary.json",
        dump=f"{VAL_T}/model/r{{replica}}/dump.lammpstrj",
        thermo=f"{VAL_T}/model/r{{replica}}/thermo.csv",
    wildcard_constraints:
        T=r"[0-9.]+",
        replica=r"[0-9]+",
    log:
        f"{RUN}/logs/md_validation_model{VAL_TAG}_r{{replica}}.log",
    benchmark:
        f"{RUN}/benchmarks/md_validation_model{VAL_TAG}_r{{replica}}.tsv"
    threads: 1
    resources:
        gpu=md_gpus(True),
    params:
        sets=lambda wc: _md_sets(True, val_temperature(wc)),
        out_dir=lambda wc, output: Path(output.summary).parent,
        pot=lambda wc, input: ml_potential_args(input),
        limit="" if VMD["extrapolation_limit"] is None else f"--extrapolation-limit {VMD['extrapolation_limit']}",
    conda:
        ENV_ML
    shell:
        "meltpot md run nvt {input.config} --set {params.sets} structure_file=$(realpath {input.start})"
        " --replica {wildcards.replica} --out-dir {params.out_dir} {params.pot} {params.limit} > {log} 2>&1"


rule md_validation_compare:
    input:
        config=run_config(),
        stage=stage_config("validation_compare"),
        reference=lambda wc: val_replicas(wc, "reference"),
        model=lambda wc: val_replicas(wc, "model"),
    output:
        table=report(f"{VAL_T}/comparison/comparison.csv", caption="../../report/md_validation.rst",
                     category="4 LAMMPS validation"),
        gr=report(f"{VAL_T}/comparison/gr.png", caption="../../report/md_validation.rst",
                  category="4 LAMMPS validation"),
        msd=f"{VAL_T}/comparison/msd.png",
        json=f"{VAL_T}/comparison/comparison.json",
        replicas=report(f"{VAL_T}/comparison/replicas.csv", caption="../../report/md_validation.rst",
                        category="4 LAMMPS validation"),
    wildcard_constraints:
        T=r"[0-9.]+",
    log:
        f"{RUN}/logs/md_validation_compare{VAL_TAG}.log",
    params:
        reference=lambda wc, input: val_folders(input.reference),
        model=lambda wc, input: val_folders(input.model),
        out_dir=lambda wc, output: Path(output.table).parent,
    conda:
        ENV
    shell:
        "meltpot md compare reference={params.reference} model={params.model} --config {input.config}"
        " --out-dir {params.out_dir} > {log} 2>&1"


if VAL_MULTI:

    rule md_validation_combine:
        input:
            [f"{val_dir(T)}/comparison/comparison.json" for T in VAL_TEMPS],
        output:
            table=report(f"{VAL}/comparison/comparison.csv", caption="../../report/md_validation.rst",
                         category="4 LAMMPS validation"),
            json=f"{VAL}/comparison/comparison.json",
            replicas=f"{VAL}/comparison/replicas.csv",
        log:
            f"{RUN}/logs/md_validation_combine.log",
        params:
            parts=" ".join(f"T{T}={val_dir(T)}/comparison" for T in VAL_TEMPS),
            out_dir=lambda wc, output: Path(output.table).parent,
        conda:
            ENV
        shell:
            "meltpot md compare --combine {params.parts} --out-dir {params.out_dir} > {log} 2>&1"
