# Nucleation stage (config nucleation_md): isothermal runs after a quench, replicas per
# temperature, CNA and solid-cluster tables per run, TTT tables and plots over all runs, and
# nucleation rates with the replicas that did not crystallise counted as right-censored.


rule md_nucleation:
    input:
        unpack(lambda wc: ml_potential_inputs(NUC["potential"] == "model")),
        config=run_config(),
        stage=stage_config("nucleation_md"),
    output:
        summary=f"{NUCDIR}/T{{T}}_r{{replica}}/summary.json",
        dump=f"{NUCDIR}/T{{T}}_r{{replica}}/dump.lammpstrj",
    wildcard_constraints:
        T=r"[0-9.]+",
        replica=r"[0-9]+",
    log:
        f"{RUN}/logs/md_nucleation_T{{T}}_r{{replica}}.log",
    benchmark:
        f"{RUN}/benchmarks/md_nucleation_T{{T}}_r{{replica}}.tsv"
    threads: 1
    resources:
        runtime=720,
        gpu=md_gpus(NUC["potential"] == "model"),
    params:
        sets=nucleation_sets(),
        out_dir=lambda wc, output: Path(output.summary).parent,
        pot=lambda wc, input: ml_potential_args(input),
    conda:
        md_env(NUC["potential"] == "model")
    shell:
        "meltpot md run nucleation {input.config} --set T={wildcards.T} {params.sets}"
        " --replica {wildcards.replica} --out-dir {params.out_dir} {params.pot} > {log} 2>&1"


rule nucleation_order:
    input:
        f"{NUCDIR}/T{{T}}_r{{replica}}/dump.lammpstrj",
    output:
        cna=f"{NUCDIR}/analysis/cna_T{{T}}_r{{replica}}.csv",
        clusters=f"{NUCDIR}/analysis/clusters_T{{T}}_r{{replica}}.csv",
        cna_png=report(f"{NUCDIR}/analysis/cna_T{{T}}_r{{replica}}.png", caption="../../report/cna.rst",
                       category="5 nucleation", subcategory="CNA fractions"),
    wildcard_constraints:
        T=r"[0-9.]+",
        replica=r"[0-9]+",
    log:
        f"{RUN}/logs/nucleation_order_T{{T}}_r{{replica}}.log",
    params:
        types=TYPES,
    conda:
        ENV
    shell:
        "(meltpot analyze cna {input} --types {params.types} --no-progress --out {output.cna}"
        " && meltpot analyze clusters {input} --types {params.types} --no-progress --out {output.clusters})"
        " > {log} 2>&1"


rule nucleation_ttt:
    input:
        stage=stage_config("nucleation_analysis"),
        cna=[f"{NUCDIR}/analysis/cna_{run}.csv" for run in NUC_RUNS],
        clusters=[f"{NUCDIR}/analysis/clusters_{run}.csv" for run in NUC_RUNS],
    output:
        fraction=report(f"{NUCDIR}/ttt_fraction.csv", caption="../../report/ttt.rst", category="5 nucleation"),
        fraction_png=report(f"{NUCDIR}/ttt_fraction.png", caption="../../report/ttt.rst", category="5 nucleation"),
        onset=f"{NUCDIR}/ttt_onset.csv",
    log:
        f"{RUN}/logs/nucleation_ttt.log",
    params:
        level=NUC["level"],
        size=NUC["onset_size"],
        pattern=r"T(?P<T>[0-9.]+)_r(?P<replica>[0-9]+)",
    conda:
        ENV
    shell:
        "(meltpot analyze ttt {input.cna} --pattern '{params.pattern}' --criterion fraction --level {params.level}"
        " --from-first-frame"
        " --out {output.fraction}"
        " && meltpot analyze ttt {input.clusters} --pattern '{params.pattern}' --criterion cluster"
        " --size {params.size} --from-first-frame --out {output.onset}) > {log} 2>&1"


rule nucleation_rates:
    input:
        stage=stage_config("nucleation_rates"),
        clusters=[f"{NUCDIR}/analysis/clusters_{run}.csv" for run in NUC_RUNS],
    output:
        rates=report(f"{NUCDIR}/rates.csv", caption="../../report/rates.rst", category="5 nucleation"),
        runs=f"{NUCDIR}/rates_runs.csv",
        png=report(f"{NUCDIR}/rates.png", caption="../../report/rates.rst", category="5 nucleation"),
    log:
        f"{RUN}/logs/nucleation_rates.log",
    params:
        size=NUC["onset_size"],
        lag=NUC["rate_lag"],
        confidence=NUC["rate_confidence"],
        units=CFG["units"],
        label=NUC["potential"],
        pattern=r"T(?P<T>[0-9.]+)_r(?P<replica>[0-9]+)",
    conda:
        ENV
    shell:
        "meltpot analyze rates {input.clusters} --pattern '{params.pattern}' --criterion cluster --size {params.size}"
        " --lag {params.lag} --confidence {params.confidence} --units {params.units} --label {params.label}"
        " --from-first-frame --out {output.rates} > {log} 2>&1"
