# Descriptor stage: symmetry functions of every frame in one HDF5 cache per feature set,
# with per-feature statistics over the training split (meltpot descriptors compute); and, when
# forces are fitted, the derivative store ∂G/∂r of a subset of the frames (meltpot descriptors
# derivatives), content-addressed in the same way.
#
# The output is flagged update(): Snakemake keeps the existing file when the rule reruns
# (a touched frame file, a new split), and the CLI recomputes only what the content hashes
# say changed: nothing, the statistics (new split) or everything (new frames/feature set).


rule descriptors:
    input:
        config=run_config(),
        index=f"{RUN}/dataset/index.parquet",
        splits=f"{RUN}/dataset/splits.parquet",
        featureset=FEATURESET_FILE,
        stage=stage_config("descriptors"),
    output:
        update(DESCRIPTORS),
    log:
        f"{RUN}/logs/descriptors.log",
    benchmark:
        f"{RUN}/benchmarks/descriptors.tsv"
    threads: 1  # one torch thread was measured faster than two for ~256-atom frames
    resources:
        mem_mb=4000,
    conda:
        ENV
    shell:
        "meltpot descriptors compute {input.config} --index {input.index} --splits {input.splits}"
        " --out {output} --threads {threads} 2> {log}"


rule derivatives:
    input:
        config=run_config(),
        index=f"{RUN}/dataset/index.parquet",
        splits=f"{RUN}/dataset/splits.parquet",
        featureset=FEATURESET_FILE,
        stage=stage_config("derivatives"),
    output:
        update(DERIVATIVES),
    log:
        f"{RUN}/logs/derivatives.log",
    benchmark:
        f"{RUN}/benchmarks/derivatives.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "meltpot descriptors derivatives {input.config} --index {input.index} --splits {input.splits}"
        " --out {output} --threads {threads} --no-progress > {log} 2>&1"
