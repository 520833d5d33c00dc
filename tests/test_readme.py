"""The README is the PyPI page: its Python blocks run as written (in a fresh process, outside the repository, offline on the
Pets sample) and print and write what they promise; its commands exist, answer `--help` and take the options it names; its
table of methods is the registry."""
import os, re, subprocess, sys, tomllib
from pathlib import Path
import pytest

root = Path(__file__).resolve().parent.parent
readme = (root/'README.md').read_text()
scripts = tomllib.loads((root/'pyproject.toml').read_text())['project']['scripts']

def blocks(lang:str)->list:
    "The README's fenced code blocks in `lang`, in order"
    return re.findall(rf'^```{lang}\n(.*?)^```', readme, re.S | re.M)

def sh_commands()->list:
    "Every command of the README's sh blocks (a line may chain several with &&), as its words"
    return [c.split() for b in blocks('sh') for l in b.splitlines() if l.strip() for c in l.split('&&')]

def offline_env(tmp_path)->dict:
    "The environment of a user offline: FASTCAM_OFFLINE=1 and fastai's config pointed at the Pets sample (as tools/test does)"
    env = {**os.environ, 'FASTCAM_OFFLINE': '1', 'MPLBACKEND': 'Agg'}
    sample = Path(os.environ.get('FASTCAM_SAMPLE', root.parent/'shared'/'data'))
    if 'FASTAI_HOME' not in os.environ and (sample/'oxford-iiit-pet').is_dir():
        home = tmp_path/'.fastai'; home.mkdir()
        (home/'config.ini').write_text(f"[DEFAULT]\ndata = {sample.resolve()}\narchive = {home}/archive\nmodel = {home}/models\nstorage = {home}/tmp\n")
        env['FASTAI_HOME'] = str(home)
    env['PYTHONPATH'] = os.pathsep.join(p for p in [env.get('PYTHONPATH'), str(root)] if p)   # the fastcam of this checkout
    return env

def promised_prints(code:str)->list:
    "The lines the code promises to print: each `print('label:', ...)   # output` line promises `label: output`"
    out = []
    for l in code.splitlines():
        m = re.match(r"\s*print\((?:'([^']*)',)?.*\)\s*#\s*(.+)$", l)
        if m: out.append(f"{m.group(1)} {m.group(2).strip()}" if m.group(1) else m.group(2).strip())
    return out

def written_files(code:str)->list:
    "The files and folders the code writes: `save='...'`, `.save('...')`, `path='...'`, `.export(Path('...')...)`"
    return re.findall(r"save='([^']+)'|\.save\('([^']+)'\)|path='([^']+)'|export\(Path\('([^']+)'\)", code)

@pytest.fixture(scope='module')
def example(tmp_path_factory):
    "The README's Python blocks, concatenated in order, run as a script in a fresh `python` in an empty folder"
    tmp = tmp_path_factory.mktemp('readme')
    code = '\n'.join(blocks('python'))
    (tmp/'example.py').write_text(code)
    r = subprocess.run([sys.executable, 'example.py'], cwd=tmp, env=offline_env(tmp), capture_output=True, text=True, timeout=1500)
    return code, tmp, r

def test_python_blocks_run_as_written(example):
    code, tmp, r = example
    assert code.count('```') == 0 and 'from fastcam.all import *' in code and 'from fastai.vision.all import *' in code
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [l.strip() for l in r.stdout.splitlines()]
    promised = promised_prints(code)
    assert len(promised) >= 3, promised
    for p in promised: assert any(l.endswith(p) for l in lines), (p, r.stdout[-2000:])   # a progress bar may end without a newline
    names = [n for groups in written_files(code) for n in groups if n]
    assert {'panel.png', 'grid.png', 'methods.png', 'top_losses.png', 'training.png', 'training.gif', 'maps', 'pets_cam.pkl'} <= set(names), names
    for n in names:
        p = tmp/n
        assert p.exists(), n
        if p.is_file(): assert p.stat().st_size > 1000, n
    assert (tmp/'maps'/'store.json').is_file() and (tmp/'maps'/'maps.npy').is_file()
    # the README says what the block writes: each file it names there is one the block writes
    said = re.search(r'^It writes (.*?), and prints', readme, re.M).group(1)
    assert set(re.findall(r'`([^`]+)`', said)) <= set(names)

