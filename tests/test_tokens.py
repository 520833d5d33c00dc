"""Vision transformers (issue 18, item 1): timm's ViT and DeiT read as feature maps (patch tokens on their grid), Swin through
`timm_learner`, and attention rollout; random weights (`pretrained=False`), a few synthetic images, on the CPU."""
import numpy as np, pytest, torch
from copy import deepcopy
from torch import nn
from fastai.vision.all import Learner, vision_learner, set_seed, Resize
from fastcam.all import *
from fastcam.testing import *
from fastcam.methods import Pass, layer_grads, rollout, _attention_layers
from fastcam.core import layers, normalise, plain, to_model

timm = pytest.importorskip('timm')

GRAD = ['gradcam', 'gradcam_pp', 'layercam']
ARCHS = ['vit_tiny_patch16_224', 'deit_tiny_patch16_224', 'deit_tiny_distilled_patch16_224']   # 1, 1 and 2 prefix tokens

@pytest.fixture(scope='module')
def dls(tmp_path_factory):
    "Four validation images of the synthetic task, at 224 px (the size these ViTs' position embeddings are made for)"
    return synthetic_dls(tmp_path_factory.mktemp('tokens'), n=16, size=224, obj=64, bs=4, seed=0, num_workers=0)

@pytest.fixture(scope='module')
def files(dls): return list(dls.valid_ds.items[:3])

@pytest.fixture(scope='module')
def x(dls, files): return plain(to_batch(files, dls).x)

@pytest.fixture(scope='module', params=ARCHS)
def any_learn(request, dls):
    set_seed(0)
    return vision_learner(dls, request.param, pretrained=False)

@pytest.fixture(scope='module')
def learn(dls):
    "ViT-Tiny (DeiT-Tiny is the same network in timm: the checks below hold for both)"
    set_seed(0)
    return vision_learner(dls, ARCHS[0], pretrained=False)

def corr(a, b):
    a, b = a.flatten().double(), b.flatten().double()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()

def minmax(m): return normalise(m.detach().float().cpu())

@pytest.mark.parametrize('name', GRAD + ['rollout'])
def test_maps_on_the_patch_grid(any_learn, files, name):
    "Each method gives finite (n, 14, 14) maps at 224 px, at the last block's normalised input; hooks and state come back"
    learn = any_learn
    vit = learn.model[0].model
    before, fused = state_of(learn.model), [m.fused_attn for m in _attention_layers(vit)]
    e = getattr(learn, name)(files)
    assert e.maps.shape == (3, 14, 14) and e.maps.isfinite().all() and e.maps.abs().sum() > 0
    assert e.layer == ('0.model' if name=='rollout' else '0.model.blocks.11.norm1')
    after = state_of(learn.model)
    assert before[:2] == after[:2] and all(torch.equal(a, b) for a,b in zip(before[2], after[2]))
    assert hooks_left(learn.model) == 0 and [m.fused_attn for m in _attention_layers(vit)] == fused

def test_any_block_and_anatomy(learn, files, x):
    "`layer=` names any block; `activations` and `layers` show token layers as maps; a layer without patch tokens is refused"
    e = learn.layercam(files, layer='0.model.blocks.5')
    assert e.maps.shape == (3, 14, 14) and e.layer == '0.model.blocks.5'
    a = activations(learn.model, x, '0.model.blocks.5')
    assert a.shape == (3, 192, 14, 14)
    shapes = {n: s for n,_,s in layers(learn.model, x)}
    assert shapes['0.model.blocks.5'] == (1, 192, 14, 14) and shapes['0'] == (1, 192)
    with pytest.raises(InputError, match='a layer that outputs its patch tokens'): learn.gradcam(files, layer='0')
    # after the last attention no patch token reaches the class token: the final norm's maps are all zero, hence the default
    assert learn.gradcam(files, layer='0.model.norm').maps.abs().max() == 0

def vit_reshape(t, h=14, w=14):
    "pytorch-grad-cam's `reshape_transform` for ViT, from its documentation (tutorials/vision_transformers)"
    result = t[:, 1:, :].reshape(t.size(0), h, w, t.size(2))
    return result.transpose(2, 3).transpose(1, 2)

