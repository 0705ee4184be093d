# Active learning (config `active_learning`, library meltpot.active): per iteration
# results/<run_id>/active/iter_<i>/ holds the dataset (initial frames + every earlier iteration's
# labelled frames), the committee (one training job per member), the exploration MD jobs, the
# selection, the labelled frames and stop.json (a checkpoint: it decides whether iteration i + 1
# exists). A rerun resumes where the loop stopped, and a raised max_iterations redoes only the stop
# decisions; active/iterations.csv is the loop's table.

if AL["enabled"]:

    wildcard_constraints:
        it=r"\d{3}",
        member=r"\d+",
        job=r"[A-Za-z0-9_.-]+",

    rule al_dataset:
        input:
            config=run_config(),
            stage=stage_config("dataset"),
            frames=al_frames,
        output:
            index=f"{AL_IT}/dataset/index.parquet",
        params:
            out_dir=lambda wc, output: Path(output.index).parent,
        log:
            f"{RUN}/logs/active/iter_{{it}}/dataset.log",
        conda:
            ENV
        shell:
            "meltpot dataset {input.config} --frames {input.frames} --out-dir {params.out_dir} > {log} 2>&1"

    rule al_heldout:
        input:
            config=run_config(),
            stage=stage_config("active_data"),
            index=f"{ALDIR}/iter_000/dataset/index.parquet",
        output:
            frames=f"{ALDIR}/heldout/heldout.extxyz",
            table=f"{ALDIR}/heldout/heldout.csv",
        params:
            out_dir=lambda wc, output: Path(output.table).parent,
        log:
            f"{RUN}/logs/active/heldout.log",
        conda:
            ENV
        shell:
            "meltpot active heldout {input.config} --index {input.index} --out-dir {params.out_dir} > {log} 2>&1"

    rule al_split:
        input:
            config=run_config(),
            stage=stage_config("active_data"),
            index=f"{AL_IT}/dataset/index.parquet",
            heldout=f"{ALDIR}/heldout/heldout.csv",
        output:
            pool=f"{AL_IT}/dataset/splits.parquet",
            members=[f"{AL_IT}/dataset/member_{k}.parquet" for k in range(AL["committee"])],
        params:
            out_dir=lambda wc, output: Path(output.pool).parent,
        log:
            f"{RUN}/logs/active/iter_{{it}}/split.log",
        conda:
            ENV
        shell:
            "meltpot active split {input.config} --index {input.index} --heldout {input.heldout}"
            " --out-dir {params.out_dir} > {log} 2>&1"

    rule al_descriptors:
        input:
            config=run_config(),
            stage=stage_config("descriptors"),
            index=f"{AL_IT}/dataset/index.parquet",
            splits=f"{AL_IT}/dataset/splits.parquet",
            featureset=FEATURESET_FILE,
        output:
            cache=f"{AL_IT}/descriptors/descriptors.h5",
            derivatives=f"{AL_IT}/descriptors/derivatives.h5",
        log:
            f"{RUN}/logs/active/iter_{{it}}/descriptors.log",
        threads: 1
        conda:
            ENV
        shell:
            "(meltpot descriptors compute {input.config} --index {input.index} --splits {input.splits}"
            " --out {output.cache} --threads {threads} && meltpot descriptors derivatives {input.config}"
            " --index {input.index} --splits {input.splits} --out {output.derivatives} --threads {threads}"
            " --no-progress) > {log} 2>&1"

    rule al_train:
        input:
            unpack(al_init),
            config=run_config(),
            stage=stage_config("training"),
            cache=f"{AL_IT}/descriptors/descriptors.h5",
            derivatives=f"{AL_IT}/descriptors/derivatives.h5",
            index=f"{AL_IT}/dataset/index.parquet",
            splits=f"{AL_IT}/dataset/member_{{member}}.parquet",
        output:
            model=f"{AL_IT}/committee/member_{{member}}.pt",
            history=f"{AL_IT}/committee/member_{{member}}.history.csv",
        params:
            seed=lambda wc: derive_seed(CFG["seed"], "active", "member", int(wc.member)),
            init=lambda wc, input: f"--init {input.init}" if "init" in input.keys() else "",
            epochs=al_epochs,
        log:
            f"{RUN}/logs/active/iter_{{it}}/train_{{member}}.log",
        benchmark:
            f"{RUN}/benchmarks/active/iter_{{it}}/train_{{member}}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
        conda:
            ENV
        shell:
            "meltpot train {input.config} --cache {input.cache} --index {input.index} --splits {input.splits}"
            " --derivatives {input.derivatives} --out {output.model} --history {output.history}"
            " --seed {params.seed} {params.init} {params.epochs} --threads {threads} --no-progress 2> {log}"

    rule al_committee:
        input:
            models=[f"{AL_IT}/committee/member_{k}.pt" for k in range(AL["committee"])],
            cache=f"{AL_IT}/descriptors/descriptors.h5",
        output:
            f"{AL_IT}/committee/committee.pt",
        log:
            f"{RUN}/logs/active/iter_{{it}}/committee.log",
        conda:
            ENV
        shell:
            "meltpot export torchscript {input.models} --cache {input.cache} --out {output} > {log} 2>&1"

    rule al_test:
        input:
            config=run_config(),
            models=[f"{AL_IT}/committee/member_{k}.pt" for k in range(AL["committee"])],
            heldout=f"{ALDIR}/heldout/heldout.extxyz",
        output:
            f"{AL_IT}/test.json",
        log:
            f"{RUN}/logs/active/iter_{{it}}/test.log",
        conda:
            ENV
        shell:
            "meltpot active test {input.config} --models {input.models} --heldout {input.heldout}"
            " --out {output} > {log} 2>&1"

    rule al_explore:
        input:
            config=run_config(),
            stage=stage_config("active_explore"),
            committee=f"{AL_IT}/committee/committee.pt",
            index=f"{AL_IT}/dataset/index.parquet",
            plugin=f"{RUN}/lammps/plugin.txt",
        output:
            frames=f"{AL_IT}/explore/{{job}}/frames.extxyz",
            record=f"{AL_IT}/explore/{{job}}/exploration.json",
        params:
            out_dir=lambda wc, output: Path(output.record).parent,
            it=lambda wc: int(wc.it),
        log:
            f"{RUN}/logs/active/iter_{{it}}/explore_{{job}}.log",
        benchmark:
            f"{RUN}/benchmarks/active/iter_{{it}}/explore_{{job}}.tsv"
        threads: 1
        conda:
            ENV
        shell:
            "OMP_NUM_THREADS=1 meltpot active explore {input.config} --job {wildcards.job} --committee {input.committee}"
            " --plugin $(cat {input.plugin}) --iteration {params.it} --index {input.index} --out-dir {params.out_dir}"
            " > {log} 2>&1"

    rule al_select:
        input:
            config=run_config(),
            stage=stage_config("active_select"),
            records=[f"{AL_IT}/explore/{job}/exploration.json" for job in AL_JOBS],
            frames=[f"{AL_IT}/explore/{job}/frames.extxyz" for job in AL_JOBS],
        output:
            selection=f"{AL_IT}/select/selection.json",
            candidates=f"{AL_IT}/select/candidates.extxyz",
            table=f"{AL_IT}/select/deviations.csv",
        params:
            dirs=lambda wc, input: " ".join(str(Path(r).parent) for r in input.records),
            out_dir=lambda wc, output: Path(output.selection).parent,
            it=lambda wc: int(wc.it),
        log:
            f"{RUN}/logs/active/iter_{{it}}/select.log",
        conda:
            ENV
        shell:
            "meltpot active select {input.config} --explore {params.dirs} --iteration {params.it}"
            " --out-dir {params.out_dir} > {log} 2>&1"

    checkpoint al_stop:
        input:
            config=run_config(),
            stage=stage_config("active_stop"),
            selection=f"{AL_IT}/select/selection.json",
            table=f"{AL_IT}/select/deviations.csv",
        output:
            f"{AL_IT}/stop.json",
        log:
            f"{RUN}/logs/active/iter_{{it}}/stop.log",
        conda:
            ENV
        shell:
            "meltpot active stop {input.config} --selection {input.selection} --deviations {input.table}"
            " --out {output} > {log} 2>&1"

    rule al_label:
        input:
            config=run_config(),
            stage=stage_config("labelling"),
            candidates=f"{AL_IT}/select/candidates.extxyz",
        output:
            frames=f"{AL_IT}/labelled.extxyz",
            report=f"{AL_IT}/labelled.json",
        log:
            f"{RUN}/logs/active/iter_{{it}}/label.log",
        benchmark:
            f"{RUN}/benchmarks/active/iter_{{it}}/label.tsv"
        threads: 1
        conda:
            ENV
        shell:
            "OMP_NUM_THREADS=1 meltpot label run {input.config} --frames {input.candidates} --out {output.frames}"
            " --report {output.report} --no-progress > {log} 2>&1"

    rule al_report:
        input:
            config=run_config(),
            stop=lambda wc: [f"{d}/stop.json" for d in al_iterations(wc)],
            selection=lambda wc: [f"{d}/select/selection.json" for d in al_iterations(wc)],
            tests=lambda wc: [f"{d}/test.json" for d in al_iterations(wc)],
            labelled=lambda wc: [f"{d}/labelled.json" for d in al_iterations(wc)[:-1]],
        output:
            table=f"{ALDIR}/iterations.csv",
            hist=report(f"{ALDIR}/deviation_hist.png", category="5 active learning"),
            rmse=report(f"{ALDIR}/rmse_vs_frames.png", category="5 active learning"),
        params:
            dirs=lambda wc, input: " ".join(str(Path(s).parent) for s in input.stop),
            out_dir=lambda wc, output: Path(output.table).parent,
        log:
            f"{RUN}/logs/active/report.log",
        conda:
            ENV
        shell:
            "meltpot active report {input.config} --iterations {params.dirs} --out-dir {params.out_dir} > {log} 2>&1"
