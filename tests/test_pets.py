"Real data: the offline pretrained backbone learns cat vs dog on the Pets sample, and CAM is exact on it."
import torch
from fastcore.test import test_close as close
from fastcam.all import *

def test_probe_accuracy(pets_probe):
    acc = pets_probe.validate()[1]
    print(f"valid accuracy, efficientnet-lite0 probe, 192px, 1 epoch: {acc:.4f}")
    assert acc >= 0.95

def test_cam_mean_is_logits(pets_probe, pets):
    files = pets_probe.dls.valid_ds.items[:12]
    e = pets_probe.cam(files)
    with torch.no_grad(): logits = pets_probe.model.eval()(e.x)
    assert e.class_maps.shape[:2] == (12, 2)
    assert (e.class_maps.mean((2,3)) - logits).abs().max() < 1e-4

def test_batched_equals_per_image(pets_probe):
    files = pets_probe.dls.valid_ds.items[:6]
    e = pets_probe.cam(files)
    for i,f in enumerate(files):
        one = pets_probe.cam([f])
        assert (one.class_maps[0]-e.class_maps[i]).abs().max() < 1e-4
        assert one.targets[0] == e.targets[i]

def test_cam_matches_seed_einsum(pets_probe):
    "The batched einsum is the lecture's per-image einsum"
    f = pets_probe.dls.valid_ds.items[0]
    e = pets_probe.cam([f])
    net1, net2 = body_head(pets_probe.model)
    with torch.no_grad(): seed = torch.einsum('ij,jkl -> ikl', net2[2].weight, net1(e.x).squeeze())
    close(e.class_maps[0], seed, eps=1e-4)

def test_predictions_match_labels(pets_probe):
    "Predicted classes are right on most of the valid set, and each map's predicted class is the label"
    files = pets_probe.dls.valid_ds.items[:20]
    e = pets_probe.cam(files, convert=True)   # the GPU recipe's subset keeps the sample's GIF among them
    assert sum(l==label_func(f) for l,f in zip(e.labels, files)) >= 19

def test_seed_reaches_the_splits(pets):
    "The lectures pass their seed to `pets_dls` and `pets_split_dls`: another seed, another validation set; the same seed, the same one"
    for make in (lambda s: pets_dls(pets, size=32, bs=8, seed=s), lambda s: pets_split_dls(pets, size=32, bs=8, seed=s)):
        a, b, c = [set(make(s).valid_ds.items) for s in (1, 7, 1)]
        assert a == c and a != b
    split = pets_split(pets)
    assert all(f in set(split['trainval']) for f in pets_split_dls(pets, size=32, bs=8, seed=7).valid_ds.items)
