"""The ``radmine`` command line (also ``python -m radmine``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DESCRIPTION = """\
radmine mines radiology reports and key images.

Main job:
  radmine mine [SOURCE] --out DIR      every pipeline on one corpus, resumable, with an HTML report
                                       (no SOURCE = the embedded synthetic PACS corpus)
Other commands:
  radmine info SOURCE                  what a corpus holds (counts, modalities, sections)
  radmine label REPORTS --out FILE     weak labels (1/0/-1/blank) for a CSV/JSONL/parquet of reports
  radmine list backbones|vocabularies|windows|steps

SOURCE is an Open-i .tgz or folder of XML, a MedPix 2.0 folder, a DICOM folder, a saved corpus
folder (corpus.json) or a CSV/JSONL/parquet file of reports.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radmine", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    m = sub.add_parser("mine", help="run the main job", description="Run every pipeline on a corpus; re-running resumes and skips up-to-date steps.")
    m.add_argument("source", nargs="?", default=None, help="corpus (default: the embedded synthetic corpus)")
    m.add_argument("--out", default="radmine-out", help="output folder (default: %(default)s)")
    m.add_argument("--config", default=None, help="TOML/YAML settings file (see --print-config)")
    m.add_argument("--steps", default=None, help="comma-separated steps to run (default: all)")
    m.add_argument("--force", default=None, help="comma-separated steps to re-run even if up to date")
    m.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting (TOML value syntax), repeatable")
    m.add_argument("--scheduler", default=None, help="Dask scheduler address, or 'local' for a local cluster")
    m.add_argument("--no-progress", action="store_true", help="no progress bars")
    m.add_argument("--wait", action="store_true", help="if another run uses --out, wait for it instead of stopping")
    m.add_argument("--print-config", action="store_true", help="print every setting with its default and exit")

    i = sub.add_parser("info", help="summarise a corpus")
    i.add_argument("source")

    lab = sub.add_parser("label", help="weak labels for a reports file")
    lab.add_argument("reports", help="CSV/JSONL/parquet with a text column (or any SOURCE)")
    lab.add_argument("--out", required=True, help="output CSV/parquet")
    lab.add_argument("--vocabulary", default="chest_xray")
    lab.add_argument("--text-column", default=None)
    lab.add_argument("--id-column", default=None)
    lab.add_argument("--mentions", default=None, help="also write the mention table here")

    ls = sub.add_parser("list", help="list registries")
    ls.add_argument("what", choices=["backbones", "vocabularies", "windows", "steps"])
    return p


def _parse_value(text: str):
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    from radmine.pipeline.runner import OutputLockedError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)], format="%(levelname)s %(name)s: %(message)s")
    import radmine

    if args.version:
        print(radmine.__version__)
        return 0
    if args.command is None:
        _parser().print_help()
        return 0
    try:
        if args.command == "mine":
            from radmine.pipeline.config import default_config_text

            if args.print_config:
                print(default_config_text())
                return 0
            overrides = {}
            for item in args.set:
                key, sep, value = item.partition("=")
                if not sep or "." not in key:
                    raise ValueError(f"--set expects SECTION.KEY=VALUE, got {item!r}.")
                overrides[key.strip()] = _parse_value(value.strip())
            from radmine.pipeline.steps import mine

            result = mine(
                args.source,
                args.out,
                config=args.config,
                steps=args.steps.split(",") if args.steps else None,
                force=args.force.split(",") if args.force else None,
                overrides=overrides,
                progress=False if args.no_progress else None,
                scheduler=args.scheduler,
                wait=args.wait,
            )
            report = Path(args.out) / "report.html"
            total = result["seconds"].sum()
            print(f"radmine mine: {int((result['status'] == 'ran').sum())} step(s) ran, "
                  f"{int((result['status'] == 'skipped').sum())} up to date, {total:.1f}s.")
            if report.is_file():
                print(f"HTML report: {report.resolve()}")
            return 0
        if args.command == "info":
            from radmine.readers import read_corpus

            print(read_corpus(args.source, progress=False))
            return 0
        if args.command == "label":
            from radmine.labels.labeler import WeakLabeler
            from radmine.readers.tables import read_reports

            corpus = read_reports(args.reports, text_column=args.text_column, id_column=args.id_column)
            labeler = WeakLabeler(vocabulary=args.vocabulary)
            labels = labeler.fit(corpus.reports).transform(corpus.reports)
            out = Path(args.out)
            (labels.to_parquet if out.suffix == ".parquet" else labels.to_csv)(out)
            if args.mentions:
                m = Path(args.mentions)
                (labeler.mentions_.to_parquet if m.suffix == ".parquet" else labeler.mentions_.to_csv)(m, index=False)
            print(f"{len(labels)} reports labelled -> {out}")
            return 0
        if args.command == "list":
            import pandas as pd

            if args.what == "backbones":
                obj = radmine.list_backbones()
            elif args.what == "vocabularies":
                obj = radmine.list_vocabularies()
            elif args.what == "windows":
                obj = radmine.list_windows()
            else:
                from radmine.pipeline.steps import STEPS

                obj = pd.DataFrame([{"step": s.name, "depends_on": ",".join(s.deps), "description": s.description} for s in STEPS])
            print(obj.to_string() if hasattr(obj, "to_string") else obj)
            return 0
    except (ValueError, TypeError, FileNotFoundError, KeyError, OutputLockedError) as err:
        print(f"radmine {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
