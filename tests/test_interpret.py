"Maps where fastai users look (issue 12): top losses and confused pairs with maps, and the training callback that films the maps."
import random
import numpy as np, pytest, torch
from torch import nn
from PIL import Image
from matplotlib import animation
from fastai.vision.all import (Learner, set_seed, ImageDataLoaders, FlipItem, accuracy, Callback, DataBlock, ImageBlock,
                               MultiCategoryBlock, Resize, BCEWithLogitsLossFlat)
from fastai.interpret import ClassificationInterpretation
from fastcam.all import *
from fastcam.interpret import *
from fastcam.methods import Method, methods
from fastcam.core import model_param
from fastcam.testing import *

# ---- top losses and confused pairs

@pytest.fixture(scope='module')
def weak():
    "A model that still makes mistakes: one epoch on 128 synthetic images"
    return synthetic_trained(n=128, epochs=1)

@pytest.fixture(scope='module')
def interp(weak): return ClassificationInterpretation.from_learner(weak)

@pytest.mark.parametrize('method', ['cam', 'gradcam', 'gradcam_pp', 'saliency'])
def test_loss_maps_are_the_learners_maps(weak, interp, method):
    "Maps for the predicted and the actual class equal the learner's own method on the same files and targets"
    losses, idx = interp.top_losses(5)
    lm = interp.loss_maps(idx, method)
    f = getattr(weak, method)
    assert lm.items == [interp.dl.items[i] for i in idx] and torch.equal(lm.losses, losses)
    for e in (lm.predicted, lm.actual):
        ref = f(lm.items, targets=e.targets)
        assert ref.method == e.method and torch.allclose(e.maps, ref.maps, rtol=1e-5, atol=1e-6*ref.maps.abs().max().item())
    assert lm.actual.labels == [synthetic_label(f) for f in lm.items]
    assert torch.equal(lm.predicted.targets, lm.predicted.probs.argmax(1))

def test_predictions_and_titles_match_fastai(weak, interp):
    "The predicted class and probability are fastai's `get_preds` on the same items; titles are fastai's `plot_top_losses` titles"
    losses, idx = interp.top_losses(4)
    lm = interp.loss_maps(idx)
    with weak.no_bar(): preds, targs = weak.get_preds(dl=weak.dls.test_dl(lm.items, with_labels=True))
    assert torch.equal(lm.predicted.targets.cpu(), preds.argmax(1)) and torch.equal(lm.actual.targets.cpu(), targs)
    assert torch.allclose(lm.predicted.target_probs.cpu(), preds.max(1).values, atol=1e-5)
    v = weak.dls.vocab
    assert lm.titles() == [f"{v[p]}/{v[t]} / {l:.2f} / {r:.2f}"
                           for p,t,l,r in zip(preds.argmax(1).tolist(), targs.tolist(), losses.tolist(), preds.max(1).values.tolist())]
    fig = interp.plot_top_losses_maps(4)
    assert [a.get_title() for a in fig.axes[::3]] == lm.titles()
    for r in range(4):
        assert np.allclose(fig.axes[3*r+1].images[1].get_array(), lm.predicted.maps[r].cpu().numpy())
        assert np.allclose(fig.axes[3*r+2].images[1].get_array(), lm.actual.maps[r].cpu().numpy())

def test_one_explanation_per_method(weak, interp, monkeypatch):
    "A top-losses figure costs one prediction pass and one explanation call per method, whatever k"
    calls = []
    orig = Learner.explain
    def spy(self, items, method='gradcam', *args, **kwargs):
        calls.append((getattr(method, 'name', method), len(items)))
        return orig(self, items, method, *args, **kwargs)
    monkeypatch.setattr(Learner, 'explain', spy)
    interp.plot_top_losses_maps(6, method=['cam', 'gradcam'])
    assert calls == [('prediction', 6), ('cam', 12), ('gradcam', 12)]

def test_train_set_without_augmentation(weak):
    "Top losses of an augmented training set are explained through the validation pipeline, as `learn.cam` sees the files"
    dls = ImageDataLoaders.from_name_func(weak.dls.path, weak.dls.train_ds.items + weak.dls.valid_ds.items, synthetic_label,
                                          valid_pct=0.25, seed=0, bs=32, item_tfms=FlipItem(p=1.), num_workers=0)
    learn = Learner(dls, weak.model)
    it = ClassificationInterpretation.from_learner(learn, ds_idx=0)
    lm = it.loss_maps(it.top_losses(3)[1])
    ref = learn.cam(lm.items, targets=lm.actual.targets)
    assert torch.allclose(lm.actual.maps, ref.maps, atol=1e-6*ref.maps.abs().max().item())
    assert not torch.allclose(lm.actual.maps, learn.cam(ref.x.flip(-1), targets=lm.actual.targets).maps)

