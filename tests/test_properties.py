"""Property-based: whatever image a user passes (shape, dtype, value range, PIL mode, size from 1 to 2000 px, encoded or not),
fastcam gives finite maps of the right shape or raises a FastcamError: never a torch, PIL or pathlib traceback, never NaN."""
import io
import numpy as np, pytest, torch
from PIL import Image
from hypothesis import given, settings, strategies as st, HealthCheck
from fastcam.all import *
from fastcam.methods import methods

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
def test_any_image_gives_maps_or_a_fastcam_error(synth, item, convert, method):
    try:
        opts = methods[method].quick_options(to_batch([item], synth.dls, convert=convert).x)   # e.g. occlusion's patch follows the image
        e = getattr(synth, method)([item], convert=convert, **opts)
    except FastcamError: return
    # the synthetic learner's DataLoaders do not resize: the maps follow the image's own size (stride 8 for the body's maps)
    H,W = e.x.shape[-2:]
    assert e.maps.isfinite().all() and e.images().shape == (1,3,H,W)
    at_input = e.layer=='input' or methods[method].draw!='overlay'   # input-gradient methods and occlusion map pixels
    assert e.maps.shape == ((1,H,W) if at_input else (1,-(-H//8),-(-W//8)))

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(0, 3), c=st.integers(1, 4), h=st.integers(1, 80), dtype=st.sampled_from([torch.float32, torch.float64, torch.uint8, torch.int64]))
def test_any_batch_tensor_gives_maps_or_a_fastcam_error(synth, n, c, h, dtype):
    "A 4-d tensor goes to the model as a batch: a shape or dtype the model cannot take is a FastcamError, not a torch traceback"
    x = (torch.rand(n, c, h, h)*255).to(dtype)
    try: e = synth.gradcam(x)
    except FastcamError: return
    assert e.maps.isfinite().all() and len(e.maps) == n
