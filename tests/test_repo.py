"The repository's promises: README generated from index.ipynb, the package importable as users import it."
import subprocess, sys
from pathlib import Path
root = Path(__file__).resolve().parent.parent

def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(root/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_all_exports():
    import fastcam.all as fa
    for n in ['Capture', 'preserve_state', 'pets_dls', 'label_func', 'cam_learner', 'gap_head', 'efficientnet_lite0', 'cam', 'show_cam', 'show_maps', 'class_panel']:
        assert hasattr(fa, n), n

def test_build_is_quiet_and_metadata_checks(tmp_path):
    "`python -m build` prints no warning (this machine's pip notes about its local index aside), and `twine check --strict` passes"
    import os, re
    env = {k:v for k,v in os.environ.items() if k!='PYTHONDONTWRITEBYTECODE'}   # that variable makes setuptools warn that it skips byte-compiling
    r = subprocess.run([sys.executable, '-m', 'build', '--outdir', str(tmp_path), str(root)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    warns = [l for l in (r.stdout+r.stderr).splitlines() if re.search(r'warn|deprecat', l, re.I) and not re.search(r"WARNING: Location '.*' is ignored", l)]
    assert not warns, warns
    dists = sorted(str(p) for p in tmp_path.iterdir())
    assert sorted(p.rsplit('.', 1)[-1] for p in dists) == ['gz', 'whl'], dists
    whl = next(p for p in dists if p.endswith('.whl'))
    r = subprocess.run([sys.executable, '-m', 'twine', 'check', '--strict', *dists], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    import zipfile
    z = zipfile.ZipFile(whl)
    meta = z.read(next(n for n in z.namelist() if n.endswith('METADATA'))).decode()
    for line in ('License: Apache-2.0', 'Classifier: License :: OSI Approved :: Apache Software License', 'Project-URL: Issues, ', 'Project-URL: Homepage, '):
        assert line in meta, line
    assert 'example.org' not in meta

def test_import_and_explain_print_no_warning(tmp_path):
    "fastai's import-time FutureWarning is filtered where fastcam imports fastai: a user's notebook and handouts carry no warning"
    import os
    code = ("from fastcam.all import *\nfrom fastcam.methods import cam, gradcam, saliency\nfrom fastcam.testing import tiny_net\nimport torch\n"
            "m = tiny_net()\nx = torch.rand(2, 3, 16, 16)\ncam(m, x); gradcam(m, x); saliency(m, x)\nprint('ok')")
    env = {k:v for k,v in os.environ.items() if k not in ('PYTHONWARNINGS',)}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr[-2000:]
    assert r.stderr == '', r.stderr

def test_no_cell_mixes_imports_with_code():
    "nbdev's docs processing (nbdev-proc-nbs) executes every cell with an import anywhere in it: only import cells and exported cells may import"
    import ast, json, re
    bad = []
    for p in sorted((root/'nbs').glob('*.ipynb')) + sorted((root/'nbs'/'lectures').glob('*.ipynb')):
        for c in json.loads(p.read_text())['cells']:
            s = ''.join(c['source'])
            if c['cell_type']!='code' or re.search(r'^#\|\s*(export|exports|exporti|exec_doc)\b|^#\|\s*eval:\s*false', s, re.M): continue
            t = ast.parse('\n'.join(l for l in s.splitlines() if not l.lstrip().startswith(('%', '!'))))
            imports = [n for n in ast.walk(t) if isinstance(n, (ast.Import, ast.ImportFrom))]
            if imports and not all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in t.body): bad.append(f"{p} cell {c.get('id')}")
    assert not bad, f"cells that import and do something else (split the imports into their own cell): {bad}"