def test_confused_pairs(weak, interp):
    "`confused_idxs` lists fastai's `most_confused` pairs, each with its worst images; `plot_confused_maps` draws them"
    pairs = interp.confused_idxs(k=2)
    assert pairs and [p[:3] for p in pairs] == [(a, p, int(n)) for a,p,n in interp.most_confused()]
    targs, decoded = interp.class_preds()
    for a,p,n,ids in pairs:
        assert len(ids) == min(2, n)
        assert (targs[ids] == weak.dls.vocab.o2i[a]).all() and (decoded[ids] == weak.dls.vocab.o2i[p]).all()
        rest = [i for i in torch.where((targs == weak.dls.vocab.o2i[a]) & (decoded == weak.dls.vocab.o2i[p]))[0].tolist() if i not in ids.tolist()]
        if rest: assert interp.losses[ids].min() >= interp.losses[rest].max()
    fig = interp.plot_confused_maps(k=2)
    assert len(fig.axes) == 3*sum(len(o[3]) for o in pairs)
    assert 'Most confused' in fig._suptitle.get_text()
    with pytest.raises(InputError, match='No pair'): interp.plot_confused_maps(min_val=10**6)

def test_default_method(weak):
    "CAM for a GAP head, Grad-CAM for fastai's default head"
    from fastai.vision.all import vision_learner, resnet18
    assert default_method(weak.model) == 'cam'
    vl = vision_learner(weak.dls, resnet18, pretrained=False)
    it = ClassificationInterpretation.from_learner(vl)
    lm = it.loss_maps([0, 1])
    assert lm.predicted.method == 'Grad-CAM'
    ref = vl.gradcam(lm.items, targets=lm.predicted.targets).maps
    assert torch.allclose(lm.predicted.maps, ref, atol=1e-6*ref.abs().max().item())

def test_multi_label_refused(weak):
    dblock = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_y=lambda f: [synthetic_label(f)], item_tfms=Resize(64))
    dls = dblock.dataloaders(weak.dls.valid_ds.items[:16], bs=8, num_workers=0)
    learn = Learner(dls, tiny_net(dls.c), loss_func=BCEWithLogitsLossFlat())
    it = ClassificationInterpretation.from_learner(learn)
    with pytest.raises(InputError, match='single-label'): it.loss_maps([0])

def test_bad_arguments(interp):
    with pytest.raises(InputError, match='k is a number'): interp.plot_top_losses_maps(0)
    with pytest.raises(InputError, match='Unknown method'): interp.plot_top_losses_maps(2, method='nope')
    with pytest.raises(InputError, match='No images'): interp.loss_maps([])

# ---- the recorder

@pytest.fixture(scope='module')
def files(tmp_path_factory): return make_synthetic(tmp_path_factory.mktemp('rec'), n=64, seed=0)

def make_learner(files, seed=0):
    "A seeded learner whose training draws from python's RNG (random flips in the main process) and torch's (dropout)"
    set_seed(seed, reproducible=True)   # on CUDA, deterministic cuDNN: two runs must be comparable bit for bit
    dls = ImageDataLoaders.from_name_func(files[0].parent, files, synthetic_label, valid_pct=0.25, seed=0, bs=16,
                                          item_tfms=FlipItem(0.5), num_workers=0)
    m = simple_cam_net(2, 16)
    m[1] = nn.Sequential(m[1][0], m[1][1], nn.Dropout(0.3), m[1][2])
    return Learner(dls, m, metrics=accuracy)

def train(files, cbs=None, how='fit', amp=None):
    learn = make_learner(files)
    if amp: learn = getattr(learn, amp)()
    with learn.no_bar(), learn.no_logging():
        if how=='fit': learn.fit(2, 1e-2, cbs=cbs)
        else: learn.fine_tune(1, 1e-2, freeze_epochs=1, cbs=cbs)
    return learn

def same_weights(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)

def _noisy(p):
    "CAM, after drawing from every global random generator"
    random.random(); np.random.rand(); torch.rand(3); torch.rand(3, device=p.x.device)
    return methods['cam'].rule(p)
noisy_cam = Method('noisy_cam', 'CAM', _noisy, grad=False)

class Draw(Callback):
    "Draws one number from python's or torch's generators (CPU, and the model's device) after each epoch"
    def __init__(self, which): self.which = which
    def after_epoch(self):
        if self.which=='python': random.random()
        else: torch.rand(1); torch.rand(1, device=model_param(self.model).device)

@pytest.mark.parametrize('which', ['python', 'torch'])
def test_weights_depend_on_the_rng(files, which):
    "The weight comparison below can fail: one random draw per epoch changes the trained weights"
    assert not same_weights(train(files), train(files, [Draw(which)]))

