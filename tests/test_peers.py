"""The methods the peers have, checked against the peers on the same model, layer and targets: pytorch-grad-cam 1.5.7 (Score-CAM,
Ablation-CAM, Eigen-CAM, XGrad-CAM, HiResCAM) and captum 0.9 (integrated gradients). Maps agree when their correlation after
min-max scaling is at least 0.99 on every image; where a peer defines a method differently, the test says how and checks both."""
from copy import deepcopy
import numpy as np, pytest, torch
from torch import nn
from fastcam.all import *
from fastcam.methods import *
from fastcam.core import normalise, wide
import fastcam.methods as fm

pgc = pytest.importorskip('pytorch_grad_cam')
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

def corr(a, b)->float:
    "Pearson correlation of two maps after min-max scaling (1 when both are constant and equal)"
    a, b = normalise(torch.as_tensor(a).double().cpu()).flatten(), normalise(torch.as_tensor(b).double().cpu()).flatten()
    if a.std()==0 or b.std()==0: return float(torch.equal(a, b))
    return torch.corrcoef(torch.stack([a, b]))[0,1].item()

def worst(ours, theirs)->float: return min(corr(a, b) for a,b in zip(ours, theirs))

def peer_maps(cls, model, layer, x, targets, size, attrs=None, **kw)->torch.Tensor:
    "pytorch-grad-cam's maps of `cls(model, [layer], **kw)` (and `attrs` set), asked at the layer's `size`, its hooks removed after"
    class AtLayerSize(cls):
        def get_target_width_height(self, input_tensor): return size[::-1]
    ref = AtLayerSize(model, target_layers=[find_layer(model, layer)], **kw)
    for k,v in (attrs or {}).items(): setattr(ref, k, v)
    try: return torch.tensor(ref(x, targets=[ClassifierOutputTarget(int(t)) for t in targets]))
    finally:   # pytorch-grad-cam 1.5.7's release() fails on CPU views: remove its hooks ourselves
        ag = ref.activations_and_grads
        for h in ag.handles: h.remove()
        ag.handles, ag.activations, ag.gradients = [], [], []

def unfrozen(model:nn.Module)->nn.Module:
    "A copy of `model` whose parameters require grad: pytorch-grad-cam takes no gradient at a layer of a frozen body"
    m = deepcopy(model).eval()
    for q in m.parameters(): q.requires_grad_(True)
    return m

@pytest.fixture(scope='module')
def probe(pets_probe):
    "The Pets probe (frozen efficientnet-lite0, GAP head, 192 px), 3 validation images and mixed targets"
    x = pets_probe.cam(pets_probe.dls.valid_ds.items[:3]).x
    return pets_probe.model.eval(), unfrozen(pets_probe.model), x, torch.tensor([0, 1, 1])

@pytest.fixture(scope='module')
def synth_x(synth): return synth.cam(synth.dls.valid_ds.items[:6]).x

GRADIENT = {'xgradcam': 'XGradCAM', 'hirescam': 'HiResCAM'}

@pytest.mark.parametrize('name', list(GRADIENT))
@pytest.mark.parametrize('layer', ['0', '0.14'])
def test_gradient_methods_agree_with_pytorch_grad_cam(probe, name, layer):
    "At the body's output (where a GAP head makes both equal to Grad-CAM) and inside the body (where they differ from it)"
    model, free, x, t = probe
    e = getattr(fm, name)(model, x, t, layer=layer)
    r = peer_maps(getattr(pgc, GRADIENT[name]), free, layer, x, t, tuple(e.maps.shape[-2:]))
    c = worst(e.maps, r)
    print(f"{e.method} at {layer}: correlation with pytorch-grad-cam after min-max >= {c:.6f}")
    assert c >= 0.99
    if layer=='0.14': assert worst(e.maps, gradcam(model, x, t, layer=layer).maps) < 0.99   # a method of its own there

def align_corners_true(m, size):
    "`upsample` as pytorch-grad-cam's `nn.UpsamplingBilinear2d` does it (`align_corners=True`)"
    up = torch.nn.functional.interpolate(wide(m) if m.dim()==4 else wide(m)[:,None], size=tuple(size), mode='bilinear', align_corners=True)
    return up if m.dim()==4 else up[:,0]

