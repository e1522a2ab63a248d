"""Regenerate the embedded corpora in this folder, byte for byte.

    python corpora/make_embedded.py            # -> corpora/synthetic-pacs/

Same as ``python -m radmine.datasets.synthetic corpora/synthetic-pacs``. The
folder is deleted and rewritten from ``radmine.make_synthetic_corpus()`` with
its defaults (120 patients, ``random_state=0``, 128 px); never edit it by hand:
``tests/test_synthetic.py`` checks that it equals a fresh generation.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radmine.datasets.synthetic import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main([str(Path(__file__).resolve().parent / "synthetic-pacs")] + sys.argv[1:]))
