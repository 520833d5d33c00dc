#!/usr/bin/env python
"""Render README.md from nbs/index.ipynb without Quarto (which `nbdev-readme` needs).

Markdown cells are copied as they are; code cells become fenced blocks, their `#|` directives removed; cells marked
`#| hide` are skipped. `python tools/readme.py --check` exits 1 when README.md is out of date (CI runs it)."""
import sys
from pathlib import Path
from fastcore.nbio import read_nb

root = Path(__file__).resolve().parent.parent

def render(nb_path=root/'nbs'/'index.ipynb')->str:
    "The README text for the notebook at `nb_path`"
    parts = []
    for c in read_nb(nb_path).cells:
        src = c.source
        if c.cell_type=='markdown': parts.append(src.strip())
        elif c.cell_type=='code':
            if c.has_directive('hide'): continue
            code = '\n'.join(l for l in c.source.splitlines() if not l.lstrip().startswith('#|')).strip()
            if code: parts.append(f"```python\n{code}\n```")
    return '\n\n'.join(p for p in parts if p) + '\n'

if __name__=='__main__':
    txt, dest = render(), root/'README.md'
    if '--check' in sys.argv:
        if not dest.exists() or dest.read_text()!=txt: sys.exit("README.md is out of date: run `python tools/readme.py`")
    else: dest.write_text(txt)
