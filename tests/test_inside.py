"Looking inside the network: receptive fields worked out by hand, patches of a detector we built, embeddings, t-SNE, class images."
from copy import deepcopy
import numpy as np, pytest, torch
from torch import nn
from torch.utils.data import DataLoader as TorchDL, TensorDataset
from fastai.data.load import DataLoader as FastaiDL
from fastai.vision.all import set_seed, resnet18
from fastcam.all import *
from fastcam.inside import *
from fastcam.testing import *

# ---------- receptive fields

def _hand_net():
    "conv 3x3 p1 -> conv 3x3 s2 p1 -> maxpool 2 -> conv 3x3 p0"
    return nn.Sequential(nn.Conv2d(3,4,3,padding=1), nn.ReLU(), nn.Conv2d(4,4,3,stride=2,padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4,4,3))

@pytest.mark.parametrize('layer,jump,size,centre', [('0',1,3,0), ('2',2,5,0), ('4',4,7,1), ('5',4,15,5)])
def test_receptive_field_by_hand(layer, jump, size, centre):
    "j*=s, r+=(k-1)*j, c+=((k-1)/2-p)*j, worked out by hand for each layer"
    rf = receptive_field(_hand_net(), layer, torch.randn(1,3,32,32))
    assert (rf.jump, rf.size, rf.start) == ((jump,jump), (size,size), (centre,centre))

def test_receptive_field_boxes_by_hand():
    rf = receptive_field(_hand_net(), '5', (32,32))
    assert rf.shape == (6,6)
    assert rf.box(0,0, clip=False) == (-2,-2,13,13)   # 15 px centred on pixel 5
    assert rf.box(0,0) == (0,0,13,13)
    assert rf.box(1,2) == (6,2,21,17)                 # centred on row 9, column 13
    assert rf.box(5,5, clip=False) == (18,18,33,33)   # centred on 5 + 5*4 = 25
    assert rf.box(5,5) == (18,18,32,32)

def _grad_boxes(net, x, pos):
    "Bounding boxes of the input pixels on which each unit `(i, j)` of `pos` of `net`'s output depends (non-zero gradient)"
    x = x.to(next(net.parameters()).device)
    xs = x.expand(len(pos), *x.shape[1:]).clone().requires_grad_()   # one copy of the image per unit: one backward pass
    with torch.enable_grad():
        out = net(xs)
        g, = torch.autograd.grad(sum(out[k,:,i,j].sum() for k,(i,j) in enumerate(pos)), xs)
    res = []
    for gk in g:
        nz = gk.abs().sum(0).nonzero()
        res.append((nz[:,1].min().item(), nz[:,0].min().item(), nz[:,1].max().item()+1, nz[:,0].max().item()+1))
    return res

