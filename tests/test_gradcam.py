"Gradient-based explanations: Grad-CAM generalises CAM, batching, reference implementations, known answers, hygiene."
import gc, os
from copy import deepcopy
import numpy as np, pytest, torch, torch.nn.functional as F
from torch import nn
from fastai.vision.all import Learner, create_head, load_learner
from fastcam.all import *
from fastcam.methods import *
from fastcam.core import normalise
from fastcam.testing import *

def corr(a, b): return np.corrcoef(a.flatten().cpu().numpy(), b.flatten().cpu().numpy())[0,1]

def test_gradcam_generalises_cam_on_pets(pets_probe):
    "Seed 003's proof on the real model: on GAP -> Linear, Grad-CAM is CAM up to a positive constant"
    x = pets_probe.cam(pets_probe.dls.valid_ds.items[:8]).x
    c, g = cam(pets_probe.model, x), gradcam(pets_probe.model, x)
    for i in range(len(x)):
        assert corr(normalise(F.relu(c.maps[i])), normalise(g.maps[i])) > 0.999
    Z = c.maps.shape[-1]*c.maps.shape[-2]
    assert (g.maps - F.relu(c.maps)/Z).abs().max() < 1e-5

ALL = list(methods)   # every registered method
NOT_PER_IMAGE = {'smoothgrad': 'its noise is drawn for the whole batch at once: an image alone gets other noise'}
NOT_ON_OBJECT = {'smoothgrad': "at its default noise the tiny network no longer recognises the images (05_methods)",
                 'deconvnet': 'its maps hardly depend on the class: it shows strong edges, the white square has the strongest',
                 'eigencam': "one map for every class: the layer's most salient pattern, which can be the white square"}

def f(name, model, x, targets=None, quick=True, **kw):
    "Method `name` on `model` with its quick (or view) options, skipping the test where the model is not one the method explains"
    m = methods[name]
    if not m.supports(model, x): pytest.skip(m.why_not(model, x))
    return explain(model, x, name, targets, **{**(m.quick_options(x) if quick else m.view_options(x)), **kw})

@pytest.mark.parametrize('name', [k for k in ALL if k not in NOT_PER_IMAGE])
def test_batched_equals_per_image(synth, name):
    x = synth.cam(synth.dls.valid_ds.items[:6]).x
    e = f(name, synth.model, x)
    for i in range(len(x)):
        one = f(name, synth.model, x[i:i+1])
        assert (one.maps[0]-e.maps[i]).abs().max() <= 1e-4*max(1., e.maps[i].abs().max().item())

@pytest.mark.parametrize('name', [k for k in ALL if k not in NOT_ON_OBJECT])
def test_every_method_peaks_on_the_object(synth, name):
    "Synthetic images: the coloured square decides the class, the white one distracts"
    files = synth.dls.valid_ds.items[:32]
    e = f(name, synth.model, synth.cam(files).x, quick=False)   # the options views use: occlusion's patches a seventh of the image
    assert all(points_at_object(e.maps, files))

def test_maps_do_not_point_at_the_distractor(synth):
    "The map of the *other* class does not peak on the object: the maps depend on the class, not just on salience"
    files = synth.dls.valid_ds.items[:32]
    x = synth.cam(files).x
    t = 1 - synth.cam(x).targets
    assert sum(points_at_object(gradcam_pp(synth.model, x, t).maps, files)) <= 4

def test_agreement_with_pytorch_grad_cam_on_pets(pets_probe):
    "Same model, layer and targets; pytorch-grad-cam asked for maps at the layer's size so no resizing differs"
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = pets_probe.model.eval()  # its body is frozen: fastcam works on it as it is
    unfrozen = deepcopy(model)  # pytorch-grad-cam needs the layer's output to require grad, so it gets an unfrozen copy
    for q in unfrozen.parameters(): q.requires_grad_(True)
    x = pets_probe.cam(pets_probe.dls.valid_ds.items[:6]).x
    for name in ('0', '0.14'):  # the body's output, and an earlier block (stride 16)
        t = torch.tensor([0,1,0,1,0,1])
        for ours, theirs in [(gradcam, GradCAM), (gradcam_pp, GradCAMPlusPlus)]:
            e = ours(model, x, t, layer=name)
            h, w = e.maps.shape[-2:]
            class AtLayerSize(theirs):
                def get_target_width_height(self, input_tensor): return (w, h)
            ref = AtLayerSize(unfrozen, target_layers=[find_layer(unfrozen, name)])
            try: r = torch.tensor(ref(x, targets=[ClassifierOutputTarget(int(i)) for i in t]))
            finally:  # pytorch-grad-cam 1.5.7's release() fails on CPU views: remove its hooks ourselves
                for hd in ref.activations_and_grads.handles: hd.remove()
                ref.activations_and_grads.handles, ref.activations_and_grads.activations, ref.activations_and_grads.gradients = [], [], []
            diff = (normalise(e.maps).cpu() - r).abs().max().item()
            print(f"{e.method} at {e.layer}: max |fastcam - pytorch-grad-cam| after min-max = {diff:.2e}")
            assert diff < 1e-4

