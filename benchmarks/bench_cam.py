#!/usr/bin/env python
"""Time fastcam's batched CAM against a plain forward pass and against the lecture's per-image loop, in one run.

    python benchmarks/bench_cam.py [--arch resnet34] [--size 224] [--n 25] [--runs 7] [--threads 2] [--data PATH]

Every timing is the median of `--runs` runs, the methods interleaved so that they share the machine's state.
Weights are random (nothing is downloaded): speed does not depend on them."""
import argparse, sys, warnings, pathlib
warnings.filterwarnings('ignore')
import numpy as np, torch
from fastai.vision.all import first, PILImage, resnet34, resnet18, resnet50, get_image_files
from fastcam.all import *
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from timing import median_times

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--arch', default='resnet34', choices=['resnet18', 'resnet34', 'resnet50', 'efficientnet_lite0'])
p.add_argument('--size', type=int, default=224); p.add_argument('--n', type=int, default=25)
p.add_argument('--runs', type=int, default=7); p.add_argument('--threads', type=int, default=2)
p.add_argument('--data', default=None, help="Pets folder (default: fastai's untar_data(URLs.PETS))")
a = p.parse_args()
torch.set_num_threads(a.threads)
arch = dict(resnet18=resnet18, resnet34=resnet34, resnet50=resnet50, efficientnet_lite0=efficientnet_lite0)[a.arch]

dls = pets_dls(a.data, size=a.size, bs=a.n)
learn = pets_learner(dls, arch, cam_head=True, pretrained=False)
net = learn.model.eval()
net1, net2 = body_head(net)
files = get_image_files(pets_images(a.data)).sorted()[:a.n]
x = batch_of(dls, files, convert=True)[0]

def plain_forward():
    with torch.no_grad(): return net(x)

def files_to_logits():
    xb = batch_of(dls, files, convert=True)[0]
    with torch.no_grad(): return net(xb)

def fastcam_cam(): return learn.cam(files, convert=True)

def seed_loop():
    "The lecture's loop, as written: a test_dl per image, net1(x) for the map, net(x) for the probabilities"
    for f in files:
        x, = first(dls.test_dl([PILImage.create(f)]))
        camimg = torch.einsum('ij,jkl -> ikl', net2[2].weight, net1(x).squeeze())
        a_, b_ = net(x).tolist()[0]
        catprob, dogprob = np.exp(a_)/(np.exp(a_)+np.exp(b_)), np.exp(b_)/(np.exp(a_)+np.exp(b_))

fns = dict(forward=plain_forward, files_logits=files_to_logits, cam=fastcam_cam, seed=seed_loop)
med = median_times(fns, a.runs)

print(f"fastcam CAM benchmark: {a.arch} (random weights), {a.n} images at {a.size}px, CPU, {a.threads} threads, "
      f"torch {torch.__version__}, median of {a.runs} runs")
for k,label in [('forward', 'plain forward pass, batch ready'), ('files_logits', 'files -> logits (load, resize, forward)'),
                ('cam', 'fastcam learn.cam, files -> maps'), ('seed', "the lecture's per-image loop")]:
    print(f"  {label:42s} {med[k]:7.3f} s")
print(f"  ratio  batched CAM / plain forward       {med['cam']/med['forward']:6.2f}   (target <= 1.10)")
print(f"  ratio  batched CAM / files -> logits     {med['cam']/med['files_logits']:6.2f}")
print(f"  ratio  lecture loop / batched CAM        {med['seed']/med['cam']:6.2f}   (target >= 1.8)")