def test_receptive_field_is_gradient_support():
    "Positive weights and average pooling: a unit depends on exactly the pixels of its field (dilation, asymmetric pad, stride)"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3,4,3,padding=1), nn.Conv2d(4,4,3,stride=2,padding=1), nn.AvgPool2d(2),
                        nn.Conv2d(4,4,3,dilation=2), nn.ZeroPad2d((0,1,0,1)), nn.Conv2d(4,4,3,stride=2))
    for p in net.parameters(): p.data.abs_()
    x = torch.rand(1,3,64,64)
    for n in range(1, len(net)+1):
        if n==5: continue   # the pad alone
        rf = receptive_field(net, str(n-1), x)
        h,w = rf.shape
        pos = [(h//2,w//2), (0,0), (h-1,w-1), (1,w-2)]
        assert [rf.box(i,j) for i,j in pos] == _grad_boxes(net[:n], x, pos)

def test_receptive_field_residual_main_path():
    "ResNet-18: the published fields of its stages; the parallel 1x1 downsample conv has its own smaller field"
    m = resnet18()
    got = {l: (receptive_field(m, l, 224).size[0], receptive_field(m, l, 224).jump[0])
           for l in ['layer1','layer2','layer3','layer4','layer2.0.downsample']}
    assert got == {'layer1': (43,4), 'layer2': (99,8), 'layer3': (211,16), 'layer4': (435,32), 'layer2.0.downsample': (43,8)}
    assert hooks_left(m) == 0

def test_receptive_field_lite0_is_gradient_support(pets_probe):
    "The real body (TF-style asymmetric ZeroPad2d, depthwise convs): boxes equal the gradient support, middle and edges"
    body = deepcopy(pets_probe.model[0]).eval()
    torch.manual_seed(0)
    x = torch.rand(1,3,64,64)*2-1
    for l in ['4','6']:
        rf = receptive_field(body, l, x)
        h,w = rf.shape
        pos = [(h//2,w//2), (0,0), (h-1,w-1), (1,w-2)]
        assert [rf.box(i,j) for i,j in pos] == _grad_boxes(body[:int(l)+1], x, pos)

def test_receptive_field_undefined():
    net = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(3,3,1))
    with pytest.raises(ValueError, match='Cannot compute the receptive field'): receptive_field(net, '1', torch.rand(1,3,16,16))
    with pytest.raises(ValueError, match='not a feature map'): receptive_field(nn.Sequential(nn.Flatten()), '0', torch.rand(1,3,4,4))
    assert hooks_left(net) == 0

# ---------- maximally activating patches

def _red_white_detector():
    "Channel 0 responds to red regions (red minus mean of green and blue), channel 1 to white ones; fixed weights, 24 px fields"
    c1, c2, c3 = nn.Conv2d(3,2,5,padding=2), nn.Conv2d(2,2,5,padding=2), nn.Conv2d(2,2,3)
    with torch.no_grad():
        for c in (c1,c2,c3): c.weight.zero_(); c.bias.zero_()
        c1.weight[0,0], c1.weight[0,1], c1.weight[0,2] = 1/25, -0.5/25, -0.5/25
        c1.weight[1], c1.bias[1] = 1/75, -0.9
        for c in (c2,c3):
            for k in range(2): c.weight[k,k] = 1/c.weight[k,k].numel()
    return nn.Sequential(c1, nn.ReLU(), nn.MaxPool2d(2), c2, nn.ReLU(), nn.MaxPool2d(2), c3)

def _contains(b, o): return b[0]<=o[0] and b[1]<=o[1] and b[2]>=o[2] and b[3]>=o[3]

def test_top_patch_contains_synthetic_object(synth):
    p = top_patches(_red_white_detector(), synth.dls.valid, '6', [0,1], k=8, progress=False)
    assert p.rf.size == (24,24)
    assert [synthetic_label(f) for f in p.items[0]] == ['red']*8
    assert all(_contains(b, synthetic_box(f)) for b,f in zip(p.boxes[0].tolist(), p.items[0]))
    crops = p.crops(pad=None)
    assert all((c==1).all(0).sum() >= 16*16 for c in crops[1])   # the white channel's patches hold the white square
    reds = torch.tensor([230,30,30])/255
    assert all(((c-reds[:,None,None]).abs().amax(0) < 1e-6).sum() >= 16*16 for c in crops[0])

def test_top_patches_values_are_activations(synth):
    "Each patch's value is the activation at its position in its image, the image's maximum, and no other image beats the k-th"
    net, dl = _red_white_detector(), synth.dls.valid
    p = top_patches(net, dl, '6', 0, k=5, progress=False)
    xs = torch.cat([b[0] for b in dl])
    a = activations(net, xs, '6')[:,0]
    for v,i,(r,c) in zip(p.values[0], p.index[0].tolist(), p.pos[0].tolist()):
        assert abs(a[i,r,c]-v) < 1e-5 and abs(a[i].max()-v) < 1e-5
    assert (p.values[0][:-1] >= p.values[0][1:]).all()
    assert torch.allclose(a.flatten(1).amax(1).sort(descending=True).values[:5], p.values[0], atol=1e-5)

def test_top_patches_batching_invariant(synth):
    net = _red_white_detector()
    ps = [top_patches(net, synth.dls.valid.new(bs=bs), '6', [0,1], k=6, per_image=pi, progress=False)
          for pi in (True, False) for bs in (3, 64)]
    for a,b in [(ps[0], ps[1]), (ps[2], ps[3])]:
        assert torch.allclose(a.values, b.values, atol=1e-5)
        assert torch.equal(a.index[0], b.index[0]) and torch.equal(a.pos[0], b.pos[0])   # channel 1 has ties: identical white squares
    assert (ps[2].values >= ps[0].values).all()   # every position competing: each rank at least as high

def test_top_patches_pets(pets_probe):
    dl = pets_probe.dls.test_dl(pets_probe.dls.valid_ds.items[:12])
    p = pets_probe.top_patches('0.6', [0, 5], dl=dl, k=4, progress=False)
    assert p.values.shape == (2,4) and p.rf.size == (35,35)
    assert all(c.shape == (3,35,35) for row in p.crops() for c in row)
    for c in range(2):   # the best patch's value is that image's maximum, recomputed through the learner's own pipeline
        x = to_batch([p.items[c][0]], pets_probe.dls).x
        assert abs(activations(pets_probe.model, x, '0.6')[0, p.channels[c]].max() - p.values[c,0]) < 1e-3

# ---------- embeddings, neighbours, t-SNE

@pytest.fixture(scope='module')
def pets_emb(pets_probe):
    dl = pets_probe.dls.test_dl(pets_probe.dls.valid_ds.items[:24], with_labels=True)
    return pets_probe.embeddings(dl, progress=False)

def test_embeddings_are_pooled_body(pets_probe, pets_emb):
    files = pets_probe.dls.valid_ds.items[:24]
    assert pets_emb.feats.shape == (24, 1280) and pets_emb.thumbs.shape == (24,3,64,64)
    assert pets_emb.names == [label_func(f) for f in files]
    x = to_batch(files[:3], pets_probe.dls).x
    with torch.no_grad(): body = pets_probe.model[0].eval()(x).mean((2,3))
    assert (pets_emb.feats[:3]-body.cpu()).abs().max() < 1e-4

def test_neighbour_of_dataset_image_is_itself(pets_probe, pets_emb):
    d,i = neighbours(pets_emb, list(range(24)), k=3)
    assert i[:,0].tolist() == list(range(24)) and (d[:,0] == 0).all() and (d[:,1:] > 0).all()
    assert (d[:,1:] >= d[:,:-1]).all()
    files = pets_probe.dls.valid_ds.items[5:8]   # the same files through the learner's pipeline again
    x = to_batch(files, pets_probe.dls).x
    d,i = neighbours(pets_emb, embed(pets_probe.model, x), k=2)
    assert i[:,0].tolist() == [5,6,7] and (d[:,0] < 1e-3).all() and (d[:,1] > 1).all()
    fig = pets_probe.show_neighbours(files[:1], pets_emb, k=3)
    assert fig.axes[1].get_title().endswith('d=0.00')

def test_tsne_one_point_per_image_and_seeded(pets_emb):
    a = tsne(pets_emb, seed=3)
    assert a.shape == (24, 2)
    assert np.array_equal(a, tsne(pets_emb, seed=3))
    assert not np.allclose(a, tsne(pets_emb, seed=4))
    fig = show_tsne(pets_emb, a, thumbs=True)
    assert len(fig.axes[0].artists) == 24

# ---------- class visualisation

class _Inputs(nn.Module):
    "Wraps a model and records the range of every input it is given"
    def __init__(self, m): super().__init__(); self.m, self.lo, self.hi = m, [], []
    def forward(self, x): self.lo.append(x.min().item()); self.hi.append(x.max().item()); return self.m(x)

def test_gradient_ascent_raises_score_in_range(synth):
    m = _Inputs(synth.model)
    ci = class_images(m, ['red','blue'], 64, steps=40, vocab=synth.dls.vocab, init='random', progress=False)
    assert ((ci.final - ci.initial) > 5).all()
    assert (ci.scores[-10:].mean(0) > ci.scores[:10].mean(0) + 5).all()
    assert len(m.lo) == 42 and min(m.lo) >= 0 and max(m.hi) <= 1   # no Normalize: the model sees pixels in [0, 1]
    assert ci.images.min() >= 0 and ci.images.max() <= 1

def test_gradient_ascent_pets_normalised_range(pets_probe):
    "Through the learner's Normalize, the model only ever sees the normalised images of pixels in [0, 1]"
    m = _Inputs(pets_probe.model)
    mean,std = norm_stats(pets_probe.dls)
    ci = class_images(m, 'cat', 64, steps=15, stats=(mean,std), vocab=pets_probe.dls.vocab, progress=False)
    assert (ci.final - ci.initial > 5).all()
    lo,hi = ((0-mean)/std).min().item(), ((1-mean)/std).max().item()
    assert min(m.lo) >= lo-1e-5 and max(m.hi) <= hi+1e-5

def test_gradient_ascent_seeded_and_weights_untouched(synth):
    m = synth.model
    for p in m.parameters(): p.grad = None
    kw = dict(size=32, steps=5, init='random', progress=False)
    a, b, c = class_images(m, 0, seed=1, **kw), class_images(m, 0, seed=1, **kw), class_images(m, 0, seed=2, **kw)
    if a.images.device.type=='cpu' and next(m.parameters()).device.type=='cpu':
        assert torch.equal(a.images, b.images) and torch.equal(a.scores, b.scores)
    else:   # cuDNN's convolution backward is not deterministic by default: the same seed agrees to rounding
        assert torch.allclose(a.images, b.images, atol=1e-4) and torch.allclose(a.scores, b.scores, atol=1e-3)
    assert not torch.allclose(a.images, c.images, atol=1e-2)
    assert all(p.grad is None for p in m.parameters())

# ---------- hygiene and bad input

def _calls(learn, bad):
    m, dl, item = learn.model, learn.dls.valid, learn.dls.valid_ds.items[0]
    x = learn.dls.valid.one_batch()[0][:2]
    if not bad:
        return [lambda: activations(m, x, '0.1'), lambda: receptive_field(m, '0.2', x), lambda: learn.feature_maps(item, '0.1'),
                lambda: top_patches(m, dl, '0.2', [0,3], k=3, progress=False), lambda: embeddings(m, dl, progress=False),
                lambda: class_images(m, [0,1], 32, steps=3, progress=False), lambda: learn.show_neighbours([item], learn.embeddings(progress=False))]
    return [lambda: top_patches(m, dl, '0.2', 99, progress=False), lambda: top_patches(m, dl, '1', 0, progress=False),
            lambda: receptive_field(m, '1', x), lambda: embeddings(m, dl, layer='nope', progress=False),
            lambda: class_images(m, 7, 32, steps=3, progress=False), lambda: learn.feature_maps(item, '0.9')]

@pytest.mark.parametrize('bad', [False, True])
def test_hooks_removed_and_state_restored(synth, bad):
    m = synth.model
    m.train(); m[0][0][0].weight.requires_grad_(False)
    for p in m.parameters(): p.grad = None
    try:
        for f in _calls(synth, bad):
            if bad:
                with pytest.raises(FastcamError): f()
            else: f()
            assert hooks_left(m) == 0
            assert all(o.training for o in m.modules())
            assert m[0][0][0].weight.requires_grad is False and m[1][2].weight.requires_grad is True
            assert all(p.grad is None for p in m.parameters())
    finally: m[0][0][0].weight.requires_grad_(True); m.eval()

def test_bad_input_messages(synth):
    m, dl = synth.model, synth.dls.valid
    with pytest.raises(ValueError, match=r"No layer named '0\.7'.*close names"): top_patches(m, dl, '0.7', 0)
    with pytest.raises(ValueError, match=r"Channel 40 out of range: layer '0' has 32 channels \(0 to 31\)"): top_patches(m, dl, '0', [1, 40])
    with pytest.raises(ValueError, match='DataLoader is empty'): top_patches(m, TorchDL(TensorDataset(torch.empty(0,3,64,64)), batch_size=4), '0', 0)
    with pytest.raises(ValueError, match='DataLoader is empty'): embeddings(m, FastaiDL([], bs=4))
    with pytest.raises(ValueError, match='shuffles its items'): embeddings(m, synth.dls.train)
    with pytest.raises(ValueError, match='shuffles its items'): top_patches(m, TorchDL(TensorDataset(torch.rand(4,3,64,64)), shuffle=True), '0', 0)
    with pytest.raises(ValueError, match="No layer named 'body'"): synth.feature_maps(synth.dls.valid_ds.items[0], 'body')
    with pytest.raises(ValueError, match='at least 4 images'): tsne(torch.rand(3,8))
    with pytest.raises(KeyError, match="'green' is not a class"): synth.class_images('green', steps=1)