@pytest.mark.parametrize('layer', ['0', '0.2'])
def test_scorecam_agrees_with_pytorch_grad_cam(synth, synth_x, monkeypatch, layer):
    """pytorch-grad-cam upsamples each channel with `align_corners=True` (`nn.UpsamplingBilinear2d`); fastcam, torchcam and the
    paper's code with `align_corners=False`. With its upsampling the maps are the same; with fastcam's the masks move by up to half a
    cell, and the softmax over the channels' scores turns that into maps that correlate less on coarse grids (printed)"""
    model = synth.model.eval()
    t = synth.cam(synth_x).targets
    own = scorecam(model, synth_x, t, layer=layer, progress=False)
    r = peer_maps(pgc.ScoreCAM, unfrozen(model), layer, synth_x, t, tuple(own.maps.shape[-2:]), attrs=dict(batch_size=64))
    monkeypatch.setattr(fm, 'upsample', align_corners_true)
    e = scorecam(model, synth_x, t, layer=layer, bs=40, progress=False)
    c = worst(e.maps, r)
    print(f"Score-CAM at {layer} ({e.maps.shape[-1]}x{e.maps.shape[-2]}): correlation with pytorch-grad-cam after min-max >= {c:.6f} "
          f"with its upsampling, >= {worst(own.maps, r):.4f} with fastcam's")
    assert c >= 0.99

def test_scorecam_agrees_with_torchcam(synth, synth_x):
    "torchcam scales each channel to [0, 1] before upsampling it, fastcam after (as the paper and pytorch-grad-cam do)"
    from torchcam.methods import ScoreCAM
    model = unfrozen(synth.model)
    t = synth.cam(synth_x).targets
    e = scorecam(model, synth_x, t, layer='0.2', progress=False)
    with ScoreCAM(model, '0.2', batch_size=64, input_shape=tuple(synth_x.shape[1:])) as tc:
        r = tc(class_idx=t.tolist(), scores=model(synth_x))[0]
    c = worst(e.maps, r)
    print(f"Score-CAM at 0.2: correlation with torchcam after min-max >= {c:.6f}")
    assert c >= 0.99

from pytorch_grad_cam.ablation_layer import AblationLayer

class ZeroAblation(AblationLayer):
    "pytorch-grad-cam's ablation layer, zeroing the channel as the paper does (its default sets it to min - 1e7 where the layer goes negative)"
    def __call__(self, x):
        out = self.activations
        for i in range(out.size(0)): out[i, self.indices[i]] = 0
        return out

@pytest.mark.parametrize('layer', ['0', '0.2'])
def test_ablationcam_agrees_with_pytorch_grad_cam(synth, synth_x, layer):
    "At ReLU outputs (smallest value 0) pytorch-grad-cam's ablation is the paper's: a channel set to 0"
    model = synth.model.eval()
    t = synth.cam(synth_x).targets
    e = ablationcam(model, synth_x, t, layer=layer, progress=False)
    c = worst(e.maps, peer_maps(pgc.AblationCAM, unfrozen(model), layer, synth_x, t, tuple(e.maps.shape[-2:])))
    print(f"Ablation-CAM at {layer}: correlation with pytorch-grad-cam after min-max >= {c:.6f}")
    assert c >= 0.99

def test_ablationcam_agrees_with_pytorch_grad_cam_on_pets(probe):
    """At '0.6', an MBConv block's output, which goes negative and feeds a convolution, pytorch-grad-cam sets a channel to the
    layer's minimum minus 1e7 instead of 0; with its ablation layer set to 0 (the paper) the maps agree, its default differs (printed)"""
    model, free, x, t = probe
    x, t = x[:2], t[:2]
    e = ablationcam(model, x, t, layer='0.6', progress=False)
    size = tuple(e.maps.shape[-2:])
    c = worst(e.maps, peer_maps(pgc.AblationCAM, free, '0.6', x, t, size, ablation_layer=ZeroAblation()))
    d = worst(e.maps, peer_maps(pgc.AblationCAM, free, '0.6', x, t, size))
    print(f"Ablation-CAM at 0.6 on Pets: correlation with pytorch-grad-cam (channels set to 0) after min-max >= {c:.6f}; "
          f"with its default ablation (min - 1e7) >= {d:.4f}")
    assert c >= 0.99

