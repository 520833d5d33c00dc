"One pipeline, safe on users' own learners: each finding of issue 9 gets the behaviour a user would expect."
import io, pickle, threading
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
import numpy as np, pytest, torch
from torch import nn
from PIL import Image
from fastai.vision.all import (Learner, BCEWithLogitsLossFlat, MSELossFlat, DataBlock, ImageBlock, MultiCategoryBlock,
                               RegressionBlock, Resize, create_head)
from fastcam.all import *
from fastcam.testing import *
from fastcam.methods import methods
from fastcam.core import model_param

ALL = list(methods)   # every registered method, with the options of a quick run

@pytest.fixture
def files(synth): return list(synth.dls.valid_ds.items[:6])

def run(learn, name, items, **kw):
    x = to_batch(items, learn.dls).x
    if not methods[name].supports(learn.model, x): pytest.skip(methods[name].why_not(learn.model, x))
    return getattr(learn, name)(items, **{**methods[name].quick_options(x), **kw})

# (1) two threads on one learner
@pytest.mark.parametrize('name', ['cam', 'gradcam', 'guided_backprop', 'occlusion'])
def test_threads_take_turns(synth, files, name):
    "Concurrent calls give the serial maps and leave mode, requires_grad and BatchNorm statistics untouched"
    m = synth.model
    serial = run(synth, name, files).maps
    m.train()
    before = state_of(m)
    try:
        with ThreadPoolExecutor(4) as ex: outs = list(ex.map(lambda _: run(synth, name, files).maps, range(16)))
        same = torch.equal if serial.device.type=='cpu' else (lambda a,b: torch.allclose(a, b, rtol=1e-5, atol=1e-7))
        assert all(same(o, serial) for o in outs)   # on CUDA, cuDNN's backward may round differently from run to run
        assert_same_state(state_of(m), before)
        assert hooks_left(m) == 0
    finally: m.eval()

def assert_same_state(a, b):
    assert a[0] == b[0] and a[1] == b[1]
    assert all(torch.equal(x, y) for x,y in zip(a[2], b[2]))

def test_training_after_concurrent_gradcam(files):
    "Parameters keep requires_grad=True after concurrent Grad-CAM calls, so fit still works"
    learn = synthetic_trained(n=64, epochs=1)
    with ThreadPoolExecutor(4) as ex: list(ex.map(lambda _: learn.gradcam(learn.dls.valid_ds.items[:4]), range(12)))
    assert all(p.requires_grad for p in learn.model.parameters())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)

def test_foreign_forward_does_not_corrupt_capture(synth, files):
    "A forward pass of another thread outside fastcam's lock is not recorded by fastcam's hooks"
    x = to_batch(files, synth.dls).x
    stop = threading.Event()
    def predict():
        while not stop.is_set():
            with torch.no_grad(): synth.model(x)
    t = threading.Thread(target=predict); t.start()
    try: maps = [synth.cam(files).maps for _ in range(10)]
    finally: stop.set(); t.join()
    assert all(torch.equal(m, maps[0]) for m in maps)

# (2) float image tensors outside [0, 1]
@pytest.mark.parametrize('scale,msg', [(255., 'looks like 0-255'), (-1., 'looks normalised')])
def test_out_of_range_float_images_refused(synth, scale, msg):
    im = torch.rand(3, 64, 64)*scale
    with pytest.raises(InputError, match=msg): synth.cam([im])
    with pytest.raises(InputError, match=msg): synth.cam([im.permute(1,2,0).numpy()])

# (3) multi-label learners
def test_multi_label_probabilities_follow_the_loss(synth, files):
    ml = Learner(synth.dls, deepcopy(synth.model), loss_func=BCEWithLogitsLossFlat())
    for name in ('cam', 'gradcam'):
        e = getattr(ml, name)(files)
        with torch.no_grad(): logits = ml.model.eval()(e.x)
        assert torch.allclose(e.probs, torch.sigmoid(logits), atol=1e-6)
        assert e.act == 'sigmoid'

def test_multi_category_block(tmp_path, synth):
    "A real fastai multi-label DataBlock: titles use each label's own sigmoid probability"
    files = list(synth.dls.train_ds.items[:16])
    dls = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_y=lambda f: [synthetic_label(f)], item_tfms=Resize(32)).dataloaders(files, bs=8)
    learn = Learner(dls, simple_cam_net(dls.c, 16), loss_func=BCEWithLogitsLossFlat())
    e = learn.cam(files[:4])
    preds,_ = learn.get_preds(dl=dls.test_dl(files[:4]))
    assert torch.allclose(e.probs, preds, atol=1e-5)

# (4) occlusion parameters
@pytest.mark.parametrize('kw,msg', [(dict(patch=8, stride=16), 'no patch covers'), (dict(patch=0), 'at least 1'), (dict(stride=-1), 'at least 1'),
                                    (dict(stride=0), 'at least 1'), (dict(patch=1.5), 'patch is a whole number of pixels'), (dict(bs=0), 'at least 1')])
def test_occlusion_parameters(synth, files, kw, msg):
    with pytest.raises(InputError, match=msg): synth.occlusion(files[:1], progress=False, **kw)

