# Transport stage (config transport_md): NVT liquids per temperature and replica, D from the MSD
# and the Green–Kubo shear viscosity per temperature (replicas averaged), Arrhenius fit of D(T).


rule md_transport:
    input:
        unpack(lambda wc: ml_potential_inputs(TRN["potential"] == "model")),
        config=run_config(),
        stage=stage_config("transport_md"),
    output:
        summary=f"{TRDIR}/T{{T}}_r{{replica}}/summary.json",
        dump=f"{TRDIR}/T{{T}}_r{{replica}}/dump.lammpstrj",
        pressure=f"{TRDIR}/T{{T}}_r{{replica}}/pressure.dat",
    wildcard_constraints:
        T=r"[0-9.]+",
        replica=r"[0-9]+",
    log:
        f"{RUN}/logs/md_transport_T{{T}}_r{{replica}}.log",
    benchmark:
        f"{RUN}/benchmarks/md_transport_T{{T}}_r{{replica}}.tsv"
    threads: 1
    resources:
        runtime=720,
        gpu=md_gpus(TRN["potential"] == "model"),
    params:
        sets=transport_sets(),
        out_dir=lambda wc, output: Path(output.summary).parent,
        pot=lambda wc, input: ml_potential_args(input),
    conda:
        md_env(TRN["potential"] == "model")
    shell:
        "meltpot md run nvt {input.config} --set T={wildcards.T} {params.sets}"
        " --replica {wildcards.replica} --out-dir {params.out_dir} {params.pot} > {log} 2>&1"


rule transport_temperature:
    input:
        dumps=lambda wc: [f"{TRDIR}/T{wc.T}_r{r}/dump.lammpstrj" for r in range(TRN["replicas"])],
        pressure=lambda wc: [f"{TRDIR}/T{wc.T}_r{r}/pressure.dat" for r in range(TRN["replicas"])],
    output:
        diffusion=f"{TRDIR}/T{{T}}/msd/diffusion.csv",
        viscosity=f"{TRDIR}/T{{T}}/viscosity/viscosity.csv",
    wildcard_constraints:
        T=r"[0-9.]+",
    log:
        f"{RUN}/logs/transport_T{{T}}.log",
    params:
        types=TYPES,
        timestep=CFG["md"]["timestep"],
        units=CFG["units"],
        msd_dir=lambda wc, output: Path(output.diffusion).parent,
        visc_dir=lambda wc, output: Path(output.viscosity).parent,
    conda:
        ENV
    shell:
        "(meltpot analyze msd {input.dumps} --types {params.types} --timestep {params.timestep}"
        " --units {params.units} --no-progress --out-dir {params.msd_dir}"
        " && meltpot analyze viscosity {input.pressure} --diagonal --timestep {params.timestep}"
        " --units {params.units} --no-progress --out-dir {params.visc_dir}) > {log} 2>&1"


rule transport_arrhenius:
    input:
        diffusion=[f"{TRDIR}/T{T}/msd/diffusion.csv" for T in TR_TEMPS],
        viscosity=[f"{TRDIR}/T{T}/viscosity/viscosity.csv" for T in TR_TEMPS],
    output:
        table=report(f"{TRDIR}/arrhenius.csv", caption="../../report/transport.rst", category="6 transport"),
        plot=report(f"{TRDIR}/arrhenius.png", caption="../../report/transport.rst", category="6 transport"),
        fit=f"{TRDIR}/arrhenius.json",
        viscosity=report(f"{TRDIR}/arrhenius_viscosity.png", caption="../../report/transport.rst",
                         category="6 transport"),
    log:
        f"{RUN}/logs/transport_arrhenius.log",
    params:
        units=CFG["units"],
        pattern=r"/T(?P<T>[0-9.]+)/(msd|viscosity)/",
    conda:
        ENV
    shell:
        "meltpot analyze arrhenius {input.diffusion} --pattern '{params.pattern}' --units {params.units}"
        " --viscosity {input.viscosity} --out {output.table} > {log} 2>&1"