def test_scorecam_agrees_with_pytorch_grad_cam_on_pets(probe, monkeypatch):
    "On a real model's 24x24 maps the two upsamplings give maps that differ (printed); with pytorch-grad-cam's, they agree"
    model, free, x, t = probe
    x, t = x[:2], t[:2]
    own = scorecam(model, x, t, layer='0.6', progress=False)
    r = peer_maps(pgc.ScoreCAM, free, '0.6', x, t, tuple(own.maps.shape[-2:]), attrs=dict(batch_size=64))
    monkeypatch.setattr(fm, 'upsample', align_corners_true)
    c = worst(scorecam(model, x, t, layer='0.6', progress=False).maps, r)
    print(f"Score-CAM at 0.6 on Pets: correlation with pytorch-grad-cam after min-max >= {c:.6f} with its upsampling, "
          f">= {worst(own.maps, r):.4f} with fastcam's")
    assert c >= 0.99

def test_eigencam_agrees_with_pytorch_grad_cam(probe):
    """pytorch-grad-cam projects on the SVD's first right singular vector with the sign the SVD returns, which is arbitrary; fastcam
    signs it so that the channels' sum grows along it. Its projection, signed by fastcam's rule, is fastcam's map; its own maps
    agree with fastcam's on the images where the SVD's sign happens to be fastcam's"""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
    model, free, x, t = probe
    for layer in ('0', '0.14'):
        e = eigencam(model, x, t, layer=layer)
        a = activations(model, x, layer).float().numpy()
        proj = torch.tensor(get_2d_projection(a))
        total = torch.tensor(a).flatten(2).sum(1)
        sign = torch.where(((proj.flatten(1)*(total - total.mean(1, keepdim=True))).sum(1) < 0), -1., 1.)
        c = worst(e.maps, (sign[:,None,None]*proj).clamp(min=0))
        r = peer_maps(pgc.EigenCAM, free, layer, x, t, tuple(e.maps.shape[-2:]))
        same = [i for i in range(len(x)) if sign[i] > 0]
        print(f"Eigen-CAM at {layer}: correlation with pytorch-grad-cam's projection, signed as fastcam, after min-max >= {c:.6f}; "
              f"its SVD's sign is fastcam's on {len(same)} of {len(x)} images" +
              (f", where its maps correlate >= {worst(e.maps[same], r[same]):.6f}" if same else ""))
        assert c >= 0.99 and (not same or worst(e.maps[same], r[same]) >= 0.99)

def test_integrated_gradients_agree_with_captum(synth, synth_x):
    "Same baseline (0), same Gauss-Legendre points: the attributions themselves agree, not only the maps"
    from captum.attr import IntegratedGradients
    model = deepcopy(synth.model).eval()
    for m in model.modules():
        if isinstance(m, nn.ReLU): m.inplace = False
    t = synth.cam(synth_x).targets
    e = integrated_gradients(model, synth_x, t, steps=16)
    ref = IntegratedGradients(model).attribute(synth_x, baselines=0., target=t, n_steps=16, internal_batch_size=32)
    diff = ((e.grads - ref).abs().max()/ref.abs().max()).item()
    c = worst(e.maps, ref.abs().amax(1))
    print(f"Integrated gradients: max |fastcam - captum| / max |captum| = {diff:.2e}; maps' correlation >= {c:.6f}")
    assert diff < 1e-4 and c >= 0.99

def test_integrated_gradients_agree_with_captum_on_pets(probe):
    from captum.attr import IntegratedGradients
    model, free, x, t = probe
    e = integrated_gradients(model, x, t, steps=8, baseline=0.5)
    ref = IntegratedGradients(free).attribute(x, baselines=0.5, target=t, n_steps=8, internal_batch_size=8)
    c = worst(e.grads.flatten(1)[:,None], ref.flatten(1)[:,None])
    print(f"Integrated gradients on Pets (baseline 0.5, 8 points): attributions' correlation with captum >= {c:.6f}")
    assert c >= 0.99
