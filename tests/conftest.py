"Shared fixtures: a synthetic task whose answer is known, and a real Pets learner trained on the offline sample."
import os, warnings
# pytest-xdist runs one process per worker: each gets its share of the cores for PyTorch's threads (OpenMP), and the programs
# the tests start inherit it. With every worker on all the cores, the threads oversubscribe them: tests/test_timm.py and
# tests/test_gradcam.py with -n 2 on 2 cores took 350 s at 2 threads per worker, 127 s at 1 (December 2026, AMD EPYC).
_workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT') or 1)
_cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)   # macOS has no affinity
_threads = max(1, _cores // _workers) if _workers > 1 and not os.environ.get('OMP_NUM_THREADS') else None   # a user's setting wins
if _threads: os.environ['OMP_NUM_THREADS'] = str(_threads)
warnings.filterwarnings('ignore', category=FutureWarning)
import pytest, torch
import torch.nn.functional as F
from fastai.vision.all import set_seed
from fastcam.all import *
from fastcam.testing import *

if _threads: torch.set_num_threads(_threads)   # also where torch was imported before this file

@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    "A small GAP network trained on synthetic images (object colour decides the class, a white square distracts)"
    return synthetic_trained(tmp_path_factory.mktemp('synth'))

@pytest.fixture(scope='session')
def pets():
    "The Pets images folder fastai's config points at (the offline sample in the test suite)"
    return pets_images()

@pytest.fixture(scope='session')
def pets_probe(pets):
    "efficientnet-lite0 ImageNet body (offline weights), frozen, with a GAP head trained one epoch on Pets at 192 px"
    set_seed(42)
    dls = pets_dls(pets, size=192, bs=32)
    learn = pets_learner(dls, efficientnet_lite0, cam_head=True, train_bn=False)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    return learn

@pytest.fixture(autouse=True, scope='session')
def no_tf32():
    "On CUDA, cuDNN convolutions run in TF32 by default (about 1e-3 relative): tests that compare maps to 1e-5 need full float32"
    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm
