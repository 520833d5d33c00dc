"""Maps for whole datasets: `get_maps` and `to_batch` against fastai's `get_preds` with random item transforms (workers, threads),
a store reopened in a fresh process, and `fastcam-maps` end to end, its errors in one line."""
import os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, pytest, torch
from fastai.vision.all import ImageDataLoaders, RandomResizedCrop, Learner, CrossEntropyLossFlat, get_image_files
from fastcam.all import *
from fastcam.testing import tiny_net, synthetic_trained, make_synthetic

@pytest.fixture(scope='module')
def rrc(pets):
    "A learner whose item transforms are `RandomResizedCrop` (centre crops on validation, computed from each image's size), on Pets files of many sizes"
    files = [f for f in get_image_files(pets).sorted() if f.name not in ('Abyssinian_34.jpg', 'Abyssinian_5.jpg')][::27][:20]   # cats and dogs
    dls = ImageDataLoaders.from_name_func(pets, files, label_func, valid_pct=0.2, seed=0, bs=8, item_tfms=RandomResizedCrop(64, min_scale=0.35))
    torch.manual_seed(0)
    return Learner(dls, tiny_net(2), loss_func=CrossEntropyLossFlat()), files

def test_random_item_transforms_match_get_preds(rrc):
    "Serial, in threads, and in DataLoader worker processes: the images are those get_preds sees (no shared per-image state)"
    learn, files = rrc
    assert len({open_image(f).size for f in files}) > 5   # many sizes, so a crop computed for another image would show
    preds = learn.get_preds(dl=learn.dls.test_dl(files, num_workers=0), reorder=False)[0]
    torch.testing.assert_close(learn.cam(files).probs, preds)
    chunks = [files[i::4] for i in range(4)]
    for _ in range(3):
        with ThreadPoolExecutor(4) as ex: res = list(ex.map(lambda fs: learn.cam(fs).probs, chunks))
        for fs,p in zip(chunks, res): torch.testing.assert_close(p, preds[[files.index(f) for f in fs]])
    for w in (0, 2):
        torch.testing.assert_close(torch.from_numpy(learn.get_maps(files, method='cam', num_workers=w, bs=5, progress=False).probs), preds)

@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    "An exported synthetic learner and a folder of its images"
    d = tmp_path_factory.mktemp('exported')
    learn = synthetic_trained(n=64, epochs=2)
    learn.export(d/'learner.pkl')
    make_synthetic(d/'images', n=12)
    learn.save(d/'weights')
    return d

def run(*args, env=None):
    return subprocess.run(['fastcam-maps', *map(str, args)], capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})

def test_command_writes_a_store_that_reopens_anywhere(exported, tmp_path):
    r = run(exported/'learner.pkl', exported/'images', '--out', tmp_path/'maps', '--method', 'cam', '--bs', '5', '--workers', '0')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'wrote 12 maps (8, 8)' in r.stdout and (tmp_path/'maps'/'index.html').exists()
    code = ("from fastcam.maps import load_maps; import numpy as np; s = load_maps(r'%s'); e = s[:3]; "
            "print(len(s), s.complete, e.maps.shape[0], type(s.maps).__name__, np.load(r'%s/maps.npy', mmap_mode='r').shape)") % (tmp_path/'maps', tmp_path/'maps')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ['12', 'True', '3', 'memmap', '(12,', '8,', '8)'], out.stderr[-2000:]
    r = run(exported/'learner.pkl', exported/'images', '--out', tmp_path/'maps', '--method', 'cam', '--bs', '5', '--workers', '0')
    assert r.returncode == 0 and 'wrote 12 maps' in r.stdout   # a finished store: nothing left to do, same result

@pytest.mark.parametrize('case,msg', [
    ('missing', 'No learner file at'),
    ('weights', 'holds weights (learn.save writes them), not an exported learner'),
    ('text', 'is not a learner exported by learn.export'),
    ('out', 'exists and is not a map store'),
    ('items', 'No file or folder at nowhere.jpg'),
    ('method', "Unknown method 'gradcan'"),
    ('layer', "No layer named 'body.9'")])
def test_command_errors_in_one_line(exported, tmp_path, case, msg):
    (tmp_path/'notes.txt').write_text('not a learner')
    args = {'missing': [tmp_path/'nope.pkl', exported/'images'], 'weights': [exported/'weights.pth', exported/'images'],
            'text': [tmp_path/'notes.txt', exported/'images'], 'out': [exported/'learner.pkl', exported/'images', '--out', tmp_path],
            'items': [exported/'learner.pkl', tmp_path/'nowhere.jpg'], 'method': [exported/'learner.pkl', exported/'images', '--method', 'gradcan'],
            'layer': [exported/'learner.pkl', exported/'images', '--layer', 'body.9']}[case]
    if case not in ('out',): args += ['--out', tmp_path/'maps']
    r = run(*args)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('fastcam-maps: ') and msg in lines[0], r.stderr[-2000:]
    assert 'Traceback' not in r.stderr

def test_usage_errors_in_one_line(exported):
    "argparse's own errors too: a missing argument, a value of the wrong type"
    for args, msg in [((), 'the following arguments are required: learner, items'), (('a', 'b', '--bs', 'x'), "argument --bs: invalid int value: 'x'")]:
        r = run(*args)
        assert r.returncode == 2 and r.stderr.strip() == f"fastcam-maps: {msg} (see fastcam-maps --help)", r.stderr
