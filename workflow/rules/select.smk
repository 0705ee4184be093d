# Feature selection: the λ path from the dense model (GL → AGL → retraining), one job per λ
# (the checkpoint select_lambda: the path ends when no feature survives, so its length depends
# on the data; each job reuses the earlier λ folders when their fingerprints match), the path
# table and the choice (select_path), filter baselines at the AGL set's feature count, and the
# final multi-seed comparison of the full, AGL and filter sets on the test split. With one λ
# per element (line search) the path is one job.

FILTERS = CFG["selection"]["filters"]


checkpoint select_lambda:
    input:
        unpack(lambda wc: SELECT_INPUTS),
        previous=previous_lambda,
    output:
        f"{SELECT}/agl/lambda_{{step}}/result.json",
    wildcard_constraints:
        step=r"[0-9][0-9]",
    log:
        f"{RUN}/logs/select_lambda_{{step}}.log",
    benchmark:
        f"{RUN}/benchmarks/select_lambda_{{step}}.tsv"
    threads: 1
    priority: 10  # the critical path of a run: ahead of the validation MD, which fills the other cores
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        out_dir=lambda wc, output: Path(output[0]).parent.parent,
        k=lambda wc: int(wc.step),
        derivatives=lambda wc, input: derivatives_arg(input),
    conda:
        ENV
    shell:
        "meltpot select path {input.config} --model {input.model} --cache {input.cache} --index {input.index}"
        " --splits {input.splits} --out-dir {params.out_dir} --threads {threads} --until-step {params.k}"
        " {params.derivatives} 2> {log}"


rule select_path:
    input:
        unpack(lambda wc: SELECT_INPUTS),
        steps=[] if PER_ELEMENT else lambda_results,
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
    priority: 10  # the critical path of a run: ahead of the validation MD, which fills the other cores
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        out_dir=lambda wc, output: Path(output.path).parent,
        derivatives=lambda wc, input: derivatives_arg(input),
    conda:
        ENV
    shell:
        "meltpot select path {input.config} --model {input.model} --cache {input.cache} --index {input.index}"
        " --splits {input.splits} --out-dir {params.out_dir} --threads {threads} {params.derivatives} 2> {log}"


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
    priority: 10
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
        **derivatives_input(SELECT_FORCES),
    params:
        sets=lambda wc, input: " ".join([f"agl={input.agl}"] + [f"{m}={f}" for m, f in zip(FILTERS, input.filters)]),
        epochs=f"--max-epochs {CFG['selection']['compare_epochs']}" if CFG["selection"]["compare_epochs"] else "",
        seeds=CFG["selection"]["compare_seeds"],
        out_dir=lambda wc, output: Path(output.table).parent,
        derivatives=lambda wc, input: derivatives_arg(input),
    output:
        table=report(f"{SELECT}/comparison/comparison.csv", caption="../../report/comparison.rst",
                     category="3 feature selection"),
        plot=report(f"{SELECT}/comparison/kept_features.png", caption="../../report/kept.rst",
                    category="3 feature selection"),
    log:
        f"{RUN}/logs/select_compare.log",
    benchmark:
        f"{RUN}/benchmarks/select_compare.tsv"
    threads: 2  # worker processes of one thread each: the sets train side by side (same numbers with 1)
    priority: 10  # the critical path of a run: ahead of the validation MD, which fills the other cores
    conda:
        ENV
    shell:
        "meltpot select compare {input.config} --cache {input.cache} --index {input.index} --splits {input.splits}"
        " --sets {params.sets} --seeds {params.seeds} {params.epochs} --threads 1 --workers {threads}"
        " --out-dir {params.out_dir} {params.derivatives} 2> {log}"


# How stable the choice is: the whole λ path again with other seeds (selection.path_seeds − 1
# extra paths, one job each, beside the run's own per-λ jobs), then the choices side by side.
# (PATH_SEEDS and STABILITY, the target, in common.smk)


rule select_path_seed:
    input:
        unpack(lambda wc: SELECT_INPUTS),
    output:
        f"{SELECT}/stability/path{{seed}}/chosen.json",
    wildcard_constraints:
        seed=r"[1-9][0-9]*",
    log:
        f"{RUN}/logs/select_path_seed{{seed}}.log",
    benchmark:
        f"{RUN}/benchmarks/select_path_seed{{seed}}.tsv"
    threads: 1
    priority: 5  # after the run's own λ path and comparison, ahead of the validation MD
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        out_dir=lambda wc, output: Path(output[0]).parent,
        derivatives=lambda wc, input: derivatives_arg(input),
    conda:
        ENV
    shell:
        "meltpot select path {input.config} --model {input.model} --cache {input.cache} --index {input.index}"
        " --splits {input.splits} --out-dir {params.out_dir} --threads {threads} --path-seed {wildcards.seed}"
        " {params.derivatives} 2> {log}"


rule select_stability:
    input:
        first=f"{SELECT}/agl/chosen.json",
        others=[f"{SELECT}/stability/path{k}/chosen.json" for k in range(1, PATH_SEEDS)],
    output:
        f"{SELECT}/stability/stability.json",
        f"{SELECT}/stability/stability.csv",
    log:
        f"{RUN}/logs/select_stability.log",
    params:
        paths=lambda wc, input: " ".join(str(Path(f).parent) for f in [input.first, *input.others]),
        out_dir=lambda wc, output: Path(output[0]).parent,
    conda:
        ENV
    shell:
        "meltpot select stability --paths {params.paths} --out-dir {params.out_dir} > {log} 2>&1"
