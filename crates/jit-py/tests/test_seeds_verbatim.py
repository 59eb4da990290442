"""The seed examples in test_seed_*.py are the documents' own code: every
line between the ``# --- seed example`` and ``# --- end`` markers, with the
simulated org's ids mapped back to the documents' placeholders, is a line of
the seed document (indentation aside), and every example is there.

The seed documents sit beside the repository (``../shared/seeds``, as in
CI); ``JIT_SEEDS_DIR`` points elsewhere.
"""

import os
import pathlib
import re

import pytest

from conftest import DINGTALK_IDS, WECOM_IDS

HERE = pathlib.Path(__file__).parent
SEEDS = pathlib.Path(os.environ.get("JIT_SEEDS_DIR", HERE.parents[3] / "shared" / "seeds"))

CASES = [
    # test file, seed document, placeholder ids, examples in the document
    ("test_seed_wecom.py", "wecom-self-built-org.txt", WECOM_IDS, 22),
    ("test_seed_dingtalk.py", "dingtalk-self-built-org.txt", DINGTALK_IDS, 16),
]


def examples(test_file):
    """The code blocks between the markers: (the example's name, its lines)."""
    blocks, current, name = [], None, None
    for line in (HERE / test_file).read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("# --- seed example"):
            name = line.split(":", 1)[1].split(" (")[0].strip()
            current = []
        elif line.strip() == "# --- end":
            blocks.append((name, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.mark.parametrize("test_file,seed,ids,count", CASES)
def test_every_example_is_the_documents_code(test_file, seed, ids, count):
    document = SEEDS / seed
    if not document.exists():
        pytest.skip(f"seed documents not found at {SEEDS} (set JIT_SEEDS_DIR)")
    seed_lines = {line.strip() for line in document.read_text(encoding="utf-8").splitlines()}
    back = {f'"{real}"': f'"{placeholder}"' for placeholder, real in ids.items()}
    blocks = examples(test_file)
    assert len({name for name, _ in blocks}) == count  # some run twice (both branches)
    for _name, block in blocks:
        for line in block:
            text = line.strip()
            for real, placeholder in back.items():
                text = text.replace(real, placeholder)
            if text:
                assert text in seed_lines, f"{test_file}: not in {seed}: {text!r}"


def test_every_placeholder_of_the_documents_is_mapped():
    for _test_file, seed, ids, _count in CASES:
        document = SEEDS / seed
        if not document.exists():
            pytest.skip(f"seed documents not found at {SEEDS}")
        used = set(re.findall(r'"((?:user|role|admin|member)\d+)"', document.read_text(encoding="utf-8")))
        assert used <= set(ids), used - set(ids)
