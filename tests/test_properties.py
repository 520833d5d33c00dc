"""Property-based: whatever image a user passes (shape, dtype, value range, PIL mode, size from 1 to 2000 px, encoded or not),
and whatever targets, indices, ranks, sizes, counts and options (integer-likes, floats, booleans, names, out of range) the public
functions, methods and views are given, fastcam gives finite maps of the right shape or raises a FastcamError: never a torch,
PIL or pathlib traceback, never NaN, never a silent change of shape."""
import io
import numpy as np, pytest, torch
from PIL import Image
from hypothesis import given, settings, strategies as st, HealthCheck
from fastcam.all import *
from fastcam.methods import methods, explain
from fastcam.inside import channel_order
from fastcam.testing import synthetic_trained

names = ['blue', 'red']   # the synthetic learner's vocab, sorted

@pytest.fixture(scope='module')
def learn(tmp_path_factory):
    "A small synthetic learner (64 images of 64 px, two epochs; stride 8, no resize): what the properties run on"
    l = synthetic_trained(tmp_path_factory.mktemp('props'), n=64, epochs=2)
    assert list(l.dls.vocab) == names
    return l

sizes = st.one_of(st.integers(1, 64), st.integers(65, 2000))
small = st.integers(1, 96)

@st.composite
def arrays(draw):
    "numpy images: (h, w), (h, w, c) with c in 1..5, or channels first; uint8, float (any range, NaN), int, bool"
    h,w = draw(sizes), draw(small)
    shape = draw(st.sampled_from([(h,w), (h,w,3), (h,w,4), (h,w,1), (3,h,w), (h,w,5)]))
    kind = draw(st.sampled_from(['uint8', 'float01', 'float', 'int', 'bool', 'nan']))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind=='uint8': return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind=='float01': return rng.random(shape, dtype=np.float32)
    if kind=='float':
        lo = draw(st.floats(-300, 300)); return (lo + rng.random(shape)*draw(st.floats(0, 300))).astype(draw(st.sampled_from([np.float32, np.float64])))
    if kind=='int': return rng.integers(draw(st.integers(-300, 0)), draw(st.integers(1, 300)), shape).astype(np.int16)
    if kind=='bool': return rng.random(shape) > 0.5
    a = rng.random(shape).astype(np.float32); a.flat[0] = np.nan; return a

@st.composite
def tensors(draw):
    a = draw(arrays())
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.permute(2,0,1) if t.dim()==3 and draw(st.booleans()) else t

@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(['RGB', 'L', 'RGBA', 'LA', 'P', 'I', 'F', '1', 'CMYK', 'I;16']))
    im = Image.new(mode, (draw(sizes), draw(small)))
    if mode=='P' and draw(st.booleans()): im.info['transparency'] = 0
    return im

@st.composite
def encoded(draw):
    im = draw(pil_images())
    fmt = draw(st.sampled_from(['PNG', 'GIF', 'TIFF', 'BMP', 'WEBP']))
    b = io.BytesIO()
    try: im.save(b, fmt)
    except (OSError, ValueError, KeyError): return b'not an image'   # a mode that format cannot store
    data = b.getvalue()
    return data[:draw(st.integers(1, len(data)))] if draw(st.booleans()) else data   # truncated sometimes

