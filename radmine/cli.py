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
  radmine label SOURCE --out FILE      weak labels (1/0/-1/blank) for the reports of any SOURCE (tables stream)
  radmine deid SOURCE --out DIR        de-identified copy of SOURCE (reports, ids, dates, DICOM headers)
  radmine list backbones|vocabularies|windows|steps

SOURCE is an Open-i .tgz or folder of XML, a MedPix 2.0 folder, a DICOM folder, a saved corpus
folder (corpus.json) or a CSV/JSONL/parquet file of reports.

A hospital export (DICOM folder + RIS table with its own column names, Windows encoding):
  radmine mine /data/pacs --reports ris.csv --encoding cp1252 \
      --column ACC_NO=accession --column BEFUND=text --column PAT_ID=patient_id --out out/pacs
"""


def _add_read_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reports", default=None, metavar="FILE",
                        help="reports table (CSV/TSV/JSONL/parquet) joined to a DICOM SOURCE by StudyInstanceUID or accession "
                             "(config: read.reports_file)")
    parser.add_argument("--column", action="append", default=[], metavar="THEIRS=ours",
                        help="map a column of the table to a radmine name (report_id, text, accession, study_id, "
                             "patient_id, modality, ...), repeatable (config: read.columns)")
    parser.add_argument("--encoding", default=None,
                        help="text encoding of the table, e.g. cp1252 or latin-1 (default utf-8; config: read.encoding)")


def _parse_columns(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        theirs, sep, ours = item.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise ValueError(f"--column expects THEIRS=ours (e.g. ACC_NO=accession), got {item!r}.")
        theirs, ours = theirs.strip(), ours.strip()
        if theirs in out and out[theirs] != ours:
            raise ValueError(f"--column maps {theirs!r} twice ({out[theirs]!r} and {ours!r}); map each column once.")
        out[theirs] = ours
    return out



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
    m.add_argument("--device", default=None, metavar="auto|cpu|cuda|cuda:N",
                   help="where the CNN and the trainers run (default: [run] device of the config, 'auto' = CUDA when available)")
    m.add_argument("--wait", action="store_true", help="if another run uses --out, wait for it instead of stopping")
    m.add_argument("--print-config", action="store_true", help="print every setting with its default and exit")
    _add_read_options(m)

    i = sub.add_parser("info", help="summarise a corpus")
    i.add_argument("source")

    lab = sub.add_parser("label", help="weak labels for the reports of a SOURCE",
                         description="Weak labels for every report of SOURCE. Tables (CSV/TSV/JSONL/parquet) are read and "
                                     "labelled in chunks, so memory stays flat; the output appears at --out only when "
                                     "complete. Rows that cannot be read are listed in OUT.quarantine.csv.")
    lab.add_argument("source", metavar="SOURCE",
                     help="a CSV/TSV/JSONL/parquet table of reports, or any SOURCE radmine reads (Open-i .tgz, DICOM folder "
                          "with SR reports or --reports, MedPix folder, saved corpus)")
    lab.add_argument("--out", required=True, help="output CSV/parquet")
    lab.add_argument("--vocabulary", default="auto",
                     help="built-in name (chest_xray, ct_mr), a JSON/YAML file, or auto (default: chest_xray unless most "
                          "reports with a modality are not radiographs; the rule of `radmine mine`)")
    lab.add_argument("--text-column", default=None)
    lab.add_argument("--id-column", default=None)
    lab.add_argument("--mentions", default=None, help="also write the mention table here")
    lab.add_argument("--chunksize", type=int, default=20_000, help="reports per chunk for tables (default: %(default)s)")
    _add_read_options(lab)

    de = sub.add_parser("deid", help="write a de-identified copy of a SOURCE",
                        description="De-identify SOURCE: PHI in report text replaced, ids pseudonymised, dates shifted per "
                                    "patient, DICOM headers by the PS3.15 Annex E basic profile, images that may carry "
                                    "burned-in text quarantined. DIR becomes a saved corpus that `radmine mine DIR` reads "
                                    "without de-identifying again. See docs/deid.md for what is and is not covered.")
    de.add_argument("source", metavar="SOURCE")
    de.add_argument("--out", required=True, metavar="DIR", help="output folder (a saved corpus + images/ + phi_spans.csv)")
    de.add_argument("--method", default="surrogate", choices=["surrogate", "mask", "tag"],
                    help="what replaces PHI: realistic fakes, XXXX or [LABEL] (default: %(default)s)")
    de.add_argument("--key-file", default=None, metavar="FILE",
                    help="file holding the secret behind pseudonyms and date offsets (same key = same pseudonyms "
                         "in a later run; default: a fresh random key)")
    de.add_argument("--keep-burned-in", action="store_true",
                    help="do not quarantine DICOM images that may carry burned-in text (only if you checked the pixels)")
    _add_read_options(de)

    ls = sub.add_parser("list", help="list registries")
    ls.add_argument("what", choices=["backbones", "vocabularies", "windows", "steps"])
    return p


def _parse_value(text: str):
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _check_device(device: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; CUDA only when this torch build sees a GPU."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ValueError(f"--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}.")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: torch {torch.__version__} sees no CUDA GPU (a CPU-only wheel, or no "
                             "driver). Install a CUDA build of torch first (README: GPU install), or use --device auto.")
    return device


def main(argv: list[str] | None = None) -> int:
    from radmine.pipeline.runner import OutputLockedError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)], format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:  # gensim's INFO lines quote corpus words (vocabulary samples): only at -vv
        logging.getLogger("gensim").setLevel(logging.WARNING)
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
            if args.device is not None:
                overrides["run.device"] = _check_device(args.device)
            if args.reports:
                overrides["read.reports_file"] = args.reports
            if args.column:
                overrides["read.columns"] = _parse_columns(args.column)
            if args.encoding:
                overrides["read.encoding"] = args.encoding
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
            from radmine.pipeline.artifacts import REPORT

            report = REPORT.at(args.out)
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
            from radmine.labels.stream import label_source

            summary = label_source(
                args.source, args.out, vocabulary=args.vocabulary, mentions=args.mentions,
                text_column=args.text_column, id_column=args.id_column, columns=_parse_columns(args.column),
                encoding=args.encoding or "utf-8", reports=args.reports, chunksize=args.chunksize,
            )
            print(f"{summary['labelled']:,} reports labelled -> {args.out}")
            if summary["quarantined"]:
                print(f"radmine label: warning: {summary['quarantined']:,} row(s) could not be read and were not labelled "
                      f"(first: {summary['first_problem']}); see {summary['quarantine_file']}", file=sys.stderr)
            return 0
        if args.command == "deid":
            from radmine.deid.corpus import write_deidentified

            key = Path(args.key_file).read_text(encoding="utf-8").strip() if args.key_file else None
            clean = write_deidentified(
                args.source, args.out, method=args.method, key=key, burned_in="keep" if args.keep_burned_in else "quarantine",
                reports=args.reports, columns=_parse_columns(args.column), encoding=args.encoding or "utf-8",
            )
            n_q = int((clean.quarantine.get("source", []) == "deid").sum()) if len(clean.quarantine) else 0
            print(f"radmine deid: {clean.n_reports:,} report(s), {clean.n_images:,} image(s), "
                  f"{len(clean.tables['phi_spans']):,} PHI span(s) replaced, {n_q:,} image(s) quarantined -> {args.out}")
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
                from radmine.pipeline.config import default_config
                from radmine.pipeline.steps import STEPS

                cfg = default_config()  # the dependencies under the default settings
                obj = pd.DataFrame([{"step": s.name, "depends_on": ",".join(s.deps_for(cfg)), "description": s.description}
                                    for s in STEPS])
            print(obj.to_string() if hasattr(obj, "to_string") else obj)
            return 0
    except (ValueError, TypeError, FileNotFoundError, KeyError, OutputLockedError) as err:
        print(f"radmine {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # permission denied, disk full, ...: one line naming the path, no traceback
        where = f" {err.filename}" if err.filename else ""
        print(f"radmine {args.command}: error: cannot access{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