def test_fastcam_maps_on_the_exported_learner(example, tmp_path):
    "The shell's fastcam-maps, as the README runs it, on the learner the Python blocks exported (a few images: the test's size)"
    code, tmp, r = example
    assert r.returncode == 0
    cmd = next(c for c in sh_commands() if c[0]=='fastcam-maps')
    assert cmd[1] == 'pets_cam.pkl' and '--out' in cmd
    images = tmp_path/'images'; images.mkdir()
    env = offline_env(tmp_path)
    files = subprocess.run([sys.executable, '-c', "from fastcam.pets import pets_files\nfor f in pets_files()[:40]: print(f)"],
                           env=env, capture_output=True, text=True, timeout=300).stdout.split()
    from PIL import Image
    for f in [f for f in files if Image.open(f).mode=='RGB'][:6]: (images/Path(f).name).symlink_to(f)
    run = [a if a!='images/' else str(images) for a in cmd]
    run[run.index('--out')+1] = str(tmp_path/'maps')
    run[1] = str(tmp/'pets_cam.pkl')
    r = subprocess.run(run, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'maps'/'index.html').is_file() and (tmp_path/'maps'/'maps.npy').is_file()

def test_commands_exist_and_take_the_options_named():
    "Every fastcam command in the README's sh blocks is a console script of the package and answers --help; every option the README names is one of theirs (or the benchmarks')"
    cmds = sh_commands()
    named = {c[0] for c in cmds if c[0].startswith('fastcam')} | set(re.findall(r'`(fastcam-[a-z]+)', readme))
    assert named == set(scripts), (named, set(scripts))
    helps = {}
    for c in scripts:
        r = subprocess.run([c, '--help'], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        helps[c] = r.stdout
    helps['benchmarks'] = '\n'.join(f.read_text() for f in sorted((root/'benchmarks').glob('*.py')))   # the options the Speed section names
    helps['tools/lowest'] = (root/'tools'/'lowest').read_text()   # the uv options the paragraph on tools/lowest quotes
    others = {'--standalone', '--nproc_per_node', '--no-python', '--help'}   # torchrun's, and argparse's
    options = set(re.findall(r'(?<![\w-])(--[a-z][a-z_-]*)', readme)) - others
    assert options and not [o for o in options if not any(re.search(rf'{o}\b', h) for h in helps.values())], options
    assert {c[0] for c in cmds} <= set(scripts) | {'pip', 'jupyter', 'torchrun', 'tools/test'}

def test_lectures_command_as_written(tmp_path):
    "fastcam-lectures DIR copies every lecture; --student copies them without solutions; the README's commands, in a temporary folder"
    cmd = next(c for c in sh_commands() if c[0]=='fastcam-lectures')
    lectures = sorted(p.name for p in (root/'nbs'/'lectures').glob('*.ipynb'))
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path/cmd[1]).glob('*.ipynb')) == lectures
    assert ['jupyter', 'lab', cmd[1]] in sh_commands()
    r = subprocess.run([*cmd[:1], 'students', '--student'], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path/'students').glob('*.ipynb')) == lectures
    assert all('#| solution' not in p.read_text() for p in (tmp_path/'students').glob('*.ipynb'))
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)   # a second copy: one line, exit code 2
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and '--force' in r.stderr, r.stderr

def test_methods_table_is_the_registry():
    "The hand-written table of methods lists exactly the registered methods (each once), with their titles"
    from fastcam.methods import methods
    rows = re.findall(r'^\| ([^|`]+?) \| `(\w+)` \|', readme, re.M)
    assert sorted(n for _,n in rows) == sorted(methods)
    assert {n: t for t,n in rows} == {n: m.title for n,m in methods.items()}

def test_working_on_fastcam_commands_are_what_ci_runs():
    "The two commands of 'Working on fastcam' are what .ci/run runs"
    ci = (root/'.ci'/'run').read_text()
    cmds = [' '.join(c) for c in sh_commands()]
    steps = [l for l in ci.splitlines() if l.strip() and not l.lstrip().startswith('#')]
    assert 'tools/test' in cmds and steps[-2:] == ['tools/test', 'tools/lowest']   # the suite, then the lowest declared versions
    one = next(c for c in cmds if c.startswith('pip install torch=='))
    assert 'pip install -q ' + one.removeprefix('pip install ') in ci
    lecture = next(c for c in cmds if c.startswith('fastcam-lecture --offline --data ../shared'))
    assert lecture in ci

def test_no_internal_references():
    "The PyPI page speaks to users: no issue numbers, commit hashes or machines of the project's own"
    assert not re.search(r'\bissue \d+|#\d+\b|\b[0-9a-f]{7,40}\b|course machines|\bsessions?\b', readme, re.I), \
        re.search(r'\bissue \d+|#\d+\b|\b[0-9a-f]{7,40}\b|course machines|\bsessions?\b', readme, re.I)