@pytest.mark.parametrize('patch,stride', [(8,8), (8,3), (24,24), (100,7)])
def test_occlusion_covers_every_pixel(synth, files, patch, stride):
    assert synth.occlusion(files[:2], patch=patch, stride=stride, progress=False).maps.isfinite().all()

# (5) NaN or inf
@pytest.mark.parametrize('name', ALL)
def test_nan_input_named(synth, files, name):
    "The error names the image, and comes after the model's state is back (modes, flags, buffers, no hooks left)"
    x = to_batch(files, synth.dls).x.clone(); x[2,0,5,5] = float('nan')
    m = synth.model
    m.train()
    before = state_of(m)
    try:
        with pytest.raises(NotFiniteError, match="image 2's input contains NaN"): run(synth, name, x)
        assert_same_state(state_of(m), before)
        assert hooks_left(m) == 0
    finally: m.eval()

def test_nan_weights_and_cam_selfcheck(synth, files):
    bad = deepcopy(synth)
    with torch.no_grad(): bad.model[1][2].weight[0,0] = float('inf')
    for name in ('cam', 'gradcam'):
        with pytest.raises(NotFiniteError, match="weights contain NaN or infinite"): getattr(bad, name)(files)

def test_metrics_refuse_nan_maps():
    m = torch.rand(2,8,8); m[1,0,0] = float('nan')
    with pytest.raises(NotFiniteError): pointing_game(m, torch.ones(2,8,8, dtype=torch.bool))
    with pytest.raises(NotFiniteError): map_boxes(m)

# (6) numpy arrays, nested lists, bytes, single-item functions
def test_inputs_like_fastai(synth, files):
    ref = synth.cam(files[:1]).maps
    a = np.array(Image.open(files[0]))
    for item in (a, a/255., files[0].read_bytes(), str(files[0]), Image.open(files[0]), torch.tensor(a).permute(2,0,1)):
        assert torch.allclose(synth.cam([item]).maps, ref, atol=1e-6)
    assert torch.allclose(synth.cam(a).maps, ref, atol=1e-6)
    with pytest.raises(InputError, match='nested list'): synth.cam([[files[0]]])
    assert len(synth.cam_panel([files[0]]).axes) == 2
    with pytest.raises(InputError, match='cam_panel draws one image'): synth.cam_panel(files[:2])
    with pytest.raises(InputError, match='No images given'): synth.cam(None)
    with pytest.raises(InputError, match='No images given'): synth.gradcam([])
    assert len(synth.cam(f for f in files[:3])) == 3

# (7) only integer or name targets
@pytest.mark.parametrize('t', [0.7, True, 1.0, torch.tensor([0.]), np.float32(1), np.bool_(True), np.array([True]), torch.tensor(True), [False]])
def test_float_and_bool_targets_refused(synth, files, t):
    with pytest.raises(TargetError, match='Targets are class indices'): synth.gradcam(files[:1], targets=t)
    if isinstance(t, (bool, np.bool_, np.ndarray, list)) or (isinstance(t, torch.Tensor) and t.dtype==torch.bool):   # booleans: Python's message
        with pytest.raises(TargetError) as e: synth.gradcam(files[:1], targets=t)
        with pytest.raises(TargetError) as py: synth.gradcam(files[:1], targets=True)
        assert str(e.value) == str(py.value)

def test_integer_like_targets(synth, files):
    assert synth.cam(files[:2], targets=np.int64(1)).targets.tolist() == [1,1]
    assert synth.cam(files[:2], targets=np.array(1)).targets.tolist() == [1,1]
    assert synth.cam(files[:2], targets=torch.tensor(0)).targets.tolist() == [0,0]
    assert synth.cam(files[:2], targets=torch.tensor([0,1])).targets.tolist() == [0,1]

# (8) the Grad-CAM family on a layer without positions
@pytest.mark.parametrize('layer', ['1.2', '1.1', '1', ''])
@pytest.mark.parametrize('name', ['gradcam', 'gradcam_pp', 'layercam', 'guided_gradcam'])
def test_non_spatial_layer_refused(synth, files, name, layer):
    with pytest.raises(InputError, match=rf"Layer '{layer}' .* not feature maps"): getattr(synth, name)(files[:2], layer=layer)

# (9) an Explanation round-trips
@pytest.mark.parametrize('name', ALL)
def test_explanation_pickles(synth, files, name):
    e = run(synth, name, files[:2])
    f = io.BytesIO(); torch.save(e, f); f.seek(0)
    for back in (torch.load(f, weights_only=False), pickle.loads(pickle.dumps(e))):
        assert torch.equal(back.maps, e.maps) and back.labels == e.labels
        assert torch.equal(back.images(), e.images())

