# Sampling stage: reference MD per state/branch, imports, validated dataset index, splits.


rule stage_config:
    output:
        f"{RUN}/config/{{stage}}.yaml",
    wildcard_constraints:
        stage="|".join(STAGE_KEYS),
    params:
        text=lambda wc: yaml.safe_dump(stage_slice(wc.stage), sort_keys=True),
    log:
        f"{RUN}/logs/stage_config_{{stage}}.log",
    conda:
        ENV
    shell:
        "printf '%s' {params.text:q} > {output} 2> {log}"


rule sample:
    input:
        config=run_config(),
        stage=stage_config("sampling"),
    output:
        frames=f"{RUN}/frames/{{unit}}.extxyz",
        summary=f"{RUN}/frames/{{unit}}.summary.json",
    wildcard_constraints:
        unit="(?!import_)[A-Za-z0-9][A-Za-z0-9_.-]*",
    log:
        f"{RUN}/logs/sample/{{unit}}.log",
    benchmark:
        f"{RUN}/benchmarks/sample/{{unit}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS=1 meltpot sample {input.config} --unit {wildcards.unit} --out {output.frames}"
        " --summary {output.summary} 2> {log}"


rule import_frames:
    input:
        config=run_config(),
        stage=stage_config("imports"),
    output:
        f"{RUN}/frames/import_{{name}}.extxyz",
    log:
        f"{RUN}/logs/import/{{name}}.log",
    conda:
        ENV
    shell:
        "meltpot import {input.config} --id {wildcards.name} --out {output} 2> {log}"


rule dataset:
    input:
        config=run_config(),
        frames=dataset_frames,
        stage=stage_config("dataset"),
    output:
        index=f"{RUN}/dataset/index.parquet",
        states=f"{RUN}/dataset/states.csv",
        plot=report(f"{RUN}/dataset/states.png", caption="../../report/states.rst", category="1 data"),
        report=f"{RUN}/dataset/validation_report.csv",
    params:
        out_dir=lambda wc, output: Path(output.index).parent,
    log:
        f"{RUN}/logs/dataset.log",
    conda:
        ENV
    shell:
        "meltpot dataset {input.config} --frames {input.frames} --out-dir {params.out_dir} 2> {log}"


rule split:
    input:
        config=run_config(),
        index=f"{RUN}/dataset/index.parquet",
        stage=stage_config("split"),
    output:
        f"{RUN}/dataset/splits.parquet",
    log:
        f"{RUN}/logs/split.log",
    conda:
        ENV
    shell:
        "meltpot split {input.config} --index {input.index} --out {output} 2> {log}"


rule manifest:
    input:
        config=f"{RUN}/config.yaml",
        outputs=FRAME_FILES + [f"{RUN}/dataset/index.parquet", f"{RUN}/dataset/splits.parquet", DESCRIPTORS,
                               f"{RUN}/models/dense.pt", f"{RUN}/evaluation/dense/metrics.json",
                               f"{RUN}/selection/agl/chosen.json", f"{RUN}/selection/comparison/comparison.csv"]
        + STABILITY
        + ([ML_POTENTIAL, f"{VAL}/comparison/comparison.csv"] if VMD["enabled"] else [])
        + ([f"{NUCDIR}/ttt_fraction.csv", f"{NUCDIR}/rates.csv"] if NUC["enabled"] else [])
        + ([f"{TRDIR}/arrhenius.csv"] if TRN["enabled"] else []),
        summaries=[f"{RUN}/frames/{u}.summary.json" for u in UNITS],
    output:
        f"{RUN}/manifest.json",
    params:
        benchmarks=lambda wc, output: Path(output[0]).parent / "benchmarks",
    log:
        f"{RUN}/logs/manifest.log",
    conda:
        ENV
    shell:
        "meltpot manifest {input.config} --out {output} --outputs {input.outputs}"
        " --summaries {input.summaries} --benchmarks {params.benchmarks} 2> {log}"


rule summary:
    input:
        manifest=f"{RUN}/manifest.json",
    output:
        report(f"{RUN}/summary.md", caption="../../report/summary.rst", category="0 run"),
    log:
        f"{RUN}/logs/summary.log",
    params:
        run_dir=lambda wc, input: Path(input.manifest).parent,
    conda:
        ENV
    shell:
        "meltpot summary {params.run_dir} --out {output} > {log} 2>&1"

