"""Load the Terraform files with python-hcl2 into plain Python data.

python-hcl2 8.x keeps HCL string literals in quotes ('"x"'), quotes block labels, and adds
'__is_block__' / '__comments__' keys; older versions did none of that. `load` normalises both
forms: literals become bare strings, expressions stay as '${...}', blocks are lists of dicts.
"""

from __future__ import annotations

from pathlib import Path

import hcl2

INFRA = Path(__file__).resolve().parent.parent
ROOT = INFRA.parent
MODULE = INFRA / "modules" / "nixery"
EXAMPLE = INFRA / "examples" / "basic"

_META = {"__is_block__", "__comments__", "__start_line__", "__end_line__"}


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1]
    return s


def normalise(v):
    if isinstance(v, dict):
        return {_unquote(k): normalise(x) for k, x in v.items() if k not in _META}
    if isinstance(v, list):
        return [normalise(x) for x in v]
    if isinstance(v, str):
        return _unquote(v)
    return v


def load_file(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return normalise(hcl2.load(f))


def tf_files(directory: Path = INFRA) -> list[Path]:
    return sorted(p for p in directory.rglob("*.tf") if ".terraform" not in p.parts)


def load_dir(directory: Path) -> list[dict]:
    return [load_file(p) for p in sorted(directory.glob("*.tf"))]


def blocks(docs: list[dict], kind: str):
    """Yield (type, name, body) for every `resource`/`data` block of the given documents."""
    for doc in docs:
        for entry in doc.get(kind, []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    yield rtype, name, body


def resources(docs: list[dict], rtype: str) -> dict[str, dict]:
    return {n: b for t, n, b in blocks(docs, "resource") if t == rtype}


def data_sources(docs: list[dict], dtype: str) -> dict[str, dict]:
    return {n: b for t, n, b in blocks(docs, "data") if t == dtype}


def locals_(docs: list[dict]) -> dict:
    out: dict = {}
    for doc in docs:
        for block in doc.get("locals", []):
            out.update(block)
    return out


def variables(docs: list[dict]) -> dict[str, dict]:
    out: dict = {}
    for doc in docs:
        for block in doc.get("variable", []):
            out.update(block)
    return out


def outputs(docs: list[dict]) -> dict[str, dict]:
    out: dict = {}
    for doc in docs:
        for block in doc.get("output", []):
            out.update(block)
    return out


def single(block):
    """A nested block (`environment { ... }`) as one dict, whichever shape the parser used."""
    if isinstance(block, list):
        assert len(block) == 1, block
        return block[0]
    return block