# (10) regression and no-vocab learners
def test_regression_learner(synth, files):
    "A regression learner (no vocab): CAM with index targets, the Grad-CAM family explains the predicted value"
    dls = DataBlock(blocks=(ImageBlock, RegressionBlock), get_y=lambda f: float(synthetic_box(f)[0]), item_tfms=Resize(64)).dataloaders(files*4, bs=8)
    learn = Learner(dls, simple_cam_net(1, 16), loss_func=MSELossFlat())
    e = learn.cam(files[:3])
    with torch.no_grad(): out = learn.model.eval()(e.x)
    assert e.act == 'identity' and torch.allclose(e.probs[:,0], out[:,0], atol=1e-5)
    assert torch.allclose(e.class_maps.mean((2,3)), out, atol=1e-4)
    g = learn.gradcam(files[:3])
    assert g.maps.shape == (3,8,8) and g.labels == [0,0,0]
    with pytest.raises(TargetError, match='out of range'): learn.gradcam(files[:1], targets=1)
    two = Learner(dls, simple_cam_net(2, 16), loss_func=MSELossFlat())
    with pytest.raises(TargetError, match='has 2 outputs: pass targets='): two.gradcam(files[:1])
    assert two.gradcam(files[:1], targets=1).targets.tolist() == [1]

def test_single_logit_binary_negative_class(synth, files):
    body = deepcopy(synth.model[0])
    one = nn.Sequential(body, gap_head(32, 1).to(model_param(body).device))
    learn = Learner(synth.dls, one, loss_func=BCEWithLogitsLossFlat())
    pos, neg = learn.gradcam(files[:3], targets='red'), learn.gradcam(files[:3], targets='blue')
    assert (pos.labels, neg.labels) == (['red']*3, ['blue']*3)   # vocab ['blue', 'red']: 'red' is the logit u, 'blue' is -u
    c = learn.cam(files[:3], targets=0)
    assert torch.allclose(c.class_maps[:,0], -c.class_maps[:,1])
    assert torch.allclose(neg.probs.sum(1), torch.ones_like(neg.probs[:,0]))
    assert not torch.allclose(pos.maps, neg.maps)

# minor findings
def test_inference_mode(synth, files):
    with torch.inference_mode():
        for name in ('cam', 'gradcam', 'saliency'): assert run(synth, name, files[:2]).maps.isfinite().all()

def test_synthetic_trained_cleans_up():
    import gc
    learn = synthetic_trained(n=16, epochs=1)
    folder = learn.dls.path
    assert folder.exists()
    del learn; gc.collect()
    assert not folder.exists()

def test_errors_are_fastcam_errors(synth, files, tmp_path):
    "Each bad call raises a FastcamError (with its built-in base), never a torch/PIL/pathlib error"
    (tmp_path/'bad.jpg').write_bytes(b'nope')
    bad = [lambda: synth.cam([tmp_path/'missing.jpg']), lambda: synth.cam([tmp_path/'bad.jpg']), lambda: synth.cam([object()]),
           lambda: synth.explain(files, 'nope'), lambda: synth.gradcam(files, layer=3), lambda: synth.cam(torch.zeros(0,3,8,8)),
           lambda: synth.cam(files, targets='violet'), lambda: deletion_insertion(synth.model, to_batch(files, synth.dls).x, torch.rand(6,8,8), [0]*6, steps=1),
           lambda: top_patches(synth.model, synth.dls.valid, '0.2', 0, k=0, progress=False),
           lambda: localise_report(synth, {'CAM': 'cam'}, synth.dls.valid, progress=False)]
    for f in bad:
        with pytest.raises(FastcamError): f()

# dependencies: fastcore before 1.9.2 set the module-level name of a function @patch'd onto a class to None, so with the
# fastai 2.8.0-2.8.4 that pyproject.toml once allowed, `fastcam.methods.explain` would have been None
def _function_and_method_names():
    "(module, name) for each module-level function of fastcam that shares its name with a function @patch'd in its module"
    import ast, importlib, inspect, pkgutil, fastcam
    out = []
    for m in pkgutil.iter_modules(fastcam.__path__):
        if m.name.startswith('_'): continue
        mod = importlib.import_module(f'fastcam.{m.name}')
        defs = [n for n in ast.parse(inspect.getsource(mod)).body if isinstance(n, ast.FunctionDef)]
        patched = lambda n: any(ast.unparse(d).startswith(('patch', 'patch_to')) for d in n.decorator_list)
        plain, methods_ = {n.name for n in defs if not patched(n)}, {n.name for n in defs if patched(n)}
        out += [(mod, name) for name in sorted(plain & methods_)]
    return out

def test_functions_beside_learner_methods_stay_functions():
    "`explain` and the four `inside` functions are functions in their modules and in fastcam.all, and Learner methods too"
    import types, fastcam.all
    pairs = _function_and_method_names()
    assert {(m.__name__, n) for m,n in pairs} >= {('fastcam.methods', 'explain'), *[('fastcam.inside', n) for n in
            ('class_images', 'embeddings', 'show_neighbours', 'top_patches')]}
    for mod, name in pairs:
        f, meth = getattr(mod, name), getattr(Learner, name)
        assert isinstance(f, types.FunctionType), f"{mod.__name__}.{name} is {f!r}, not a function"
        assert getattr(fastcam.all, name) is f, f"fastcam.all.{name} is not {mod.__name__}.{name}"
        assert isinstance(meth, types.FunctionType) and meth is not f, f"Learner.{name} is {meth!r}"
