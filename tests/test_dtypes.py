"""Every public function follows the model's device and dtype. On the CPU, float64 and bfloat16 copies of a learner catch what
CUDA or mixed precision would: a tensor made on a default device or dtype breaks there. Tests marked cuda run where a GPU is."""
from copy import deepcopy
import numpy as np, pytest, torch
from fastai.vision.all import Learner, set_seed
from fastcam.all import *
from fastcam.testing import *
from fastcam.methods import methods

METHODS = list(methods)   # every registered method, with the options of a quick run (`Method.quick_options`)
DTYPES = [torch.float64, torch.bfloat16]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

def corr(a, b): return np.corrcoef(a.detach().double().cpu().flatten().numpy(), b.detach().double().cpu().flatten().numpy())[0,1]

@pytest.fixture(scope='module')
def copies(synth): return {dt: as_dtype(synth, dt) for dt in DTYPES}

@pytest.fixture
def files(synth): return list(synth.dls.valid_ds.items[:4])

def quick(learn, name, files)->dict:
    "The quick options of method `name` for `files`, skipping the test where `learn`'s model is not one the method explains"
    x = to_batch(files, learn.dls).x
    why = methods[name].why_not(learn.model, x)
    if why: pytest.skip(why)
    return methods[name].quick_options(x)

@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('name', METHODS)
def test_methods_follow_dtype(synth, copies, files, name, dtype):
    kw = quick(synth, name, files)
    ref = getattr(synth, name)(files, **kw)
    got = getattr(copies[dtype], name)(files, targets=ref.targets, **kw)
    assert got.maps.dtype == (torch.float64 if dtype==torch.float64 else torch.float32)
    assert got.x.dtype == dtype and got.maps.isfinite().all()
    if dtype==torch.float64:
        assert (got.maps-ref.maps).abs().max() <= 1e-4*ref.maps.abs().max()
        assert torch.allclose(got.probs.float(), ref.probs, atol=1e-5)

@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_inside_follows_dtype(synth, copies, files, dtype):
    low, m = copies[dtype], copies[dtype].model
    x = to_batch(files, synth.dls).x
    a32, a = activations(synth.model, x, '0.2'), activations(m, x, '0.2')
    assert a.dtype == dtype and a.isfinite().all()
    rf = receptive_field(m, '0.2', x)
    assert rf.size == receptive_field(synth.model, '0.2', x).size and receptive_field(m, '0.2', (64,64)).shape == rf.shape
    p32, p = top_patches(synth.model, synth.dls.valid, '0.2', [0, 3], k=3, progress=False), top_patches(m, synth.dls.valid, '0.2', [0, 3], k=3, progress=False)
    assert p.values.isfinite().all()
    e32, e = synth.embeddings(progress=False), low.embeddings(progress=False)
    assert e.feats.isfinite().all()
    d,i = neighbours(e, [0, 1], k=3)
    assert i[:,0].tolist() == [0, 1] and (d[:,0] == 0).all()
    ci = low.class_images(steps=3, size=32, progress=False)
    assert ci.images.isfinite().all() and ci.final.isfinite().all()
    if dtype==torch.float64:
        assert (a.float()-a32).abs().max() <= 1e-4*a32.abs().max()
        assert torch.equal(p.index, p32.index) and torch.allclose(p.values.float(), p32.values, rtol=1e-4)
        assert (e.feats.float()-e32.feats).abs().max() <= 1e-4*e32.feats.abs().max()

@pytest.mark.parametrize('dtype', DTYPES, ids=str)
def test_localise_follows_dtype(synth, copies, files, dtype):
    low = copies[dtype]
    x = to_batch(files, synth.dls).x
    e = low.gradcam(x)
    d,i = deletion_insertion(low.model, x, e, e.targets, steps=4)
    d32,i32 = deletion_insertion(synth.model, x, e, e.targets, steps=4)
    assert d.isfinite().all() and i.isfinite().all()
    if dtype==torch.float64: assert torch.allclose(d.float(), d32, atol=1e-5) and torch.allclose(i.float(), i32, atol=1e-5)
    dl = mask_dl(synth.dls, synth.dls.valid_ds.items[:8], lambda f: box_mask(f), synthetic_label, bs=4)
    rep = localise_report(low, {'CAM': 'cam', 'Grad-CAM': 'gradcam'}, dl, curves_every=4, steps=4, progress=False)
    assert np.isfinite(rep.table.drop(columns='ms/img').values).all()

def box_mask(f, size=64):
    from fastai.vision.all import PILMask
    a = np.zeros((size,size), np.uint8); x0,y0,x1,y1 = synthetic_box(f); a[y0:y1, x0:x1] = 1
    return PILMask.create(a)

@pytest.mark.parametrize('amp', ['to_fp16', 'to_bf16'])
@pytest.mark.parametrize('name', METHODS)
def test_mixed_precision(synth, files, name, amp):
    "A learner under fastai's mixed precision explains under autocast; its maps correlate >= 0.99 with float32 maps of the same weights"
    mp = getattr(Learner(synth.dls, deepcopy(synth.model)), amp)()
    kw = quick(synth, name, files)
    ref = getattr(synth, name)(files, **kw)
    got = getattr(mp, name)(files, targets=ref.targets, **kw)
    assert got.maps.dtype == torch.float32 and got.maps.isfinite().all()
    assert corr(got.maps, ref.maps) >= 0.99

@cuda
@pytest.mark.parametrize('model_on,dls_on', [('cpu', 'cuda'), ('cuda', 'cpu')])
def test_model_and_dls_on_different_devices(synth, files, model_on, dls_on):
    learn = Learner(deepcopy(synth.dls), deepcopy(synth.model))
    learn.dls.to(torch.device(dls_on)); learn.model.to(model_on)
    for name in METHODS:
        if not methods[name].supports(learn.model, to_batch(files, learn.dls).x): continue
        e = getattr(learn, name)(files, **methods[name].quick_options(to_batch(files, learn.dls).x))
        assert e.maps.device.type == model_on and e.maps.isfinite().all()
        assert e.images().device.type == 'cpu'

@cuda
def test_cuda_matches_cpu(synth, files):
    cpu, gpu = Learner(synth.dls, deepcopy(synth.model).cpu()), Learner(synth.dls, deepcopy(synth.model).cuda())
    for name in METHODS:
        if name=='smoothgrad': continue   # its noise comes from the device's own generator: CPU and CUDA draw different noise
        x = to_batch(files, cpu.dls).x
        if not methods[name].supports(cpu.model, x): continue
        kw = methods[name].quick_options(x)
        ref, got = getattr(cpu, name)(files, **kw), getattr(gpu, name)(files, **kw)
        assert got.maps.device.type == 'cuda'
        assert (got.maps.cpu()-ref.maps.cpu()).abs().max() <= 1e-3*ref.maps.abs().max().cpu()
