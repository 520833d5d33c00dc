"The instructors' command, end to end on the offline sample."
import os, subprocess, sys, tempfile
from pathlib import Path

def _run(*args, env=None):
    return subprocess.run(['fastcam-lecture', *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)

def test_help():
    r = _run('--help')
    assert r.returncode == 0 and '--offline' in r.stdout and '--full' in r.stdout
    r = subprocess.run(['fastcam-course', '--help'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and all(o in r.stdout for o in ['--out', '--lectures', '--offline', '--full', '--seed', '--data'])

def test_help_imports_nothing_heavy():
    "`--help` answers at once: fastcam.cli imports fastai, torch, matplotlib, nbconvert... inside the functions that use them"
    heavy = ['torch', 'fastai', 'matplotlib', 'numpy', 'pandas', 'scipy', 'sklearn', 'nbconvert', 'nbclient', 'nbformat', 'PIL']
    code = f"import sys, fastcam.cli; print([m for m in {heavy!r} if m in sys.modules])"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == '[]', r.stdout + r.stderr

def test_small_run_writes_figures(tmp_path, pets):
    r = _run('--offline', '--data', str(pets), '--size', '64', '--n', '48', '--grids', '6', '--out', str(tmp_path/'figs'), '--save', str(tmp_path/'cam.pkl'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert '64px images, 48 images' in r.stdout and '--full' in r.stdout  # the settings are said on screen
    assert sorted(o.name for o in (tmp_path/'figs').iterdir()) == [f'grid_{k}.png' for k in range(1,7)] + ['panel.png']
    from fastcam.all import pets_files, label_func, open_image
    drawn = pets_files(pets, seed=42)[:150]   # the grids' images: a seeded shuffle, as in the lecture
    cats = sum(label_func(f)=='cat' for f in drawn)
    assert f'the grids draw 150 images shuffled with seed 42: {cats} cats, {150-cats} dogs' in r.stdout and 0 < cats < 150
    def rgb(f):
        try: open_image(f); return True
        except ValueError: return False
    converted = [f.name for f in drawn if not rgb(f)]
    assert all(n in r.stdout for n in converted) and ('converted to RGB' in r.stdout) == bool(converted)
    r = _run('--load', str(tmp_path/'cam.pkl'), '--data', str(pets), '--grids', '1', '--out', str(tmp_path/'again'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'again'/'grid_1.png').stat().st_size > 10_000

def test_bad_paths_in_one_line(tmp_path, pets):
    "A file where a folder goes, a state dict or any other file where a learner goes: one line, exit code 2"
    import torch
    (tmp_path/'notes.txt').write_text('not a learner')
    torch.save({'model': {'w': torch.zeros(2)}, 'opt': {}}, tmp_path/'weights.pth')   # what learn.save writes
    for args, msg in [(['--out', str(tmp_path/'notes.txt')], 'is a file: give a folder for the figures'),
                      (['--load', str(tmp_path/'weights.pth')], 'holds weights (learn.save writes them), not an exported learner'),
                      (['--load', str(tmp_path/'notes.txt')], 'is not a learner exported by learn.export'),
                      (['--load', str(tmp_path/'nope.pkl')], 'No learner file at')]:
        r = _run('--offline', '--data', str(pets), *args, *([] if '--out' in args else ['--out', str(tmp_path/'figs')]))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith('fastcam-lecture: ') and msg in lines[0], r.stderr[-2000:]

def test_missing_weights_give_a_message_not_a_traceback(tmp_path, pets):
    "Offline, resnet34's ImageNet weights cannot be downloaded: one clear line, no urllib traceback"
    r = _run('--arch', 'resnet34', '--data', str(pets), '--size', '64', '--n', '16', '--out', str(tmp_path), env={'TORCH_HOME': str(tmp_path/'torch')})
    assert r.returncode == 1
    assert 'Could not download the ImageNet weights of resnet34' in r.stderr and 'efficientnet_lite0' in r.stderr
    assert 'Traceback' not in r.stderr

def test_missing_data_gives_a_message(tmp_path):
    r = _run('--offline', '--data', str(tmp_path/'nowhere'), '--out', str(tmp_path))
    assert r.returncode == 2 and 'No Pets images folder' in r.stderr and 'Traceback' not in r.stderr
