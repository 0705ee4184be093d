"""``meltpot summary``, ``meltpot manifest``: the run's one-page summary and its manifest
(:mod:`meltpot.run_summary`, :mod:`meltpot.manifest`)."""

from __future__ import annotations

from .options import command


def add_commands(sub) -> None:
    sm = command(sub, "summary", "write summary.md of a run folder (the numbers of every stage that ran)")
    sm.add_argument("run_dir", help="results/<run_id>")
    sm.add_argument("--out", help="default: <run_dir>/summary.md")
    sm.set_defaults(func=cmd_summary)

    m = command(sub, "manifest", "write a run manifest (config, commit, versions, checksums)")
    m.add_argument("config")
    m.add_argument("--out", required=True, help="manifest.json")
    m.add_argument("--outputs", nargs="*", help="output files to checksum")
    m.add_argument("--summaries", nargs="*", help="sampling summary JSON files to include")
    m.add_argument("--benchmarks", help="folder of Snakemake benchmark files: per-rule wall/CPU times and memory")
    m.set_defaults(func=cmd_manifest)


def cmd_summary(args) -> int:
    from ..run_summary import write_summary

    print(f"{write_summary(args.run_dir, args.out)}: written")
    return 0


def cmd_manifest(args) -> int:
    from ..config import load_config
    from ..manifest import run_manifest, write_json

    write_json(args.out, run_manifest(load_config(args.config), args.config, outputs=args.outputs or [],
                                      summaries=args.summaries or [], benchmarks=args.benchmarks))
    print(f"{args.out}: written")
    return 0
