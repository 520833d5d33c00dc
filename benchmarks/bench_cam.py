#!/usr/bin/env python
"""Time fastcam's CAM against a plain forward pass, fastai's get_preds and the lecture's per-image loop, side by side in one run.

Rows (one model: the lecture's resnet body with a GAP head, random weights, in eval mode, on --device):
  plain forward           `model(x)` under torch.no_grad() on a ready batch `x` of --bs images
  batched CAM             fastcam's `cam(model, x)` on the same batch
  files -> maps           `learn.cam(files)`: open, resize and batch the files, then CAM
  fastai get_preds        `learn.get_preds(dl=learn.dls.test_dl(files))` on the same files: fastai's own path from files to
                          predictions, with its default DataLoader workers (progress bar off)
  lecture's loop          the lecture's code as written, image by image: a test_dl per image, `net1(x)` and an einsum for the
                          map, `net(x)` again for the probabilities; timed on --loop-images of the files (it is slow) and
                          compared per image
The files are the first --bs RGB images of the Pets sample after a seeded shuffle. Each row is the median of --reps
repetitions, every repetition running every row once (interleaved, the order rotated), CUDA synchronised before every clock
read. The ratios and their targets (issue 8) are printed at the end: measured, never asserted.

On this machine's CPU:   python benchmarks/bench_cam.py                     (bs 16, 5 repetitions: a few minutes on 2 cores)
On a GPU (defaults: cuda, bs 64, 224 px, resnet34, 9 repetitions):
    python benchmarks/bench_cam.py
    python benchmarks/bench_cam.py --size 512 --bs 32
    python benchmarks/bench_cam.py --arch resnet50
With the device tool: ../shared/gpu/prepare.sh, then run `bash .gpu/run.sh 'python benchmarks/bench_cam.py'` carrying .gpu
(see ../shared/gpu/README.md). `--device cpu` on a GPU machine times its CPU instead."""
import sys, pathlib, warnings
warnings.filterwarnings('ignore')
import numpy as np, torch
from torch import nn
from fastai.vision.all import first, PILImage, resnet18, resnet34, resnet50
from fastcam.all import cam, pets_dls, pets_images, pets_learner, body_head, efficientnet_lite0
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from timing import common_args, device_defaults, header, interleaved_times, print_rows, print_targets, pets_files, files_note

p = common_args(__doc__.split('\n')[0], gpu_bs=64, cpu_bs=16)
p.add_argument('--loop-images', type=int, default=4, help="images the lecture's loop is timed on (default 4, at most --bs)")
a = device_defaults(p.parse_args())
arch = dict(resnet18=resnet18, resnet34=resnet34, resnet50=resnet50, efficientnet_lite0=efficientnet_lite0)[a.arch]

torch.manual_seed(a.seed)
path = pets_images(a.data)
files, skipped = pets_files(path, a.bs, a.seed)
dls = pets_dls(path, size=a.size, bs=a.bs, seed=a.seed)  # fastai's defaults otherwise, its DataLoader workers included
dls.to(a.device)
learn = pets_learner(dls, arch, cam_head=True, pretrained=False)
net = learn.model.to(a.device).eval()
net1, net2 = body_head(net)
fc = next(m for m in net2.modules() if isinstance(m, nn.Linear))  # the lecture's `net2[2]`
x = first(dls.test_dl(files, bs=len(files), num_workers=0))[0].to(a.device)
loop_files = files[:max(1, min(a.loop_images, len(files)))]

def plain_forward():
    with torch.no_grad(): return net(x)

def batched_cam(): return cam(net, x).maps

def files_to_maps(): return learn.cam(files).maps

def fastai_get_preds():
    with learn.no_bar(): return learn.get_preds(dl=learn.dls.test_dl(files))[0]

def lecture_loop():
    "The lecture's loop, as written: a test_dl per image, net1(x) for the map, net(x) for the probabilities"
    for f in loop_files:
        xi, = first(dls.test_dl([PILImage.create(f)]))
        camimg = torch.einsum('ij,jkl -> ikl', fc.weight, net1(xi).squeeze())
        a_, b_ = net(xi).tolist()[0]
        catprob, dogprob = np.exp(a_)/(np.exp(a_)+np.exp(b_)), np.exp(b_)/(np.exp(a_)+np.exp(b_))
    return camimg

fns = dict(forward=plain_forward, cam=batched_cam, files=files_to_maps, get_preds=fastai_get_preds, loop=lecture_loop)
header("fastcam CAM benchmark", a,
       files=files_note(files, skipped, path, a.seed),
       workers=f"fastai get_preds: test_dl with {learn.dls.test_dl(files).fake_l.num_workers} DataLoader worker(s) (fastai's default)",
       loop=f"the lecture's loop runs on {len(loop_files)} of the {len(files)} images; compared per image")
times = interleaved_times(fns, a.reps, a.warmup, a.device)

n = dict(forward=len(files), cam=len(files), files=len(files), get_preds=len(files), loop=len(loop_files))
print("timings (median s per call, per image, spread over the repetitions):")
print_rows(times, dict(forward=f"plain forward, batch of {len(files)} ready",
                       cam="batched CAM, cam(model, x), same batch",
                       files="files -> maps, learn.cam(files)",
                       get_preds="fastai, learn.get_preds(dl=dls.test_dl(files))",
                       loop=f"lecture's per-image loop ({len(loop_files)} images)"), n)
print_targets(times, [("batched CAM / plain forward", 'cam', 'forward', dict(cuda=1.10, cpu=1.10)),
                      ("files -> maps / fastai get_preds", 'files', 'get_preds', dict(cuda=1.0, cpu=None)),
                      ("lecture loop / files -> maps, per image", 'loop', 'files', {})], a.device, n)
