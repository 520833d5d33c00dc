#!/usr/bin/env python
"""Time fastcam's Score-CAM, Ablation-CAM, Eigen-CAM, XGrad-CAM, HiResCAM and integrated gradients against the peers that have
them (pytorch-grad-cam, torchcam, captum), side by side in one run.

Rows (one model: a fastai vision model with fastai's default head, random weights (--pretrained: ImageNet's), trainable, eval mode, on --device; one ready
batch of --bs images; the same layer, --layer, default the body's output, and the same targets, the predicted classes):
  plain forward          `model(x)` under torch.no_grad()
  <method> fastcam       `scorecam(model, x, targets, layer=layer, bs=--inner-bs)`, ... (fastcam's plain functions)
  <method> pgc           pytorch-grad-cam's class, used as its README shows (built per call, its hooks removed after), with
                         `batch_size=--inner-bs` where it has one (Score-CAM, Ablation-CAM)
  <method> torchcam      torchcam's class (Score-CAM with `batch_size=--inner-bs`, XGrad-CAM), built once, its hooks enabled
                         only in its own row
  integrated_gradients   fastcam `integrated_gradients(model, x, targets, steps=--steps, bs=--inner-bs)` against captum's
                         `IntegratedGradients(model).attribute(x, baselines=0, target=targets, n_steps=--steps,
                         internal_batch_size=--inner-bs)` (Gauss-Legendre points in both)
Score-CAM costs one forward pass per channel of the layer per image (512 for resnet34's body: --bs 2 on a CPU takes tens of
seconds a call), Ablation-CAM one run of the layers after the layer per channel (pytorch-grad-cam: of the whole model). Each row
is the median of --reps repetitions, every repetition running every row once (interleaved, the order rotated), CUDA synchronised
before every clock read. After the timings the maps are compared (correlation after min-max, the worst image; pytorch-grad-cam
asked for maps at the layer's size). The ratios and the issue's targets (Score-CAM and Ablation-CAM at most 1.0x each peer on
the CPU) are printed at the end: measured, never asserted.

On this machine's CPU:   python benchmarks/bench_peers.py                 (bs 2, 160 px, 3 repetitions: several minutes on 2 cores)
Some methods only:       python benchmarks/bench_peers.py --methods scorecam ablationcam
On a GPU (defaults: cuda, bs 16, 224 px, resnet34, 5 repetitions):
    python benchmarks/bench_peers.py
`--device cpu` on a GPU machine times its CPU instead."""
import sys, pathlib, warnings
warnings.filterwarnings('ignore')
import torch
from fastai.vision.all import first, resnet18, resnet34, resnet50
import pytorch_grad_cam as pgc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
import torchcam.methods as tcm
from captum.attr import IntegratedGradients
from fastcam.all import pets_dls, pets_images, pets_learner, efficientnet_lite0, normalise
import fastcam.methods as fm
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from timing import common_args, device_defaults, header, interleaved_times, print_rows, print_targets, pets_files, files_note

METHODS = ['scorecam', 'ablationcam', 'eigencam', 'xgradcam', 'hirescam', 'integrated_gradients']
PGC = dict(scorecam='ScoreCAM', ablationcam='AblationCAM', eigencam='EigenCAM', xgradcam='XGradCAM', hirescam='HiResCAM')
TORCHCAM = dict(scorecam='ScoreCAM', xgradcam='XGradCAM')
TARGET = dict(scorecam=dict(cpu=1.0), ablationcam=dict(cpu=1.0))   # issue 18: at most the peers' time on the CPU

p = common_args(__doc__.split('\n')[0], gpu_bs=16, cpu_bs=2)
p.set_defaults(_defaults={'bs': (16, 2), 'reps': (5, 3), 'warmup': (1, 1)}, size=None)
p.add_argument('--layer', default='0', help="layer name in model.named_modules() (default '0': the body's output)")
p.add_argument('--methods', nargs='+', default=METHODS, choices=METHODS, help="methods to time (default: all)")
p.add_argument('--inner-bs', type=int, default=64, help="masked or ablated images per forward pass, IG rows per pass (default 64)")
p.add_argument('--pretrained', action='store_true', help="ImageNet weights (offline: efficientnet_lite0's) instead of random ones")
p.add_argument('--steps', type=int, default=16, help="integrated gradients: points on the path (default 16)")
a = device_defaults(p.parse_args())
if a.size is None: a.size = 224 if a.device.type=='cuda' else 160
arch = dict(resnet18=resnet18, resnet34=resnet34, resnet50=resnet50, efficientnet_lite0=efficientnet_lite0)[a.arch]

torch.manual_seed(a.seed)
path = pets_images(a.data)
files, skipped = pets_files(path, a.bs, a.seed)
dls = pets_dls(path, size=a.size, bs=a.bs, seed=a.seed)
dls.to(a.device)
learn = pets_learner(dls, arch, pretrained=a.pretrained)   # fastai's default head
model = learn.model.to(a.device).eval()
for q in model.parameters(): q.requires_grad_(True)   # trainable, as users have it: pytorch-grad-cam takes no gradient of a frozen body
mods = dict(model.named_modules())
if a.layer not in mods: raise SystemExit(f"No layer {a.layer!r}; top-level names: {[k for k in mods if k and '.' not in k]}")
layer = mods[a.layer]
x = first(dls.test_dl(files, bs=len(files), num_workers=0))[0].to(a.device)
with torch.no_grad(): targets = model(x).argmax(1)
tlist = targets.tolist()
with torch.no_grad(): acts = fm.activations(model, x, layer).flatten(2)
channels, constant = acts.shape[1], (acts.amax(2)==acts.amin(2)).float().mean().item()   # Score-CAM: one shared pass for these

