#!/usr/bin/env python
"""Time the host work fastcam adds around a model's forward pass: what it does before the first layer runs and after the last.

On a GPU the forward pass of a batch is mostly the host launching kernels, so this host work is most of the gap between
`cam(model, x)` and a plain forward in `bench_cam.py` (issue 8's target: batched CAM <= 1.10x a forward on CUDA). It is
measured here directly, on any device: a forward pre-hook on the model's first layer and a forward hook on its head read
the clock, and so does a wrapper around `Tensor.tolist` (fastcam's one synchronisation, the finite check). Each call splits into
  before   from the call to the first layer starting (checks, batch, state guard, hook)
  forward  the model's layers
  after    from the head ending to the call returning (the method's arithmetic, packaging, restoring the state, the check)
  synced   the part of `after` that follows the synchronisation: with a GPU slower than its host, only `before` and this
           part add to the GPU's own time
Two models, each with a GAP head (random weights, eval mode) and a tiny batch (default 1 image at 32 px), so that the forward
is short and the host work stands out:
  --arch (default resnet34)  the lecture's body: on a CPU its 21M weights stream through the caches at every forward, so
                             fastcam's own code runs with cold caches
  narrow                     13 x 3 conv-BN-ReLU blocks of 8 channels (175 modules, more than resnet34's 119): a forward that
                             is all dispatch and no arithmetic, as a GPU's host sees one
Rows: plain forward (`model(x)` under no_grad), `cam(model, x)`, `gradcam(model, x)`; medians of --reps interleaved
repetitions (CUDA synchronised before every clock read). Nothing is asserted.

    python benchmarks/bench_host.py                    # this machine's default device, torch on one CPU thread
    python benchmarks/bench_host.py --device cpu       # the CPU of a GPU machine"""
import sys, pathlib, statistics, time, warnings
warnings.filterwarnings('ignore')
import torch
from torch import nn
from fastai.vision.all import create_body, resnet18, resnet34, resnet50
from fastcam.all import cam, gradcam, gap_head, efficientnet_lite0
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from timing import common_args, device_defaults, header, sync

p = common_args(__doc__.split('\n')[0], gpu_bs=1, cpu_bs=1)
p.set_defaults(size=32, threads=1, _defaults={'bs': (1, 1), 'reps': (300, 300), 'warmup': (30, 30)})   # one CPU thread, as a GPU's host uses
a = device_defaults(p.parse_args())
arch = dict(resnet18=resnet18, resnet34=resnet34, resnet50=resnet50, efficientnet_lite0=efficientnet_lite0)[a.arch]

def block(c:int=8): return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))

def with_gap_head(body:nn.Module, c:int)->nn.Module:
    nf = body(torch.zeros(1, c, 64, 64)).shape[1]
    return nn.Sequential(body, gap_head(nf, 2)).to(a.device).eval()

torch.manual_seed(a.seed)
models = {a.arch: (with_gap_head(create_body(arch(), pretrained=False), 3), 3),
          'narrow': (with_gap_head(nn.Sequential(*[nn.Sequential(block(), block(), block()) for _ in range(13)]), 8), 8)}

clock = {}
_tolist = torch.Tensor.tolist
def tolist(t):
    "`Tensor.tolist`, reading the clock when it returns"
    res = _tolist(t); clock['synced'] = time.perf_counter(); return res
torch.Tensor.tolist = tolist
PARTS = ('total', 'before', 'forward', 'after', 'synced')

def time_model(net:nn.Module, c:int)->dict:
    "Median ms of each part of each call on `net`"
    x = torch.randn(a.bs, c, a.size, a.size, device=a.device)
    first = next(m for m in net.modules() if not list(m.children()))   # the first leaf: a body's stem runs first
    hooks = [first.register_forward_pre_hook(lambda m, i: clock.__setitem__('in', time.perf_counter())),
             net[1].register_forward_hook(lambda m, i, o: clock.__setitem__('out', time.perf_counter()))]
    def forward():
        with torch.no_grad(): return net(x)
    fns = dict(forward=forward, cam=lambda: cam(net, x), gradcam=lambda: gradcam(net, x))
    times, names = {k: {part: [] for part in PARTS} for k in fns}, list(fns)
    for r in range(a.warmup + a.reps):
        for k in names[r%3:] + names[:r%3]:
            sync(a.device)
            clock['synced'] = None
            t0 = time.perf_counter()
            fns[k]()
            sync(a.device)
            t1 = time.perf_counter()
            if r < a.warmup: continue
            synced = 0. if clock['synced'] is None else t1-clock['synced']
            for part, v in zip(PARTS, (t1-t0, clock['in']-t0, clock['out']-clock['in'], t1-clock['out'], synced)): times[k][part].append(v)
    for h in hooks: h.remove()
    return {k: {part: 1000*statistics.median(v) for part, v in d.items()} for k, d in times.items()}

header("fastcam host work per call", a, packages=('torch', 'fastai', 'fastcam'),
       models=f"{a.arch} and narrow (13 x 3 conv-BN-ReLU blocks, 8 channels), each with a GAP head")
for name, (net, c) in models.items():
    med = time_model(net, c)
    print(f"{name} ({sum(1 for _ in net.modules())} modules), median ms per call:  total    before   forward     after    synced")
    for k, label in (('forward', 'plain forward'), ('cam', 'cam(model, x)'), ('gradcam', 'gradcam(model, x)')):
        print(f"  {label:40s} " + ''.join(f"{med[k][part]:9.3f} " for part in PARTS))
    for k in ('cam', 'gradcam'):
        extra = lambda *parts: sum(med[k][q] - med['forward'][q] for q in parts)
        print(f"  {k}: {extra('before', 'after'):.3f} ms of host work beyond the plain forward's, {extra('before', 'synced'):.3f} ms of it "
              f"before the first layer or after the synchronisation; total - plain forward {extra('total'):.3f} ms")
