#!/usr/bin/env python
"""Time fastcam's Grad-CAM against pytorch-grad-cam, torchcam and a plain forward pass, in one run.

    python benchmarks/bench_gradcam.py [--arch resnet34] [--size 224] [--n 32] [--runs 7] [--threads 2] [--layer 0]

Same model (a fastai vision model with its default head, random weights: nothing is downloaded), same layer (default: the
body's output) and same targets for every library; each timing is the median of `--runs` interleaved runs. Each library is
constructed once, outside the timings, as a user would in a loop. The maps are also compared after min-max normalisation."""
import argparse, sys, warnings, pathlib
warnings.filterwarnings('ignore')
import torch
from fastai.vision.all import resnet18, resnet34, resnet50, get_image_files
from pytorch_grad_cam import GradCAM as PGC_GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torchcam.methods import GradCAM as TC_GradCAM
from fastcam.all import *
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from timing import median_times
from fastcam.gradcam import gradcam

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--arch', default='resnet34', choices=['resnet18', 'resnet34', 'resnet50', 'efficientnet_lite0'])
p.add_argument('--size', type=int, default=224); p.add_argument('--n', type=int, default=32)
p.add_argument('--runs', type=int, default=7); p.add_argument('--threads', type=int, default=2)
p.add_argument('--layer', default='0', help="layer name in model.named_modules() (default '0': the body's output)")
p.add_argument('--data', default=None, help="Pets folder (default: fastai's untar_data(URLs.PETS))")
a = p.parse_args()
torch.set_num_threads(a.threads)
arch = dict(resnet18=resnet18, resnet34=resnet34, resnet50=resnet50, efficientnet_lite0=efficientnet_lite0)[a.arch]

dls = pets_dls(a.data, size=a.size, bs=a.n)
learn = pets_learner(dls, arch, pretrained=False)  # fastai's default head: Grad-CAM needs no surgery
model = learn.model.eval()
for q in model.parameters(): q.requires_grad_(True)  # a trainable model, as users have it
files = get_image_files(pets_images(a.data)).sorted()[:a.n]
x = batch_of(dls, files, convert=True)[0]
layer = find_layer(model, a.layer)
with torch.no_grad(): targets = model(x).argmax(1)
tlist = targets.tolist()

pgc = PGC_GradCAM(model, target_layers=[layer])
class _AtLayerSize(PGC_GradCAM):
    def get_target_width_height(self, input_tensor): return tuple(gradcam(model, x[:1], layer=layer).maps.shape[-2:])[::-1]
tc = TC_GradCAM(model, target_layer=layer, input_shape=tuple(x.shape[1:]))
tc._hooks_enabled = False  # torchcam hooks fire on every forward: enable them only for its own runs

def plain_forward():
    with torch.no_grad(): return model(x)
def fastcam_gradcam(): return gradcam(model, x, targets, layer=layer).maps
def pytorch_grad_cam(): return torch.tensor(pgc(x, targets=[ClassifierOutputTarget(t) for t in tlist]))
def torchcam_gradcam():
    tc._hooks_enabled = True
    try:
        scores = model(x)
        return tc(class_idx=tlist, scores=scores)[0]
    finally: tc._hooks_enabled = False

fns = {'forward': plain_forward, 'fastcam': fastcam_gradcam, 'pytorch-grad-cam': pytorch_grad_cam, 'torchcam': torchcam_gradcam}
med = median_times(fns, a.runs)

ours = normalise(fastcam_gradcam())
ref = _AtLayerSize(model, target_layers=[layer])
same_pgc = (ours - torch.tensor(ref(x, targets=[ClassifierOutputTarget(t) for t in tlist]))).abs().max().item()
same_tc = (ours - normalise(torchcam_gradcam())).abs().max().item()

print(f"fastcam Grad-CAM benchmark: {a.arch} (random weights, fastai default head), layer {a.layer!r}, {a.n} images at "
      f"{a.size}px, CPU, {a.threads} threads, torch {torch.__version__}, median of {a.runs} runs")
for k in fns: print(f"  {k:18s} {med[k]:7.3f} s")
print(f"  ratio  fastcam / pytorch-grad-cam   {med['fastcam']/med['pytorch-grad-cam']:6.2f}   (target <= 0.50)")
print(f"  ratio  fastcam / torchcam           {med['fastcam']/med['torchcam']:6.2f}   (target <= 1.05)")
print(f"  ratio  fastcam / plain forward      {med['fastcam']/med['forward']:6.2f}   (target <= 1.20)")
for c in (pgc, ref):  # pytorch-grad-cam 1.5.7's own release() fails on CPU views: remove its hooks ourselves
    for h in c.activations_and_grads.handles: h.remove()
    c.activations_and_grads.handles, c.activations_and_grads.activations, c.activations_and_grads.gradients = [], [], []
tc.remove_hooks()
print(f"  same maps: max |fastcam - pytorch-grad-cam| {same_pgc:.1e}, max |fastcam - torchcam| {same_tc:.1e} (after min-max)")