@pytest.mark.parametrize('name', GRAD)
def test_agrees_with_pytorch_grad_cam(learn, x, name):
    "The same layer and targets through pytorch-grad-cam with its documented ViT reshape: the maps correlate >= 0.99"
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    ours = getattr(learn, name)(x)
    cls = {'gradcam': GradCAM, 'gradcam_pp': GradCAMPlusPlus, 'layercam': LayerCAM}[name]
    class AtLayerSize(cls):   # pytorch-grad-cam upsamples to the input: ask for the grid to compare like with like
        def get_target_width_height(self, input_tensor): return (14, 14)
    model = learn.model.eval()
    with AtLayerSize(model, [model[0].model.blocks[-1].norm1], reshape_transform=vit_reshape) as cam:
        theirs = torch.as_tensor(cam(x, targets=[ClassifierOutputTarget(int(t)) for t in ours.targets]))
    assert hooks_left(model) == 0
    for o, t in zip(minmax(ours.maps), theirs):
        assert corr(o, t) >= 0.99

class Pick(nn.Module):
    "Keeps the token at index `i` of a token sequence"
    def __init__(self, i): super().__init__(); self.i = i
    def forward(self, t): return t[:, self.i]

@pytest.mark.parametrize('kw,k', [({}, 1), (dict(reg_tokens=4), 5), (dict(class_token=False, global_pool='avg'), 0)])
@pytest.mark.parametrize('pos', [(0, 2), (1, 0)])
def test_gradient_lands_on_its_patch(kw, k, pos):
    "A model whose score reads one patch token only: its gradient, read as maps, is nonzero at that patch's grid cell only"
    set_seed(0)
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=0, img_size=(32, 48), depth=2, **kw)
    vit.global_pool = ''   # the head returns every token (n, k + 2*3, c)
    r, c = pos
    model = nn.Sequential(vit, Pick(k + r*3 + c), nn.Linear(192, 2)).eval()
    p = Pass(model, torch.randn(2, 3, 32, 48))
    with torch.enable_grad(): a, g = layer_grads(p, vit.blocks[1])
    assert a.shape == g.shape == (2, 192, 2, 3)
    hit = g.abs().sum(1) > 0
    assert hit[:, r, c].all() and hit.sum() == 2
    assert hooks_left(model) == 0

def test_swin_through_timm_learner(tmp_path):
    "fastai's vision_learner cannot run Swin (a clear error names the fix); timm_learner's learner explains with every map method"
    dls = synthetic_dls(tmp_path, n=16, bs=4, seed=0, num_workers=0)
    files = list(dls.valid_ds.items[:3])
    kw = dict(pretrained=False, img_size=64, window_size=4, embed_dim=24, depths=(1, 1), num_heads=(1, 2))
    set_seed(0)
    broken = vision_learner(dls, 'swin_tiny_patch4_window7_224', **kw)
    with pytest.raises(FastcamError, match=r'timm_learner\(dls, arch\)'): broken.gradcam(files)
    learn = timm_learner(dls, 'swin_tiny_patch4_window7_224', **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    for name in GRAD:
        e = getattr(learn, name)(files)
        assert e.maps.shape == (3, 8, 8) and e.layer == '0' and e.maps.isfinite().all()
    # an inner stage is channels last: read as maps, the same as Grad-CAM written out with a permute
    e = learn.gradcam(files, layer='0.model.layers.0')
    assert e.maps.shape == (3, 16, 16)
    xb = to_model(to_batch(files, dls).x, learn.model)
    stage = learn.model[0].model.layers[0]
    keep = {}
    def leaf(m, i, o): keep['a'] = o.detach().requires_grad_(); return keep['a']
    h = stage.register_forward_hook(leaf)
    try:
        with preserve_state(learn.model): out = learn.model(xb)
        g, = torch.autograd.grad(out[torch.arange(3), e.targets].sum(), keep['a'])
    finally: h.remove()
    a, g = keep['a'].detach().permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)
    ref = torch.relu((g.mean((2, 3), keepdim=True)*a).sum(1))
    assert torch.allclose(e.maps, ref, atol=1e-5*ref.abs().max().item() + 1e-12)
    # the head surgery gives CAM, which reproduces the scores
    cl = cam_learner(learn)
    c = cl.cam(files)
    assert c.class_maps.shape == (3, 2, 8, 8)
    with pytest.raises(InputError, match='attends within windows'): learn.rollout(files)
    assert hooks_left(learn.model) == 0

def test_swin_at_224(dls, files):
    "The full swin_tiny at 224 px: a 7x7 map at the body's output"
    set_seed(0)
    learn = timm_learner(dls, 'swin_tiny_patch4_window7_224', pretrained=False)
    e = learn.gradcam(files[:2])
    assert e.maps.shape == (2, 7, 7) and e.maps.isfinite().all()

