#!/usr/bin/env python
"""Time fastcam's Grad-CAM against pytorch-grad-cam, torchcam and a plain forward pass, side by side in one run.

Rows (one model: a fastai vision model with fastai's default head, random weights, trainable, eval mode, on --device):
  plain forward       `model(x)` under torch.no_grad() on a ready batch `x` of --bs images
  fastcam Grad-CAM    `gradcam(model, x, targets, layer=layer)`
  pytorch-grad-cam    `GradCAM(model, [layer])(x, targets=[ClassifierOutputTarget(t) ...])`, used as its README shows (a
                      `with GradCAM(...)` block per batch), so that its hooks do not fire in the other rows
  torchcam            `GradCAM(model, layer)` built once; its hooks are enabled only in its own row; `cam(class_idx, scores)`
Same layer (--layer, default the body's output) and same targets (the predicted classes) for every library. After the
timings, the maps are compared after min-max normalisation, at the layer's resolution. The files are the first --bs RGB
images of the Pets sample after a seeded shuffle. Each row is the median of --reps repetitions, every repetition running
every row once (interleaved, the order rotated), CUDA synchronised before every clock read. The ratios and their targets
(issue 8) are printed at the end: measured, never asserted.

On this machine's CPU:   python benchmarks/bench_gradcam.py                 (bs 16, 5 repetitions: a few minutes on 2 cores)
On a GPU (defaults: cuda, bs 64, 224 px, resnet34, 9 repetitions):
    python benchmarks/bench_gradcam.py
    python benchmarks/bench_gradcam.py --size 512 --bs 32
    python benchmarks/bench_gradcam.py --arch resnet50
With the device tool: ../shared/gpu/prepare.sh, then run `bash .gpu/run.sh 'python benchmarks/bench_gradcam.py'` carrying
.gpu (see ../shared/gpu/README.md). `--device cpu` on a GPU machine times its CPU instead."""
import sys, pathlib, warnings
warnings.filterwarnings('ignore')
import torch
from fastai.vision.all import first, resnet18, resnet34, resnet50
from pytorch_grad_cam import GradCAM as PGC_GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torchcam.methods import GradCAM as TC_GradCAM
from fastcam.all import gradcam, pets_dls, pets_images, pets_learner, efficientnet_lite0
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from timing import common_args, device_defaults, header, interleaved_times, print_rows, print_targets, pets_files, files_note

p = common_args(__doc__.split('\n')[0], gpu_bs=64, cpu_bs=16)
p.add_argument('--layer', default='0', help="layer name in model.named_modules() (default '0': the body's output)")
a = device_defaults(p.parse_args())
arch = dict(resnet18=resnet18, resnet34=resnet34, resnet50=resnet50, efficientnet_lite0=efficientnet_lite0)[a.arch]

torch.manual_seed(a.seed)
path = pets_images(a.data)
files, skipped = pets_files(path, a.bs, a.seed)
dls = pets_dls(path, size=a.size, bs=a.bs, seed=a.seed)
dls.to(a.device)
learn = pets_learner(dls, arch, pretrained=False)  # fastai's default head: Grad-CAM needs no surgery
model = learn.model.to(a.device).eval()
# A trainable model, as users have it. pytorch-grad-cam computes no gradients when the layer's output does not require
# grad (a frozen body), so every parameter is made trainable here, for every library alike.
for q in model.parameters(): q.requires_grad_(True)
mods = dict(model.named_modules())
if a.layer not in mods: raise SystemExit(f"No layer {a.layer!r}; top-level names: {[k for k in mods if k and '.' not in k]}")
layer = mods[a.layer]
x = first(dls.test_dl(files, bs=len(files), num_workers=0))[0].to(a.device)
with torch.no_grad(): targets = model(x).argmax(1)
tlist = targets.tolist()

def release(c):
    "pytorch-grad-cam 1.5.7's release() fails on the CPU (detach_ of a view): remove its hooks and empty its lists by hand"
    ag = c.activations_and_grads
    for h in ag.handles: h.remove()
    ag.handles, ag.activations, ag.gradients = [], [], []

tc = TC_GradCAM(model, target_layer=layer, input_shape=tuple(x.shape[1:]))
tc._hooks_enabled = False  # torchcam's hook runs on every forward: enabled only in its own row

def plain_forward():
    with torch.no_grad(): return model(x)

def fastcam_gradcam(): return gradcam(model, x, targets, layer=layer).maps

def pytorch_grad_cam(cls=PGC_GradCAM):
    c = cls(model, target_layers=[layer])
    try: return c(x, targets=[ClassifierOutputTarget(t) for t in tlist])
    finally: release(c)

def torchcam_gradcam():
    tc._hooks_enabled = True
    try: return tc(class_idx=tlist, scores=model(x))[0]
    finally: tc._hooks_enabled = False

fns = {'forward': plain_forward, 'fastcam': fastcam_gradcam, 'pytorch-grad-cam': pytorch_grad_cam, 'torchcam': torchcam_gradcam}
header("fastcam Grad-CAM benchmark", a, packages=('torch', 'torchvision', 'fastai', 'fastcam', 'grad-cam', 'torchcam'),
       layer=f"{a.layer!r} ({type(layer).__name__}, output {tuple(fastcam_gradcam().shape[1:])} per image), targets: predicted classes",
       files=files_note(files, skipped, path, a.seed))
times = interleaved_times(fns, a.reps, a.warmup, a.device)

print("timings (median s per call, per image, spread over the repetitions):")
print_rows(times, {'forward': f"plain forward, batch of {len(files)} ready", 'fastcam': "fastcam gradcam(model, x, targets, layer)",
                   'pytorch-grad-cam': "pytorch-grad-cam GradCAM", 'torchcam': "torchcam GradCAM"}, len(files))

def minmax(m:torch.Tensor)->torch.Tensor:
    m = torch.as_tensor(m).detach().float().cpu()
    lo, hi = m.amin((-2,-1), keepdim=True), m.amax((-2,-1), keepdim=True)
    return (m-lo)/(hi-lo).clamp_min(1e-12)

ours = minmax(fastcam_gradcam())
class AtLayerSize(PGC_GradCAM):  # pytorch-grad-cam upsamples to the input: ask for the layer's size to compare like with like
    def get_target_width_height(self, input_tensor): return tuple(ours.shape[-2:])[::-1]
d_pgc = (ours - minmax(pytorch_grad_cam(AtLayerSize))).abs().max().item()
d_tc = (ours - minmax(torchcam_gradcam())).abs().max().item()
tc.remove_hooks()
print(f"same maps (after min-max, {tuple(ours.shape[-2:])}): max |fastcam - pytorch-grad-cam| {d_pgc:.1e}, "
      f"max |fastcam - torchcam| {d_tc:.1e}")
print_targets(times, [("fastcam Grad-CAM / torchcam", 'fastcam', 'torchcam', dict(cuda=1.0, cpu=1.05)),
                      ("fastcam Grad-CAM / pytorch-grad-cam", 'fastcam', 'pytorch-grad-cam', dict(cuda=0.3, cpu=0.5)),
                      ("fastcam Grad-CAM / plain forward", 'fastcam', 'forward', {})], a.device)
