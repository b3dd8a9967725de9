"""The project's own bundled prose (``bench/data/prose.txt``), shared by the batch and
long-context profiles so both feed the model real text rather than repeated filler tokens."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

PROSE_FILE = "prose.txt"


def load_paragraphs(path: Path) -> list[str]:
    """Paragraphs separated by blank lines; lines starting with ``#`` are comments."""
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    paragraphs = [" ".join(block.split()) for block in "\n".join(lines).split("\n\n")]
    found = [p for p in paragraphs if p]
    if not found:
        raise ValueError(f"{path}: no paragraphs found")
    return found


def cycled_sections(paragraphs: Sequence[str], min_chars: int, label: str = "Section") -> str:
    """Numbered sections cycling through ``paragraphs`` until the text is ``min_chars`` long."""
    if not paragraphs:
        raise ValueError("no paragraphs to cycle")
    parts: list[str] = []
    length, i = 0, 0
    while length < min_chars:
        part = f"{label} {i + 1}. {paragraphs[i % len(paragraphs)]}"
        parts.append(part)
        length += len(part) + 2
        i += 1
    return "\n\n".join(parts)