def rollout_by_hand(vit, x, head_fusion='mean', discard_ratio=0.):
    "Rollout as in Jacob Gildenblat's vit-explain, one image at a time, with attention computed from each block's qkv weights"
    ins = []
    hs = [b.norm1.register_forward_hook(lambda m, i, o: ins.append(o)) for b in vit.blocks]
    try:
        with torch.no_grad(): vit(x)
    finally:
        for h in hs: h.remove()
    k0 = vit.num_prefix_tokens
    res = []
    for i in range(len(x)):
        result = torch.eye(ins[0].shape[1], dtype=torch.float64)
        for b, z in zip(vit.blocks, ins):
            at = b.attn
            q, k, _ = at.qkv(z[i:i+1]).reshape(1, -1, 3, at.num_heads, at.head_dim).permute(2, 0, 3, 1, 4)
            att = ((q*at.scale) @ k.transpose(-2, -1)).softmax(-1)[0].double()
            fused = {'mean': att.mean(0), 'max': att.max(0).values, 'min': att.min(0).values}[head_fusion]
            flat = fused.flatten().clone()
            _, idx = flat.topk(int(flat.numel()*discard_ratio), largest=False)
            flat[idx[idx != 0]] = 0
            a = (flat.view_as(fused) + torch.eye(len(fused), dtype=torch.float64))/2
            a = a/a.sum(-1, keepdim=True)
            result = a @ result
        res.append(result[0, k0:].view(14, 14))
    return torch.stack(res)

@pytest.mark.parametrize('fusion,ratio', [('mean', 0.), ('max', 0.9)])
def test_rollout_against_the_attention_matrices(learn, x, fusion, ratio):
    "On a float64 copy: with random weights the attention is nearly uniform, and in float32 the batched and the per-image\
 products can order two near-equal values differently, so `discard_ratio` would drop a different one"
    learn = Learner(learn.dls, deepcopy(learn.model).double())
    vit = learn.model[0].model
    xb = to_model(x, learn.model)
    with preserve_state(learn.model): ref = rollout_by_hand(vit, xb, fusion, ratio)
    got = learn.rollout(x, head_fusion=fusion, discard_ratio=ratio).maps
    assert got.dtype == torch.float64
    assert got.shape == (3, 14, 14) and torch.allclose(got.double(), ref, atol=1e-5*ref.abs().max().item())

@pytest.mark.parametrize('pos', [(0, 2), (1, 0)])
def test_rollout_on_controlled_attention(pos):
    "Every token of every head attends to one patch: the rollout map peaks on that patch's cell of the 2x3 grid"
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=2, img_size=(32, 48), depth=1).eval()
    r, c = pos
    spikes = torch.zeros(192); spikes[[0, 64, 128]] = 10.   # one dimension in each of the 3 heads
    with torch.no_grad():
        for t in (vit.patch_embed.proj.weight, vit.patch_embed.proj.bias, vit.cls_token, vit.pos_embed): t.zero_()
        vit.pos_embed[0, 1 + r*3 + c] = spikes          # only that patch's token is nonzero: the input image is black
        qkv = vit.blocks[0].attn.qkv
        qkv.weight.zero_(); qkv.bias.zero_()
        qkv.weight[192:384] = torch.eye(192)            # keys: the normalised tokens
        qkv.bias[:192] = spikes                         # queries: the same spikes, for every token
    e = rollout(vit, torch.zeros(1, 3, 32, 48), head_fusion='min')
    assert e.maps.shape == (1, 2, 3)
    assert divmod(int(e.maps[0].flatten().argmax()), 3) == pos
    assert e.maps[0, r, c] > 0.49 and e.maps[0].sum() - e.maps[0, r, c] < 0.01

@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16])
def test_dtypes(learn, files, dtype):
    "float64 and bfloat16 copies of the model: finite maps in float64 / float32, close to (or correlated with) float32's"
    low = as_dtype(learn, dtype)
    for name in GRAD + ['rollout']:
        ref, got = getattr(learn, name)(files[:2]), getattr(low, name)(files[:2], targets=None)
        assert got.maps.dtype == (torch.float64 if dtype == torch.float64 else torch.float32) and got.maps.isfinite().all()
        if dtype == torch.float64: assert torch.allclose(got.maps.float(), ref.maps, atol=1e-4*ref.maps.abs().max().item())
        elif name == 'rollout': assert corr(got.maps, ref.maps) > 0.95
    assert hooks_left(low.model) == 0