def release(c):
    "pytorch-grad-cam 1.5.7's release() fails on the CPU (detach_ of a view): remove its hooks and empty its lists by hand"
    ag = c.activations_and_grads
    for h in ag.handles: h.remove()
    ag.handles, ag.activations, ag.gradients = [], [], []

def pgc_call(name, size=None):
    "pytorch-grad-cam's maps for `name`; at the layer's `size` when given (to compare), else at the input's, as it draws them"
    cls = getattr(pgc, PGC[name])
    if size is not None:
        class AtLayerSize(cls):
            def get_target_width_height(self, input_tensor): return size[::-1]
        cls = AtLayerSize
    c = cls(model, target_layers=[layer], **(dict(batch_size=a.inner_bs) if name=='ablationcam' else {}))
    if name=='scorecam': c.batch_size = a.inner_bs
    try: return torch.as_tensor(c(x, targets=[ClassifierOutputTarget(t) for t in tlist]))
    finally: release(c)

tcs = {}
for name in a.methods:
    if name in TORCHCAM:
        kw = dict(batch_size=a.inner_bs) if name=='scorecam' else {}
        tcs[name] = getattr(tcm, TORCHCAM[name])(model, target_layer=layer, input_shape=tuple(x.shape[1:]), **kw)
        tcs[name]._hooks_enabled = False   # torchcam's hooks run on every forward: enabled only in their own row

def torchcam_call(name):
    tc = tcs[name]
    tc._hooks_enabled = True
    try: return tc(class_idx=tlist, scores=model(x))[0]
    finally: tc._hooks_enabled = False

ig = IntegratedGradients(model)
def fastcam_call(name):
    if name=='integrated_gradients': return fm.integrated_gradients(model, x, targets, steps=a.steps, bs=a.inner_bs).grads
    kw = dict(bs=a.inner_bs, progress=False) if name in ('scorecam', 'ablationcam') else {}
    return getattr(fm, name)(model, x, targets, layer=layer, **kw).maps

def captum_call(): return ig.attribute(x, baselines=0., target=targets, n_steps=a.steps, internal_batch_size=a.inner_bs)

def plain_forward():
    with torch.no_grad(): return model(x)

fns, labels = {'forward': plain_forward}, {'forward': f"plain forward, batch of {len(files)} ready"}
for name in a.methods:
    fns[f"{name} fastcam"] = lambda name=name: fastcam_call(name)
    labels[f"{name} fastcam"] = f"{name} fastcam"
    if name in PGC: fns[f"{name} pgc"], labels[f"{name} pgc"] = (lambda name=name: pgc_call(name)), f"{name} pytorch-grad-cam"
    if name in TORCHCAM: fns[f"{name} torchcam"], labels[f"{name} torchcam"] = (lambda name=name: torchcam_call(name)), f"{name} torchcam"
    if name=='integrated_gradients': fns['integrated_gradients captum'], labels['integrated_gradients captum'] = captum_call, "integrated_gradients captum"

header("fastcam peers' methods benchmark", a, packages=('torch', 'torchvision', 'fastai', 'fastcam', 'grad-cam', 'torchcam', 'captum'),
       layer=f"{a.layer!r} ({type(layer).__name__}, {channels} channels, {constant:.1%} of the batch's channel maps constant), targets: predicted classes; inner batch {a.inner_bs}, IG {a.steps} points",
       files=files_note(files, skipped, path, a.seed))
times = interleaved_times(fns, a.reps, a.warmup, a.device)

print("timings (median s per call, per image, spread over the repetitions):")
print_rows(times, labels, len(files))

def worst(ours, theirs)->float:
    "The smallest correlation over the images of two batches of maps, after min-max"
    ours, theirs = normalise(torch.as_tensor(ours).detach().double().cpu()), normalise(torch.as_tensor(theirs).detach().double().cpu())
    return min(torch.corrcoef(torch.stack([o.flatten(), t.flatten()]))[0,1].item() for o,t in zip(ours, theirs))

print("same maps (correlation after min-max, worst image; pytorch-grad-cam at the layer's size):")
for name in a.methods:
    ours = fastcam_call(name)
    if name=='integrated_gradients':
        print(f"  {name}: attributions vs captum {worst(ours.flatten(1)[:,None], captum_call().flatten(1)[:,None]):.4f}")
        continue
    res = [f"vs pytorch-grad-cam {worst(ours, pgc_call(name, tuple(ours.shape[-2:]))):.4f}"]
    if name in TORCHCAM: res.append(f"vs torchcam {worst(ours, torchcam_call(name)):.4f}")
    print(f"  {name}: " + ', '.join(res))
for tc in tcs.values(): tc.remove_hooks()

rows = []
for name in a.methods:
    peers = [('pgc', 'pytorch-grad-cam')] if name in PGC else []
    if name in TORCHCAM: peers.append(('torchcam', 'torchcam'))
    if name=='integrated_gradients': peers.append(('captum', 'captum'))
    rows += [(f"fastcam {name} / {label}", f"{name} fastcam", f"{name} {key}", TARGET.get(name, {})) for key,label in peers]
print_targets(times, rows, a.device, source='issue 18')
