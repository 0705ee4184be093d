# Melting stage (config melting_md), per potential (reference and/or the exported model):
# solid–liquid coexistence runs per temperature and replica (adaptive CNA of each), heating and
# cooling H(T) ramps per replica, and T_m, superheating and undercooling side by side.


rule md_two_phase:
    input:
        unpack(lambda wc: ml_potential_inputs(wc.potential == "model")),
        config=run_config(),
        stage=stage_config("melting_two_phase"),
    output:
        summary=f"{MLTDIR}/{{potential}}/two_phase/T{{T}}_r{{replica}}/summary.json",
        dump=f"{MLTDIR}/{{potential}}/two_phase/T{{T}}_r{{replica}}/dump.lammpstrj",
        thermo=f"{MLTDIR}/{{potential}}/two_phase/T{{T}}_r{{replica}}/thermo.csv",
    wildcard_constraints:
        potential="reference|model",
        T=r"[0-9.]+",
        replica=r"[0-9]+",
    log:
        f"{RUN}/logs/md_two_phase_{{potential}}_T{{T}}_r{{replica}}.log",
    benchmark:
        f"{RUN}/benchmarks/md_two_phase_{{potential}}_T{{T}}_r{{replica}}.tsv"
    threads: 1
    resources:
        runtime=720,
        gpu=lambda wc: md_gpus(wc.potential == "model"),
    params:
        sets=two_phase_sets(),
        out_dir=lambda wc, output: Path(output.summary).parent,
        pot=lambda wc, input: ml_potential_args(input),
    conda:
        ENV_ML if ML_ROUTE == "mliap" and "model" in MLT["potentials"] else ENV
    shell:
        "meltpot md run two_phase {input.config} --set T={wildcards.T} {params.sets}"
        " --replica {wildcards.replica} --out-dir {params.out_dir} {params.pot} > {log} 2>&1"


rule two_phase_cna:
    input:
        f"{MLTDIR}/{{potential}}/two_phase/{{run}}/dump.lammpstrj",
    output:
        f"{MLTDIR}/{{potential}}/two_phase/{{run}}/cna.csv",
    wildcard_constraints:
        potential="reference|model",
    log:
        f"{RUN}/logs/two_phase_cna_{{potential}}_{{run}}.log",
    params:
        types=TYPES,
    conda:
        ENV
    shell:
        "meltpot analyze cna {input} --types {params.types} --no-progress --out {output} > {log} 2>&1"


rule md_ramp:
    input:
        unpack(lambda wc: ml_potential_inputs(wc.potential == "model")),
        config=run_config(),
        stage=lambda wc: stage_config(f"melting_ramp_{wc.direction}"),
    output:
        summary=f"{MLTDIR}/{{potential}}/ramp/{{direction}}_r{{replica}}/summary.json",
        table=f"{MLTDIR}/{{potential}}/ramp/{{direction}}_r{{replica}}/ramp.csv",
    wildcard_constraints:
        potential="reference|model",
        direction="heat|cool",
        replica=r"[0-9]+",
    log:
        f"{RUN}/logs/md_ramp_{{potential}}_{{direction}}_r{{replica}}.log",
    benchmark:
        f"{RUN}/benchmarks/md_ramp_{{potential}}_{{direction}}_r{{replica}}.tsv"
    threads: 1
    resources:
        runtime=720,
        gpu=lambda wc: md_gpus(wc.potential == "model"),
    params:
        sets=lambda wc: ramp_sets(wc.direction),
        out_dir=lambda wc, output: Path(output.summary).parent,
        pot=lambda wc, input: ml_potential_args(input),
    conda:
        ENV_ML if ML_ROUTE == "mliap" and "model" in MLT["potentials"] else ENV
    shell:
        "meltpot md run ramp {input.config} {params.sets}"
        " --replica {wildcards.replica} --out-dir {params.out_dir} {params.pot} > {log} 2>&1"


rule melting_compare:
    input:
        melting_outputs(),
        stage=stage_config("melting_analysis"),
    output:
        table=report(f"{MLTDIR}/melting.csv", caption="../../report/melting.rst", category="7 melting"),
        two_phase=f"{MLTDIR}/melting_two_phase.csv",
        ramps=f"{MLTDIR}/melting_ramps.csv",
        summary=f"{MLTDIR}/melting.json",
        png=report(f"{MLTDIR}/melting.png", caption="../../report/melting.rst", category="7 melting"),
    log:
        f"{RUN}/logs/melting_compare.log",
    params:
        folders=" ".join(f"{pot}={MLTDIR}/{pot}" for pot in MLT["potentials"]),
        tol=MLT["tol"],
        molar_mass=f" --molar-mass {molar_mass():.6g}" if molar_mass() else "",
    conda:
        ENV
    shell:
        "meltpot analyze melting {params.folders} --tol {params.tol}{params.molar_mass} --out {output.table} > {log} 2>&1"