items = st.one_of(arrays(), tensors(), pil_images(), encoded(), st.binary(max_size=64))

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(item=items, convert=st.booleans(), method=st.sampled_from(list(methods)))
def test_any_image_gives_maps_or_a_fastcam_error(learn, item, convert, method):
    try:
        opts = methods[method].quick_options(to_batch([item], learn.dls, convert=convert).x)   # e.g. occlusion's patch follows the image
        e = getattr(learn, method)([item], convert=convert, **opts)
    except FastcamError: return
    # the synthetic learner's DataLoaders do not resize: the maps follow the image's own size (stride 8 for the body's maps)
    H,W = e.x.shape[-2:]
    assert e.maps.isfinite().all() and e.images().shape == (1,3,H,W)
    at_input = e.layer=='input' or methods[method].draw!='overlay'   # input-gradient methods and occlusion map pixels
    assert e.maps.shape == ((1,H,W) if at_input else (1,-(-H//8),-(-W//8)))

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(0, 3), c=st.integers(1, 4), h=st.integers(1, 80), dtype=st.sampled_from([torch.float32, torch.float64, torch.uint8, torch.int64]))
def test_any_batch_tensor_gives_maps_or_a_fastcam_error(learn, n, c, h, dtype):
    "A 4-d tensor goes to the model as a batch: a shape or dtype the model cannot take is a FastcamError, not a torch traceback"
    x = (torch.rand(n, c, h, h)*255).to(dtype)
    try: e = learn.gradcam(x)
    except FastcamError: return
    assert e.maps.isfinite().all() and len(e.maps) == n


# ---- arguments: targets, indices, ranks, sizes, counts and options, over the public API ----
# Every call gets a correct result (the right shape, finite) or a FastcamError: never another exception, NaN or a changed shape.
import inspect, math, warnings
import matplotlib.pyplot as plt
from fastai.interpret import ClassificationInterpretation

def as_kind(v:int, kind:str):
    "The integer `v` as a Python int, numpy integer, 0-d array or 0-d tensor"
    return {'int': v, 'np': np.int64(v), 'np8': np.int16(v), 'arr': np.array(v), 'tensor': torch.tensor(v)}[kind]

kinds = st.sampled_from(['int', 'np', 'np8', 'arr', 'tensor'])
def integer_likes(lo, hi): return st.builds(as_kind, st.integers(lo, hi), kinds)
not_integers = st.one_of(st.floats(-5, 70), st.sampled_from([float('nan'), float('inf'), 2.0, np.float32(3), True, False, np.bool_(True), torch.tensor(True), torch.tensor(2.),
                                                                            np.array([2]), torch.tensor([1, 2]), '3', b'3', 1+0j, [2], (2,)]))
def counts(lo=-3, hi=70): return st.one_of(integer_likes(lo, hi), not_integers)

def int_value(v):
    "What `as_int` must return for `v` (None where it must refuse it)"
    if isinstance(v, (np.ndarray, torch.Tensor)):
        if v.ndim: return None
        v = v.item()
    if isinstance(v, (bool, np.bool_)): return None
    return int(v) if isinstance(v, (int, np.integer)) else None

some = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

@settings(max_examples=300, deadline=None)
@given(v=counts(), lo=st.sampled_from([None, 0, 1, 2]), none=st.booleans())
def test_as_int_takes_integer_likes_only(v, lo, none):
    want = int_value(v)
    try: got = as_int(v, 'k', lo, none=none)
    except InputError as e:
        assert str(e).startswith('k is ') and (want is None or (lo is not None and want < lo)); return
    assert type(got) is int and got == want and (lo is None or got >= lo)

@settings(max_examples=100, deadline=None)
@given(size=st.one_of(counts(-2, 9), st.tuples(counts(-2, 9), counts(-2, 9)), st.lists(integer_likes(1, 9), max_size=3)))
def test_as_size_is_a_pair_of_positive_ints(size):
    try: got = as_size(size)
    except InputError: return
    assert len(got) == 2 and all(type(s) is int and s >= 1 for s in got)

@pytest.fixture(scope='module')
def probe(learn):
    "Two validation images of the synthetic learner as a batch, and their files"
    files = list(learn.dls.valid_ds.items[:2])
    return files, to_batch(files, learn.dls).x

@pytest.fixture(scope='module')
def vit():
    "A one-block vision transformer for the methods that need attention (rollout), on the synthetic learner's 64 px images"
    timm = pytest.importorskip('timm')
    torch.manual_seed(0)
    return timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=2, img_size=64, depth=1).eval()

one_target = st.one_of(integer_likes(-2, 3), st.sampled_from(names + ['green', '']), not_integers)
targets = st.one_of(st.none(), one_target, st.lists(one_target, min_size=0, max_size=3),
                    st.builds(lambda a, k: a.astype(k), st.lists(st.integers(-1, 2), min_size=1, max_size=3).map(np.array),
                              st.sampled_from([np.int64, np.uint8, np.float32, np.bool_])),
                    st.lists(st.integers(-1, 2), min_size=1, max_size=3).map(torch.tensor))

def check_maps(e, n, at=None):
    "A correct explanation of `n` images: maps `(n, h, w)` (at `at` when given), finite, targets in range"
    assert e.maps.dim() == 3 and len(e.maps) == n and len(e.targets) == n and e.maps.isfinite().all()
    assert ((e.targets >= 0) & (e.targets < e.probs.shape[1])).all()
    if at is not None: assert tuple(e.maps.shape[-2:]) == at

def expected_targets(t, n, k=2):
    "The class indices `t` must resolve to for `n` images, or None where it must be refused"
    def one(o):
        if isinstance(o, str): return names.index(o) if o in names else None
        v = int_value(o)
        return v if v is not None and 0 <= v < k else None
    if t is None: return 'predicted'
    if isinstance(t, (np.ndarray, torch.Tensor)) and t.ndim:
        a = torch.as_tensor(t)
        ts = [None] if a.dtype == torch.bool or a.is_floating_point() else a.tolist()
    elif isinstance(t, (list, tuple)): ts = list(t)
    else: ts = [t]
    if len(ts) == 1: ts = ts * n
    if len(ts) != n: return None
    res = [one(o) for o in ts]
    return None if None in res else res

@some
@given(t=targets, method=st.sampled_from(['cam', 'gradcam', 'saliency']))
def test_targets_give_their_classes_or_a_fastcam_error(learn, probe, t, method):
    files, x = probe
    want = expected_targets(t, 2)
    try: e = getattr(learn, method)(files, targets=t)
    except FastcamError: assert want is None, f"{t!r} refused"; return
    assert want is not None, f"{t!r} accepted"
    check_maps(e, 2)
    if want != 'predicted': assert e.targets.tolist() == want

@some
@given(t=targets, steps=counts(-1, 9), bs=counts(-1, 9))
def test_deletion_insertion_targets_steps_bs(learn, probe, t, steps, bs):
    files, x = probe
    e = learn.gradcam(x)
    want, s, b = expected_targets(t, 2), int_value(steps), int_value(bs)
    try: d, i = deletion_insertion(learn.model, x, e, t, steps=steps, bs=bs)
    except FastcamError: assert want is None or s is None or s < 2 or b is None or b < 1; return
    assert want is not None and s >= 2 and b >= 1
    assert d.shape == i.shape == (2, s+1) and d.isfinite().all() and i.isfinite().all()

indices = st.one_of(integer_likes(-4, 4), st.slices(4), st.lists(st.integers(-5, 4), max_size=4),
                    st.lists(st.booleans(), min_size=2, max_size=4).map(torch.tensor),
                    st.lists(st.integers(-5, 4), max_size=4).map(np.array), not_integers)

@settings(max_examples=150, deadline=None)
@given(i=indices)
def test_explanation_indexing_keeps_the_batch_dimension(i):
    n = 3
    e = Explanation(torch.rand(n,4,4), torch.tensor([0,1,1]), torch.rand(n,2), torch.rand(n,3,8,8), vocab=['a','b'])
    try: got = e[i]
    except FastcamError: return
    a = np.asarray(i) if not isinstance(i, slice) and int_value(i) is None else None
    want = np.arange(n)[i if isinstance(i, slice) else [int_value(i)] if a is None else a.astype(int) if a.size == 0 else a]
    want = want.copy()   # a negative step's view has negative strides
    assert got.maps.shape == (len(want), 4, 4) and got.x.shape == (len(want), 3, 8, 8) and got.targets.tolist() == e.targets[want].tolist()
    assert len(got.labels) == len(want)

def rule_params(m):
    "The option names and annotations of a registered method's rule"
    return {k: p.annotation for k,p in list(inspect.signature(m.rule).parameters.items())[1:]}

def option_values(ann, name):
    "Values to try for an option: counts for integers, any floats for floats, valid and wrong strings, layer names"
    if name == 'layer': return st.sampled_from([None, '0', '0.1', '1', 'nope', 3])
    if ann in ('int', int): return counts(-2, 12) if name != 'seed' else counts(-3, 3)
    if ann in ('float', float): return st.one_of(st.floats(-2, 2), st.just(float('nan')), integer_likes(0, 1), st.just('x'))
    if ann in ('str', str): return st.sampled_from(['mean', 'max', 'min', 'nope', ''])
    if ann in ('bool', bool): return st.just(False)
    return st.one_of(st.floats(-1, 1), st.just(None))

@st.composite
def method_options(draw):
    "A registered method with some of its options drawn (the rest as a quick run has them)"
    name = draw(st.sampled_from(list(methods)))
    ps = rule_params(methods[name])
    chosen = draw(st.lists(st.sampled_from(sorted(ps)), max_size=2, unique=True)) if ps else []
    return name, {k: draw(option_values(ps[k], k)) for k in chosen}

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mo=method_options())
def test_every_method_option_gives_maps_or_a_fastcam_error(learn, probe, vit, mo):
    "Each registered method on a model it supports (the CNN, or the transformer where it needs attention), options drawn"
    name, opts = mo
    m = methods[name]
    files, x = probe
    model = learn.model if m.supports(learn.model, x) else vit
    assert m.supports(model, x), f"no test model for {name}: {m.why_not(model, x)}"
    kw = {**m.quick_options(x), 'progress': False, **opts} if 'progress' in rule_params(m) else {**m.quick_options(x), **opts}
    try: e = explain(model, x, name, **kw)
    except FastcamError: return
    check_maps(e, 2)
    for k,v in opts.items():   # an integer option the method took was an integer-like at least 1 (0 for a seed)
        if rule_params(m)[k] in ('int', int): assert int_value(v) is not None, f"{name} took {k}={v!r}"