def test_agreement_with_captum(synth):
    from captum.attr import Saliency, GuidedBackprop, Occlusion
    model = deepcopy(synth.model).eval()
    for m in model.modules():
        if isinstance(m, nn.ReLU): m.inplace = False  # captum's backward hooks refuse in-place ReLUs
    x = synth.cam(synth.dls.valid_ds.items[:8]).x
    t = synth.cam(x).targets
    checks = {
        'Saliency': ((saliency(model, x, t).maps), Saliency(model).attribute(x, target=t, abs=True).amax(1)),
        'GuidedBackprop': (guided_backprop(model, x, t).grads, GuidedBackprop(model).attribute(x, target=t)),
        'Occlusion': (normalise(occlusion(model, x, t, patch=12, stride=8, progress=False).maps),
                      normalise(Occlusion(model).attribute(x, target=t, sliding_window_shapes=(3,12,12), strides=(3,8,8), baselines=0)[:,0])),
    }
    for k,(a,b) in checks.items():
        diff = (a-b).abs().max().item()
        print(f"{k}: max |fastcam - captum| = {diff:.2e}")
        assert diff < 1e-4

def test_default_head_inplace_relu_frozen_exported(synth, tmp_path):
    "fastai's default head (in-place ReLU), a frozen model, under no_grad, after export/load_learner"
    std = Learner(synth.dls, nn.Sequential(deepcopy(synth.model[0]), create_head(32, 2)))
    with std.no_bar(), std.no_logging(): std.fit_one_cycle(2, 1e-2)
    std.freeze()
    files = synth.dls.valid_ds.items[:4]
    with torch.no_grad(): e = std.gradcam(files)
    assert e.maps.shape == (4,8,8) and torch.isfinite(e.maps).all()
    std.export(tmp_path/'std.pkl')
    loaded = load_learner(tmp_path/'std.pkl')
    for p in loaded.model.parameters(): p.requires_grad_(False)
    assert (loaded.gradcam(files).maps.cpu() - e.maps.cpu()).abs().max() < 1e-5   # load_learner loads on the CPU
    assert loaded.guided_gradcam(files).grads.shape == (4,3,64,64)

def test_hooks_state_and_errors(synth):
    m = synth.model
    x = synth.cam(synth.dls.valid_ds.items[:2]).x
    m.train(); m[1][2].weight.requires_grad_(False)
    try:
        for name in ALL:
            f(name, m, x)
            with pytest.raises(KeyError, match="'green' is not a class"): f(name, m, x, 'green', vocab=synth.dls.vocab)
            assert hooks_left(m) == 0, name
            assert m.training and all(o.training for o in m.modules()), name
            assert not m[1][2].weight.requires_grad and m[0][0][0].weight.requires_grad, name
        with pytest.raises(ValueError, match="No layer named '0.7'"): gradcam(m, x, layer='0.7')
        with pytest.raises(ValueError, match='ran 2 times'):
            shared = nn.ReLU()
            net = nn.Sequential(nn.Sequential(nn.Conv2d(3,4,3), shared, nn.Conv2d(4,4,3), shared), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4,2)))
            gradcam(net, x, layer=shared)
    finally: m[1][2].weight.requires_grad_(True); m.eval()

def test_memory_does_not_grow(synth):
    "500 calls leave neither hooks nor memory behind"
    psutil = pytest.importorskip('psutil')
    proc = psutil.Process(os.getpid())
    x = synth.cam(synth.dls.valid_ds.items[:4]).x
    for _ in range(50): gradcam(synth.model, x); guided_gradcam(synth.model, x)
    gc.collect(); before = proc.memory_info().rss
    for _ in range(500): gradcam(synth.model, x); guided_gradcam(synth.model, x)
    gc.collect(); grown = (proc.memory_info().rss - before)/2**20
    print(f"RSS growth over 500 calls: {grown:.1f} MiB")
    assert grown < 20 and hooks_left(synth.model) == 0
