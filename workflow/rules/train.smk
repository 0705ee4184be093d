# Training stage: the dense HDNNP on the cached descriptors (meltpot train), then its
# evaluation on the validation and test splits with parity plots and learning curve
# (meltpot evaluate).


rule train:
    input:
        config=run_config(),
        stage=stage_config("training"),
        cache=DESCRIPTORS,
        index=f"{RUN}/dataset/index.parquet",
        splits=f"{RUN}/dataset/splits.parquet",
        **derivatives_input(TRAIN_FORCES),
    output:
        model=f"{RUN}/models/dense.pt",
        history=f"{RUN}/models/dense.history.csv",
    log:
        f"{RUN}/logs/train_dense.log",
    benchmark:
        f"{RUN}/benchmarks/train_dense.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        checkpoint=f"{RUN}/models/dense.ckpt",
        derivatives=lambda wc, input: derivatives_arg(input),
    conda:
        ENV
    shell:
        "meltpot train {input.config} --cache {input.cache} --index {input.index} --splits {input.splits}"
        " --out {output.model} --history {output.history} --checkpoint {params.checkpoint} {params.derivatives}"
        " --threads {threads} --no-progress 2> {log}"


rule evaluate:
    input:
        config=run_config(),
        model=f"{RUN}/models/dense.pt",
        history=f"{RUN}/models/dense.history.csv",
        cache=DESCRIPTORS,
        index=f"{RUN}/dataset/index.parquet",
        splits=f"{RUN}/dataset/splits.parquet",
    output:
        metrics=f"{RUN}/evaluation/dense/metrics.json",
        per_state=f"{RUN}/evaluation/dense/per_state.csv",
        parity=report(f"{RUN}/evaluation/dense/parity_energy.png", caption="../../report/parity.rst",
                      category="2 dense model"),
    log:
        f"{RUN}/logs/evaluate_dense.log",
    threads: 1
    params:
        out_dir=lambda wc, output: Path(output.metrics).parent,
    conda:
        ENV
    shell:
        "meltpot evaluate {input.config} --model {input.model} --cache {input.cache} --index {input.index}"
        " --splits {input.splits} --history {input.history} --out-dir {params.out_dir}"
        " --threads {threads} 2> {log}"
