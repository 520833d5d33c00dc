"""Lectures for pip users: the wheel ships the lecture notebooks (package data mapped from nbs/lectures), `fastcam-lectures DIR`
copies them for Jupyter, and every bad folder or option stops it with one line and exit code 2. Runs in seconds."""
import os, shutil, subprocess, sys, tempfile, zipfile
from pathlib import Path
import nbformat
import pytest
from fastcam.course import lectures_path, is_solution
from test_course import one_line_error

root = Path(__file__).resolve().parent.parent
LECTURES = sorted(p for p in (root/'nbs'/'lectures').glob('*.ipynb'))

def lectures_cmd(*args):
    """Run `fastcam-lectures`: the installed script, or where fastcam was installed before the script existed (an editable
    install), a script of the same two lines as pip's"""
    exe = shutil.which('fastcam-lectures')
    if exe is None:
        exe = Path(tempfile.mkdtemp())/'fastcam-lectures'
        exe.write_text('from fastcam.cli import fastcam_lectures\nfastcam_lectures()\n')
    cmd = [exe] if os.access(exe, os.X_OK) else [sys.executable, exe]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=300)

def test_the_lectures_are_the_repositorys():
    "In a clone (editable install or PYTHONPATH), the lectures that come with fastcam are its nbs/lectures"
    assert LECTURES, 'no lecture in nbs/lectures'
    assert lectures_path() == root/'nbs'/'lectures'

@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    "A wheel built with `python -m build --wheel` from a copy of the package's sources (pyproject, fastcam/, nbs/lectures)"
    pytest.importorskip('build')
    src = tmp_path_factory.mktemp('src')
    for f in ['pyproject.toml', 'README.md', 'LICENSE', 'MANIFEST.in']: shutil.copy(root/f, src/f)
    shutil.copytree(root/'fastcam', src/'fastcam', ignore=shutil.ignore_patterns('__pycache__', '*.pyc', 'lectures'))
    shutil.copytree(root/'nbs'/'lectures', src/'nbs'/'lectures', ignore=shutil.ignore_patterns('.*', '*.png', 'models'))
    r = subprocess.run([sys.executable, '-m', 'build', '--wheel', '--outdir', src/'dist', src], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return next((src/'dist').glob('fastcam-*.whl'))

def test_the_wheel_ships_the_lectures(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        shipped = sorted(n for n in names if n.startswith('fastcam/lectures/'))
        assert shipped == [f'fastcam/lectures/{p.name}' for p in LECTURES]
        assert all(z.read(f'fastcam/lectures/{p.name}') == p.read_bytes() for p in LECTURES)  # the notebooks as committed
        entry = z.read(next(n for n in names if n.endswith('.dist-info/entry_points.txt'))).decode()
    for cmd in ['fastcam-lecture', 'fastcam-course', 'fastcam-lectures']: assert f'{cmd} = fastcam.cli:' in entry
    assert not any(n.startswith(('nbs/', 'tests/')) for n in names)

def test_copy_the_lectures(tmp_path):
    r = lectures_cmd(tmp_path/'course')
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path/'course').iterdir()) == [p.name for p in LECTURES]
    assert all((tmp_path/'course'/p.name).read_bytes() == p.read_bytes() for p in LECTURES)
    assert f'jupyter lab {tmp_path/"course"}' in r.stdout
    # a second copy would overwrite a student's work: refused, unless --force
    (tmp_path/'course'/LECTURES[0].name).write_text('my work')
    line = one_line_error(lectures_cmd(tmp_path/'course'))
    assert f'{tmp_path/"course"/LECTURES[0].name} and {len(LECTURES)-1} more lectures already there: give another folder, or --force' in line
    assert (tmp_path/'course'/LECTURES[0].name).read_text() == 'my work'
    r = lectures_cmd(tmp_path/'course', '--lectures', '1', '--force')
    assert r.returncode == 0 and (tmp_path/'course'/LECTURES[0].name).read_bytes() == LECTURES[0].read_bytes()

def test_copy_student_notebooks(tmp_path):
    r = lectures_cmd(tmp_path, '--student', '--lectures', LECTURES[-1].stem)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == [LECTURES[-1].name]
    nb, src = (nbformat.read(p, as_version=4) for p in (tmp_path/LECTURES[-1].name, LECTURES[-1]))
    assert [c.source for c in nb.cells] == [c.source for c in src.cells if not is_solution(c)]
    assert not any(c.get('outputs') or c.get('execution_count') for c in nb.cells)

def test_help():
    r = lectures_cmd('--help')
    assert r.returncode == 0 and all(o in r.stdout for o in ['dest', '--lectures', '--student', '--force', 'jupyter lab'])

def test_bad_folders_and_options(tmp_path):
    (tmp_path/'file').write_text('x')
    cases = [([tmp_path/'file'], f"fastcam-lectures: the folder {tmp_path/'file'} is a file: give a folder"),
             ([tmp_path/'file'/'sub'], f"fastcam-lectures: the folder {tmp_path/'file'/'sub'} is inside {tmp_path/'file'}, which is a file: give a folder"),
             ([tmp_path/'new', '--lectures', '09'], "fastcam-lectures: No lecture '09'; choose among 01_"),
             ([tmp_path/'new', '--lectures', '01', '--nonsense'], "unrecognized arguments: --nonsense")]
    for args, msg in cases:
        line = one_line_error(lectures_cmd(*args)) if '--nonsense' not in args else lectures_cmd(*args).stderr
        assert msg in line, (args, line)
    r = lectures_cmd()
    assert r.returncode == 2 and 'the following arguments are required: dest' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'new').exists()
