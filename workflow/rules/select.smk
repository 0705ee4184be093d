# Feature selection: the λ path from the dense model (GL → AGL → retraining; resumes from
# the per-λ folders it keeps), filter baselines at the AGL set's feature count, and the final
# multi-seed comparison of the full, AGL and filter sets on the test split.

SELECT = f"{RUN}/selection"
FILTERS = CFG["selection"]["filters"]


rule select_path:
    input:
        config=run_config(),
        model=f"{RUN}/models/dense.pt",
        cache=DESCRIPTORS,
        index=f"{RUN}/dataset/index.parquet",
        splits=f"{RUN}/dataset/splits.parquet",
        stage=stage_config("selection"),
    output:
        path=f"{SELECT}/agl/path.csv",
        chosen=f"{SELECT}/agl/chosen.json",
        featureset=f"{SELECT}/agl/selected_featureset.yaml",
        plot=report(f"{SELECT}/agl/path.png", caption="../../report/path.rst", category="3 feature selection"),
    log:
        f"{RUN}/logs/select_path.log",
    benchmark:
        f"{RUN}/benchmarks/select_path.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        out_dir=lambda wc, output: Path(output.path).parent,
    conda:
        ENV
    shell:
        "meltpot select path {input.config} --model {input.model} --cache {input.cache} --index {input.index}"
        " --splits {input.splits} --out-dir {params.out_dir} --threads {threads} 2> {log}"


rule select_filter:
    input:
        config=run_config(),
        cache=DESCRIPTORS,
        index=f"{RUN}/dataset/index.parquet",
        splits=f"{RUN}/dataset/splits.parquet",
        chosen=f"{SELECT}/agl/chosen.json",
    output:
        f"{SELECT}/filters/{{method}}.yaml",
    wildcard_constraints:
        method="pearson|cur|fps",
    log:
        f"{RUN}/logs/select_filter_{{method}}.log",
    conda:
        ENV
    shell:
        "meltpot select filter --config {input.config} --cache {input.cache} --index {input.index}"
        " --splits {input.splits} --method {wildcards.method} --match {input.chosen} --out {output} 2> {log}"


rule select_compare:
    input:
        config=run_config(),
        cache=DESCRIPTORS,
        index=f"{RUN}/dataset/index.parquet",
        splits=f"{RUN}/dataset/splits.parquet",
        agl=f"{SELECT}/agl/selected_featureset.yaml",
        filters=expand(f"{SELECT}/filters/{{method}}.yaml", method=FILTERS),
        stage=stage_config("selection"),
    params:
        sets=lambda wc, input: " ".join([f"agl={input.agl}"] + [f"{m}={f}" for m, f in zip(FILTERS, input.filters)]),
        epochs=f"--max-epochs {CFG['selection']['compare_epochs']}" if CFG["selection"]["compare_epochs"] else "",
        seeds=CFG["selection"]["compare_seeds"],
        out_dir=lambda wc, output: Path(output.table).parent,
    output:
        table=report(f"{SELECT}/comparison/comparison.csv", caption="../../report/comparison.rst",
                     category="3 feature selection"),
        plot=report(f"{SELECT}/comparison/kept_features.png", caption="../../report/kept.rst",
                    category="3 feature selection"),
    log:
        f"{RUN}/logs/select_compare.log",
    benchmark:
        f"{RUN}/benchmarks/select_compare.tsv"
    threads: 1
    conda:
        ENV
    shell:
        "meltpot select compare {input.config} --cache {input.cache} --index {input.index} --splits {input.splits}"
        " --sets {params.sets} --seeds {params.seeds} {params.epochs} --threads {threads}"
        " --out-dir {params.out_dir} 2> {log}"
