# Labelling by single points (config `labelling`): pick frames from the sampler's trajectories,
# label each chunk with the reference engine in its own job (a cluster profile spreads them).

if LABEL["enabled"]:

    rule label_pick:
        input:
            config=run_config(),
            stage=stage_config("labelling"),
            frames=SAMPLED_FILES,
            featureset=FEATURESET_FILE,
        output:
            chunks=[f"{LABEL_DIR}/picked/chunk_{k}.extxyz" for k in LABEL_CHUNKS],
            table=f"{LABEL_DIR}/picked/picked.csv",
        params:
            out_dir=lambda wc, output: Path(output.table).parent,
        log:
            f"{RUN}/logs/label/pick.log",
        conda:
            ENV
        shell:
            "meltpot label pick {input.config} --frames {input.frames} --out-dir {params.out_dir} > {log} 2>&1"

    rule label_chunk:
        input:
            config=run_config(),
            stage=stage_config("labelling"),
            chunk=f"{LABEL_DIR}/picked/chunk_{{chunk}}.extxyz",
        output:
            frames=f"{LABEL_DIR}/labelled/chunk_{{chunk}}.extxyz",
            report=f"{LABEL_DIR}/labelled/chunk_{{chunk}}.json",
        log:
            f"{RUN}/logs/label/chunk_{{chunk}}.log",
        benchmark:
            f"{RUN}/benchmarks/label/chunk_{{chunk}}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=240,
        conda:
            ENV
        params:
            reuse=lambda wc: label_reuse_arg(wc.chunk),
        shell:
            "OMP_NUM_THREADS=1 meltpot label run {input.config} --frames {input.chunk} --out {output.frames}"
            " --report {output.report} {params.reuse} --no-progress > {log} 2>&1"
