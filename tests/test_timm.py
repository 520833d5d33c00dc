"""Every method on learners built with fastai's timm integration (issue 12): a convnet (resnet18) and two modern families,
ConvNeXt (GELU, LayerNorm) and EfficientNet (SiLU, squeeze-excitation); random weights, 64 px synthetic images, on the CPU."""
import numpy as np, pytest, torch
from torch import nn
from fastai.vision.all import vision_learner, set_seed, PILMask, default_device
from fastcam.all import *
from fastcam.testing import *
from fastcam.core import is_body_head, to_model

timm = pytest.importorskip('timm')

ARCHS = {   # arch -> (a layer inside the body, whether its activations are nn.ReLU modules, its last stages at strides 16 and 8)
    'resnet18': ('0.model.layer2', True, ('0.model.layer3', '0.model.layer2')),
    'convnext_atto': ('0.model.stages.1', False, ('0.model.stages.2', '0.model.stages.1')),
    'efficientnet_b0': ('0.model.blocks.3', False, ('0.model.blocks.4', '0.model.blocks.2')),
}

@pytest.fixture(scope='module')
def dls(tmp_path_factory): return synthetic_dls(tmp_path_factory.mktemp('timm'), n=32, bs=8, seed=0, num_workers=0)

@pytest.fixture(scope='module', params=list(ARCHS))
def learn(request, dls):
    set_seed(0)
    learn = vision_learner(dls, request.param, pretrained=False)
    learn.model.to(default_device())   # the GPU when there is one
    learn.arch_name = request.param
    return learn

@pytest.fixture(scope='module')
def files(dls): return list(dls.valid_ds.items[:3])

@pytest.fixture(scope='module')
def x(dls, files): return to_batch(files, dls).x.cpu()

def test_timm_body(learn):
    "fastai wraps the timm model as `Sequential(TimmBody, head)`: fastcam's body is the TimmBody"
    assert type(learn.model[0]).__name__ == 'TimmBody' and is_body_head(learn.model)

def direct_gradcam(model, x, targets):
    "Grad-CAM written out with plain torch on a body-head model"
    modes = [m.training for m in model.modules()]
    try:
        model.eval()
        a = model[0](x).detach().requires_grad_()
        out = model[1](a)
        g, = torch.autograd.grad(out[torch.arange(len(x)), targets].sum(), a)
    finally:
        for m,t in zip(model.modules(), modes): m.training = t
    return torch.relu((g.mean((2,3), keepdim=True)*a).sum(1)).detach()

@pytest.mark.parametrize('name', ['gradcam', 'gradcam_pp', 'layercam'])
def test_gradcam_family(learn, files, x, name):
    before = state_of(learn.model)
    e = getattr(learn, name)(files)
    assert e.maps.shape == (3, 2, 2) and e.layer == '0' and e.maps.isfinite().all()
    if name=='gradcam':
        ref = direct_gradcam(learn.model, to_model(x, learn.model), e.targets)
        assert torch.allclose(e.maps, ref, atol=1e-5*ref.abs().max().item()+1e-12)
    inner = getattr(learn, name)(files, layer=ARCHS[learn.arch_name][0])
    assert inner.maps.shape[-1] > e.maps.shape[-1] and inner.maps.isfinite().all()
    after = state_of(learn.model)
    assert before[:2] == after[:2] and all(torch.equal(a, b) for a,b in zip(before[2], after[2]))
    assert hooks_left(learn.model) == 0

def test_cam_needs_the_surgery(learn, files, x):
    "fastai's default head is not what CAM explains; after `cam_learner` CAM reproduces the scores and Grad-CAM is ReLU(CAM)/hw"
    with pytest.raises(InputError, match='cam_learner'): learn.cam(files)
    cl = cam_learner(learn)
    assert type(cl.model[0]).__name__ == 'TimmBody'
    e = cl.cam(files)
    assert e.class_maps.shape == (3, 2, 2, 2)
    with torch.no_grad(), preserve_state(cl.model): out = cl.model(to_model(x, cl.model))
    assert torch.allclose(e.class_maps.mean((-2,-1)), out, atol=1e-4*out.abs().max().item())
    g = cl.gradcam(files, targets=e.targets)
    assert torch.allclose(g.maps, torch.relu(e.maps)/4, atol=1e-5*e.maps.abs().max().item())

def test_input_gradient_methods(learn, files, x):
    e = learn.saliency(files)
    xg = to_model(x, learn.model).clone().requires_grad_()
    with preserve_state(learn.model): out = learn.model(xg)
    g, = torch.autograd.grad(out[torch.arange(3), e.targets].sum(), xg)
    assert torch.allclose(e.maps, g.abs().amax(1), atol=1e-5*g.abs().max().item())
    s = learn.smoothgrad(files, n=2)
    assert s.maps.shape == (3, 64, 64) and s.maps.isfinite().all() and torch.equal(s.targets, e.targets)
    o = learn.occlusion(files, patch=32, stride=32, progress=False)
    assert o.maps.shape == (3, 64, 64) and o.maps.isfinite().all()