@pytest.mark.parametrize('how', ['fit', 'fine_tune'])
def test_recorder_leaves_training_unchanged(files, how):
    "A seeded fit/fine_tune ends with the same weights and buffers with or without the recorder, even with a method that draws random numbers"
    ref = train(files, how=how)
    rec = MapsRecorder(files[-5:], method=noisy_cam)
    learn = train(files, [rec], how=how)
    assert same_weights(ref, learn)
    assert [p.requires_grad for p in learn.model.parameters()] == [p.requires_grad for p in ref.model.parameters()]
    assert hooks_left(learn.model) == 0
    if how=='fit': assert rec.labels == ['before', 'epoch 1', 'epoch 2']
    else: assert rec.labels == ['before', 'fit 1 epoch 1', 'fit 2 epoch 1']
    assert rec.maps.shape == (3, 5, 8, 8) and rec.maps.isfinite().all()
    assert rec.target_probs.shape == (3, 5)
    last = learn.cam(files[-5:], targets=[synthetic_label(f) for f in files[-5:]]).maps.cpu()
    assert torch.allclose(rec.maps[-1], last, atol=1e-6*last.abs().max().item())

@pytest.mark.parametrize('method', ['cam', 'gradcam'])
def test_one_forward_per_record(files, method):
    "Each record is one forward pass of the probe batch (5 images, a size no training or validation batch has)"
    counts = {}
    def count(m, i): counts[len(i[0])] = counts.get(len(i[0]), 0) + 1
    sizes = []
    for cbs in (None, [MapsRecorder(files[-5:], method=method)]):
        learn = make_learner(files)
        h = learn.model.register_forward_pre_hook(count)
        counts.clear()
        with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-2, cbs=cbs)
        h.remove()
        sizes.append(dict(counts))
    rec = cbs[0]
    assert sizes[1].pop(5) == len(rec.records) == 3 and sizes[1] == sizes[0]

@pytest.mark.parametrize('amp', ['to_fp16', 'to_bf16'])
def test_recorder_mixed_precision(files, amp):
    "Under fastai's mixed precision the recorder explains under autocast, every 2 batches here, and leaves the weights as they were"
    rec = MapsRecorder(files[-4:], method='gradcam', every=2)
    learn = train(files, [rec], amp=amp)
    assert same_weights(learn, train(files, amp=amp))
    assert rec.labels == ['before', 'batch 2', 'batch 4', 'batch 6']   # 48 training images, batches of 16, 2 epochs
    assert rec.maps.dtype == torch.float32 and rec.maps.isfinite().all()

def test_targets(files):
    "targets: the labels (default), the classes predicted at the first record ('first'), or given"
    rec = MapsRecorder(files[-4:], targets='first')
    train(files, [rec])
    first = rec.records[0].probs.argmax(1)
    assert all(torch.equal(e.targets, first) for e in rec.records)
    rec = MapsRecorder(files[-4:], targets='blue')
    train(files, [rec])
    assert all(e.labels == ['blue']*4 for e in rec.records)
    ims = [np.array(Image.open(f)) for f in files[-2:]]
    with pytest.raises(InputError, match="targets='first'"): train(files, [MapsRecorder(ims)])
    rec = MapsRecorder(ims, targets=[0, 1])
    train(files, [rec])
    assert rec.records[-1].targets.tolist() == [0, 1]

def test_validation_and_lr_find_record_nothing(files):
    "validate() and get_preds() send fit and epoch events, lr_find is a fit: none of them is recorded"
    rec = MapsRecorder(files[-4:])
    learn = make_learner(files)
    learn.add_cb(rec)
    with learn.no_bar(), learn.no_logging():
        learn.validate(); learn.get_preds()
        assert rec.records == []
        learn.lr_find(num_it=4, show_plot=False)
        assert rec.records == []
        learn.fit(1, 1e-2)
        learn.validate()
    assert rec.labels == ['before', 'epoch 1']

def test_show_and_save(files, tmp_path, monkeypatch):
    rec = MapsRecorder(files[-3:])
    train(files, [rec])
    fig = rec.show()
    assert len(fig.axes) == 3*3
    assert [ax.texts[0].get_text() for ax in fig.axes[::3]] == rec.labels
    assert [ax.get_title() for ax in fig.axes[-3:]] == [prob_title(l, p) for l,p in zip(rec.records[-1].labels, rec.records[-1].target_probs)]
    gif = rec.save(tmp_path/'maps.gif')
    with Image.open(gif) as im: assert im.n_frames == 3
    with pytest.raises(InputError, match='.gif or .mp4'): rec.save(tmp_path/'maps.avi')
    monkeypatch.setattr(animation.writers, 'is_available', lambda name: False)
    with pytest.raises(FastcamError, match='needs ffmpeg'): rec.save(tmp_path/'maps.mp4')
    with pytest.raises(InputError, match='Nothing recorded'): MapsRecorder(files[:2]).show()
    with pytest.raises(InputError, match="every is"): MapsRecorder(files[:2], every=0)
