"CAM on synthetic images whose answer is known, the head surgery, and bad inputs."
import copy, tempfile
from pathlib import Path
import pytest, torch
from torch import nn
from PIL import Image
from fastai.vision.all import Learner, create_head, create_body, resnet18
from fastcam.all import *
from fastcam.methods import cam
from fastcam.testing import *


def test_map_peaks_on_object(synth):
    files = synth.dls.valid_ds.items[:32]
    e = synth.cam(files)
    assert all(points_at_object(e.maps, files))

def test_map_of_other_class_does_not_peak_on_object(synth):
    "The map of the wrong class is lowest, not highest, on the object"
    files = synth.dls.valid_ds.items[:16]
    e = synth.cam(files)
    other = synth.cam(files, targets=(1-e.targets).tolist())
    assert sum(points_at_object(other.maps, files)) <= 2

def test_batched_equals_per_image_and_mean_is_logits(synth):
    files = synth.dls.valid_ds.items[:8]
    e = synth.cam(files)
    with torch.no_grad(): logits = synth.model.eval()(e.x)
    assert (e.class_maps.mean((2,3)) - logits).abs().max() < 1e-4
    for i,f in enumerate(files): assert (synth.cam([f]).maps[0]-e.maps[i]).abs().max() < 1e-5

def test_surgery_keeps_body_weights(synth):
    std = Learner(synth.dls, nn.Sequential(copy.deepcopy(synth.model[0]), create_head(32, 2)))
    new = cam_learner(std)
    a, b = std.model[0].state_dict(), new.model[0].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert isinstance(new.model[1][0], nn.AdaptiveAvgPool2d) and new.model[1][2].bias is None
    assert new.model[1][2].weight.shape == (2, 32)

@pytest.mark.parametrize('arch,nf', [(resnet18, 512)])
def test_gap_head_fits_body(arch, nf):
    m = cam_model(create_body(arch(weights=None)), 3)
    assert m[1][2].weight.shape == (3, nf)

def test_default_head_refused_with_fix(synth):
    std = Learner(synth.dls, nn.Sequential(copy.deepcopy(synth.model[0]), create_head(32, 2)))
    with pytest.raises(ValueError, match=r'AdaptiveConcatPool2d.*cam_learner\(learn\).*Grad-CAM'): std.cam(synth.dls.valid_ds.items[:2])

def test_unknown_class_and_bad_targets(synth):
    files = synth.dls.valid_ds.items[:2]
    with pytest.raises(KeyError, match="'green' is not a class.*'blue', 'red'"): synth.cam(files, targets='green')
    with pytest.raises(IndexError, match='out of range'): synth.cam(files, targets=5)
    with pytest.raises(ValueError, match='3 targets for 2 images'): synth.cam(files, targets=[0,1,0])

@pytest.fixture
def bad_files(tmp_path, pets):
    Image.new('L', (32,32), 128).save(tmp_path/'gray.png')
    Image.new('RGBA', (32,32), (255,0,0,0)).save(tmp_path/'rgba.png')
    frames = [Image.new('RGB', (8,8), (200*i,0,0)).convert('P') for i in range(2)]
    frames[0].save(tmp_path/'anim.gif', save_all=True, append_images=frames[1:])
    (tmp_path/'corrupt.jpg').write_bytes(b'\xff\xd8\xff garbage')
    (tmp_path/'truncated.jpg').write_bytes((pets/'Abyssinian_1.jpg').read_bytes()[:1500])
    return tmp_path

@pytest.mark.parametrize('name,msg', [('gray.png', 'PIL mode L'), ('rgba.png', 'PIL mode RGBA'), ('anim.gif', 'with 2 frames'),
                                      ('corrupt.jpg', 'not a readable image'), ('truncated.jpg', 'not a readable image'),
                                      ('missing.jpg', 'No image file')])
def test_bad_images_refused(synth, bad_files, name, msg):
    with pytest.raises((ValueError, FileNotFoundError), match=msg): synth.cam([bad_files/name])

def test_convert_is_explicit(synth, bad_files):
    e = synth.cam([bad_files/'rgba.png', bad_files/'gray.png'], convert=True)
    assert e.images()[0,:,0,0].tolist() == [1.0, 1.0, 1.0]  # transparent pixels composited on white, not their stored red

@pytest.mark.parametrize('name', ['Abyssinian_34.jpg', 'Abyssinian_5.jpg'])
def test_sample_gif_and_rgba(pets, name):
    "The sample's GIF and RGBA files (as in the full dataset) are refused as they are, accepted with convert=True"
    with pytest.raises(ValueError, match='not an RGB image'): open_image(pets/name)
    assert open_image(pets/name, convert=True).mode == 'RGB'

def test_state_restored_and_hooks_removed(synth):
    m = synth.model
    m.train(); m[0][0][0].weight.requires_grad_(False)
    try:
        with torch.no_grad(): e = synth.cam(synth.dls.valid_ds.items[:2])
        assert e.maps.shape == (2,8,8)
        assert m.training and all(c.training for c in m.modules())
        assert not m[0][0][0].weight.requires_grad and m[1][2].weight.requires_grad
        assert hooks_left(m) == 0
        with pytest.raises(KeyError): synth.cam(synth.dls.valid_ds.items[:2], targets='green')  # fails after the forward pass
        assert m.training and hooks_left(m) == 0
    finally: m[0][0][0].weight.requires_grad_(True); m.eval()

def test_plain_model_and_wrong_pooling(synth):
    class Plain(nn.Module):
        def __init__(self, net, pool):
            super().__init__(); self.features, self.pool, self.fc = net[0], pool, net[1][2]
        def forward(self, x): return self.fc(self.pool(self.features(x)).flatten(1))
    x = synth.cam(synth.dls.valid_ds.items[:4]).x
    ref = synth.cam(x)
    assert (cam(Plain(synth.model, nn.AdaptiveAvgPool2d(1)), x, body='features', fc='fc').class_maps - ref.class_maps).abs().max() < 1e-5
    with pytest.raises(ValueError, match='does not reproduce'): cam(Plain(synth.model, nn.AdaptiveMaxPool2d(1)), x, body='features', fc='fc')
    with pytest.raises(ValueError, match="No layer named 'feature'.*close names"): cam(Plain(synth.model, nn.AdaptiveAvgPool2d(1)), x, body='feature', fc='fc')
