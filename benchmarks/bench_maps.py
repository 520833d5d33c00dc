#!/usr/bin/env python
"""Maps for a dataset: `learn.get_maps` against fastai's `learn.get_preds` over the same files, and peak memory for few and many images.

Speed (one process, side by side in one run; resnet body with the lecture's GAP head, random weights, on --device):
  fastai get_preds        `learn.get_preds(dl=learn.dls.test_dl(files))`: fastai's path from files to predictions
  get_maps, CAM           `learn.get_maps(files, method='cam', path=...)`: the same files to a map store on disk
  get_maps, Grad-CAM      `learn.get_maps(files, method='gradcam', path=...)`: with a backward pass per batch
All three use the DataLoaders' batch size (--bs) and fastai's default DataLoader workers. Each row is the median of --reps
repetitions, every repetition running every row once (interleaved, the order rotated), CUDA synchronised before every clock read.

Memory: a fresh process per size runs `learn.get_maps(files, path=...)` on --small-n and on --n files and prints its peak
resident memory (ru_maxrss of the process that explains; its DataLoader workers are separate processes, listed apart); a third
runs `get_maps` without a path (the store in memory) on --n files, for contrast. A store's memory is bounded by the batch, so the
two store rows should be close (issue 17: within 300 MB at 224 px); measured, never asserted.

On this machine's CPU:   python benchmarks/bench_maps.py                (480 files at 224 px: about 15 minutes on 2 cores)
Smaller:                 python benchmarks/bench_maps.py --n 96 --small-n 16
On a GPU:                python benchmarks/bench_maps.py --device cuda"""
import argparse, json, os, resource, subprocess, sys, pathlib, tempfile, warnings
warnings.filterwarnings('ignore')
import torch
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from timing import common_args, device_defaults, header, interleaved_times, print_rows, pets_files, files_note

p = common_args(__doc__.split('\n')[0], gpu_bs=64, cpu_bs=32)
p.add_argument('--n', type=int, default=480, help="files explained (default 480)")
p.add_argument('--small-n', type=int, default=48, help="files of the small memory run (default 48)")
p.add_argument('--child', default=None, help=argparse.SUPPRESS)   # one memory measurement, in a process of its own
p.set_defaults(_defaults={'bs': (64, 32), 'reps': (3, 1), 'warmup': (1, 0)})
a = device_defaults(p.parse_args())

from fastai.vision.all import resnet18, resnet34, resnet50
from fastcam.all import pets_dls, pets_images, pets_learner, efficientnet_lite0
arch = dict(resnet18=resnet18, resnet34=resnet34, resnet50=resnet50, efficientnet_lite0=efficientnet_lite0)[a.arch]

def learner():
    torch.manual_seed(a.seed)
    dls = pets_dls(path, size=a.size, bs=a.bs, seed=a.seed)
    dls.to(a.device)
    learn = pets_learner(dls, arch, cam_head=True, pretrained=False)
    learn.model.to(a.device).eval()
    return learn

path = pets_images(a.data)
if a.child:   # one memory measurement in this fresh process: `store N` or `memory N`
    mode, n = a.child.split()
    files, _ = pets_files(path, int(n), a.seed)
    learn = learner()
    with tempfile.TemporaryDirectory() as d:
        store = learn.get_maps(files, method='gradcam', path=pathlib.Path(d)/'maps' if mode=='store' else None, progress=False)
        assert len(store)==int(n)
    print(json.dumps(dict(peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,
                          workers_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024)))
    sys.exit(0)

files, skipped = pets_files(path, a.n, a.seed)
learn = learner()
tmp = tempfile.TemporaryDirectory()
runs = iter(range(10**6))

def get_preds():
    with learn.no_bar(): return learn.get_preds(dl=learn.dls.test_dl(files))[0]

def get_maps(method):
    return learn.get_maps(files, method=method, path=pathlib.Path(tmp.name)/f'{method}{next(runs)}', progress=False)

fns = dict(get_preds=get_preds, cam=lambda: get_maps('cam'), gradcam=lambda: get_maps('gradcam'))
header("fastcam get_maps benchmark", a, files=files_note(files, skipped, path, a.seed),
       workers=f"{learn.dls.test_dl(files).fake_l.num_workers} DataLoader worker(s) (fastai's default), batches of {a.bs}")
times = interleaved_times(fns, a.reps, a.warmup, a.device)
print(f"speed over {len(files)} files (median s per call, per image, spread over the repetitions):")
print_rows(times, dict(get_preds="fastai, learn.get_preds(dl=dls.test_dl(files))", cam="learn.get_maps(files, method='cam', path=...)",
                       gradcam="learn.get_maps(files, method='gradcam', path=...)"), len(files))
med = {k: sorted(v)[len(v)//2] for k,v in times.items()}
print(f"  images/s: get_preds {len(files)/med['get_preds']:.1f}, get_maps CAM {len(files)/med['cam']:.1f}, "
      f"get_maps Grad-CAM {len(files)/med['gradcam']:.1f}")
print(f"  get_maps CAM / get_preds (time)        {med['cam']/med['get_preds']:.2f}")
print(f"  get_maps Grad-CAM / get_preds (time)   {med['gradcam']/med['get_preds']:.2f}")

def child(mode:str, n:int)->dict:
    args = [sys.executable, __file__, '--child', f'{mode} {n}', '--device', str(a.device), '--arch', a.arch, '--size', str(a.size),
            '--bs', str(a.bs), '--seed', str(a.seed)] + (['--data', a.data] if a.data else []) + (['--threads', str(a.threads)] if a.threads else [])
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode: raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

print(f"peak resident memory of the explaining process, Grad-CAM, a fresh process each ({a.size} px, batches of {a.bs}):")
mem = {(m,n): child(m, n) for m,n in (('store', a.small_n), ('store', a.n), ('memory', a.n))}
for (m,n),v in mem.items():
    print(f"  {'store on disk' if m=='store' else 'in memory (no path)':20s} {n:5d} images   {v['peak_mb']:8.0f} MB   (largest worker {v['workers_mb']:.0f} MB)")
d = mem[('store', a.n)]['peak_mb'] - mem[('store', a.small_n)]['peak_mb']
print(f"  store: {a.n} images - {a.small_n} images = {d:+.0f} MB (issue 17: within 300 MB at 224 px)")
