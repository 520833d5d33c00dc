"Shared fixtures: a synthetic task whose answer is known, and a real Pets learner trained on the offline sample."
import warnings
warnings.filterwarnings('ignore', category=FutureWarning)
import pytest, torch
import torch.nn.functional as F
from fastai.vision.all import set_seed
from fastcam.all import *

@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    "A small GAP network trained on synthetic images (object colour decides the class, a white square distracts)"
    return synthetic_trained(tmp_path_factory.mktemp('synth'))

@pytest.fixture(scope='session')
def pets():
    "The Pets images folder fastai's config points at (the offline sample in the test suite)"
    return pets_images()

@pytest.fixture(scope='session')
def pets_probe(pets):
    "efficientnet-lite0 ImageNet body (offline weights), frozen, with a GAP head trained one epoch on Pets at 192 px"
    set_seed(42)
    dls = pets_dls(pets, size=192, bs=32)
    learn = pets_learner(dls, efficientnet_lite0, cam_head=True, train_bn=False)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    return learn

def hooks_left(model): return sum(len(m._forward_hooks)+len(m._forward_pre_hooks)+len(m._backward_hooks) for m in model.modules())

def points_at_object(maps, files, size=64):
    "Does each map's maximum fall on the object? Feature maps: the peak cell overlaps the box; pixel maps: the peak pixel, after a light 9 px smoothing, is in it"
    if maps.shape[-1] == size: maps = F.avg_pool2d(maps[:,None], 9, 1, 4)[:,0]
    h, w = maps.shape[-2:]
    cy, cx = size/h, size/w
    res = []
    for m,f in zip(maps, files):
        i = int(m.flatten().argmax()); r, c = divmod(i, w)
        x0,y0,x1,y1 = synthetic_box(f)
        res.append(c*cx < x1 and (c+1)*cx > x0 and r*cy < y1 and (r+1)*cy > y0)
    return res
