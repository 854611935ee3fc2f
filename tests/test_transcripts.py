"""Golden call transcripts: each file in tests/transcripts/ is a caller script and the call it must produce.

Header lines (``# key: value``): ``script`` (required), ``language``, ``direction``, ``answered_by``.
Regenerate after an intended change with ``UPDATE_GOLDEN=1 make test`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GOLDEN = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))


def read(path: Path) -> tuple[dict[str, str], str]:
    header, body = {}, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# ") and not body:
            key, _, value = line[2:].partition(": ")
            header[key] = value
        else:
            body.append(line)
    return header, "\n".join(body).strip()


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_the_call_matches_its_golden_transcript(path, add_patient, call):
    header, expected = read(path)
    patient = add_patient(language=header.get("language", "en"))
    result = call(
        patient,
        header["script"],
        direction=header.get("direction", "outbound"),
        answered_by=header.get("answered_by", "human"),
    )
    actual = f"{result.text()}\n--      {result.status}, {result.duration_s} s"
    if os.environ.get("UPDATE_GOLDEN"):
        head = "".join(f"# {k}: {v}\n" for k, v in header.items())
        path.write_text(head + actual + "\n", encoding="utf-8")
    assert actual == expected


def test_there_are_golden_transcripts():
    assert len(GOLDEN) >= 5