@pytest.mark.parametrize('name', ['guided_backprop', 'deconvnet', 'guided_gradcam'])
def test_relu_rules_on_relu_bodies(learn, files, name):
    "The ReLU rules work where the body's activations are nn.ReLU modules and change the gradient"
    if not ARCHS[learn.arch_name][1]: pytest.skip('no ReLU modules in this body')
    e = getattr(learn, name)(files)
    assert e.maps.shape == (3, 64, 64) and e.maps.isfinite().all()
    if name!='guided_gradcam': assert not torch.allclose(e.maps, learn.saliency(files, targets=e.targets).maps)

def test_relu_rules_refused_without_relu_body(dls, files):
    "ConvNeXt (GELU) and EfficientNet (SiLU) bodies have no ReLU for the rule to change: the methods must refuse clearly"
    for arch in ('convnext_atto', 'efficientnet_b0'):
        set_seed(0)
        l = vision_learner(dls, arch, pretrained=False)
        for name in ('guided_backprop', 'deconvnet', 'guided_gradcam'):
            with pytest.raises(InputError, match='changes what ReLU modules pass back'): getattr(l, name)(files)

def test_relu_rules_refused_on_a_relu_free_model(dls, files):
    "After `cam_learner` (a GAP head, no ReLU) a GELU/SiLU model has no ReLU at all, and is refused too"
    for arch in ('convnext_atto', 'efficientnet_b0'):
        set_seed(0)
        cl = cam_learner(vision_learner(dls, arch, pretrained=False))
        with pytest.raises(InputError, match='changes what ReLU modules pass back'): cl.guided_backprop(files)

def test_last_layer_at(learn, x):
    "A timm body holds its model, and the model its stages in a container: `last_layer_at` finds them inside"
    assert tuple(last_layer_at(learn.model, x, s) for s in (16, 8)) == ARCHS[learn.arch_name][2]
    assert activations(learn.model, x, last_layer_at(learn.model, x, 16)).shape[-1] == 4

def test_feature_maps(learn, files, x):
    layer = ARCHS[learn.arch_name][0]
    fig = learn.feature_maps(files[0], layer, n=4)
    a = activations(learn.model, x[:1], layer)
    assert len(fig.axes) == 4 and f"{a.shape[1]} channels" in fig._suptitle.get_text()
    assert np.allclose(fig.axes[0].images[0].get_array(), a[0, 0].cpu().numpy())

def test_top_patches(learn, dls):
    layer = ARCHS[learn.arch_name][0]
    p = learn.top_patches(layer, [0, 1], k=3, progress=False)
    xs = torch.cat([b[0] for b in dls.valid])
    a = activations(learn.model, xs, layer)[:, :2].flatten(2).amax(2).cpu()   # each image's strongest unit, per channel
    assert torch.allclose(p.values, a.T.sort(1, descending=True).values[:, :3], atol=1e-5)
    assert p.boxes.shape == (2, 3, 4) and (p.boxes[..., 2] > p.boxes[..., 0]).all() and (p.boxes >= 0).all() and (p.boxes <= 64).all()
    assert p.rf.jump[0] in (8, 16) and p.rf.size[0] > p.rf.jump[0]

def test_embeddings(learn, dls):
    emb = learn.embeddings(progress=False)
    xs = torch.cat([b[0] for b in dls.valid])
    assert len(emb) == len(dls.valid_ds)
    assert torch.allclose(emb.feats, activations(learn.model, xs, '0').mean((2,3)).cpu(), atol=1e-5)
    d, i = neighbours(emb, [0], k=2)
    assert i[0, 0] == 0

def box_mask(f, size=64):
    a = np.zeros((size, size), np.uint8); x0, y0, x1, y1 = synthetic_box(f); a[y0:y1, x0:x1] = 1
    return PILMask.create(a)

def test_localise_report(learn, dls, files):
    dl = mask_dl(dls, files[:2], box_mask, synthetic_label, bs=2)
    rep = localise_report(learn, {'Grad-CAM': 'gradcam'}, dl, curves_every=2, steps=4, progress=False)
    assert list(rep.table.index) == ['Grad-CAM', 'centre Gaussian', 'random']
    assert np.isfinite(rep.table.drop(columns='ms/img').values).all()

def test_top_losses_maps(learn):
    "Top losses with maps on a timm learner: Grad-CAM by default (fastai's head), the learner's own maps"
    from fastai.interpret import ClassificationInterpretation
    import fastcam.interpret
    it = ClassificationInterpretation.from_learner(learn)
    lm = it.loss_maps(it.top_losses(2)[1])
    assert lm.predicted.method == 'Grad-CAM' and lm.predicted.layer == '0'
    for e in (lm.predicted, lm.actual):
        ref = learn.gradcam(lm.items, targets=e.targets).maps
        assert torch.allclose(e.maps, ref, atol=1e-5*ref.abs().max().item()+1e-12)
    assert len(it.plot_top_losses_maps(2).axes) == 2*3