@pytest.fixture(scope='module')
def store(learn):
    return learn.get_maps(list(learn.dls.valid_ds.items[:6]), method='cam', progress=False)

@pytest.fixture(scope='module')
def interp(learn):
    with learn.no_bar(): return ClassificationInterpretation.from_learner(learn)

@some
@given(nrows=st.one_of(st.none(), counts(-1, 4)), ncols=st.one_of(st.none(), counts(-1, 4)), i=counts(-4, 4))
def test_views_take_counts_and_indices(learn, probe, nrows, ncols, i):
    files, x = probe
    e = learn.cam(files)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for f in (lambda: show_maps(e, nrows=nrows, ncols=ncols), lambda: class_panel(e, i), lambda: compare_maps({'CAM': e}, i=i),
                  lambda: learn.cam_grid(files, 2 if nrows is None else nrows, 2 if ncols is None else ncols, figsize=(2,2))):
            try: fig = f()
            except FastcamError: continue
            finally: plt.close('all')
            assert fig is not None
    r, c, j = int_value(nrows) if nrows is not None else 1, int_value(ncols) if ncols is not None else 1, int_value(i)
    if j is not None and -2 <= j < 2: plt.close(class_panel(e, i))              # a valid index always draws
    if r is not None and c is not None and r >= 1 and c >= 1: plt.close(show_maps(e, nrows=nrows, ncols=ncols))

def ranks_of(k, n:int):
    "The ranks `plot_top_losses_maps(k)` must draw for `n` items (the first `k`, or the ranks listed), or None where it must refuse `k`"
    if isinstance(k, (list, tuple)) or (isinstance(k, (np.ndarray, torch.Tensor)) and k.ndim):
        rs = [int_value(o) for o in (k.flatten().tolist() if isinstance(k, (np.ndarray, torch.Tensor)) and not
                                     (k.dtype == torch.bool or torch.as_tensor(k).is_floating_point()) else k)]
        return rs if rs and all(r is not None and 0 <= r < n for r in rs) else None
    v = int_value(k)
    return list(range(min(v, n))) if v is not None and v >= 1 else None

@some
@given(k=st.one_of(counts(-1, 6), st.lists(integer_likes(-1, 20), max_size=3)), ncols=counts(-1, 6))
def test_top_losses_and_sheets_take_counts(interp, store, k, ncols):
    want = ranks_of(k, len(interp.losses))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try: fig = interp.plot_top_losses_maps(k)
        except FastcamError: assert want is None, f"{k!r} refused"
        else: assert want is not None and len(fig.axes) == 3*len(want), f"{k!r} drew {len(fig.axes)} panels"
        finally: plt.close('all')
        try: fig = store.show(3, ncols=ncols)
        except FastcamError: assert int_value(ncols) is None or int_value(ncols) < 1; return
        finally: plt.close('all')
        assert int_value(ncols) is not None and int_value(ncols) >= 1

@some
@given(n=st.one_of(st.none(), counts(-1, 40)), k=counts(-1, 10), q=st.one_of(integer_likes(-1, 8), st.lists(integer_likes(0, 7), min_size=1, max_size=3)))
def test_inside_counts(learn, probe, n, k, q):
    files, x = probe
    acts = activations(learn.model, x, '0')[0]
    try: idx = channel_order(acts, n)
    except FastcamError: assert n is not None and (int_value(n) is None or int_value(n) < 1)
    else: assert len(idx) == (acts.shape[0] if n is None else min(int_value(n), acts.shape[0]))
    emb = Embeddings(torch.rand(8, 5), torch.tensor([0,1]*4))
    try: d, i = neighbours(emb, q, k)
    except FastcamError: return
    assert d.isfinite().all() and d.shape == i.shape and d.shape[1] == min(int_value(k), 8)
