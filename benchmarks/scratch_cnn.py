#!/usr/bin/env python
"""Lecture 2's from-scratch network: validation accuracy by setting, towards issue 20's goal of 0.90 on the sample's three breeds.

    python benchmarks/scratch_cnn.py                              # the lecture's CPU settings (96 px, 60 epochs, peak rate 0.003)
    python benchmarks/scratch_cnn.py epochs=24 lr=0.01            # the lecture's settings until December 2026
    python benchmarks/scratch_cnn.py teach=2 tsize=128 epochs=100 # distillation from an ImageNet teacher
    python benchmarks/scratch_cnn.py size=64 epochs=60            # smaller images, more epochs
    python benchmarks/scratch_cnn.py res=1 epochs=40              # residual blocks
    python benchmarks/scratch_cnn.py size=128 prog=64 epochs=100  # progressive resizing: 64 px views first, then 128 px
    python benchmarks/scratch_cnn.py pbn=1                        # precise BN: validation with the clean images' statistics
    python benchmarks/scratch_cnn.py probe=1 size=224             # a reference: ImageNet features and a linear classifier

Options as key=value: size, epochs, lr, seed, width, res (0: the lecture's plain blocks, 1 or 2: residual blocks), zoom (the
smallest crop's side), prog (progressive resizing: the first pfrac of the epochs train on views of prog px, the rest on size
px), opt (adamw, the lecture's, or sgd: Nesterov momentum 0.9), ta (1: TrivialAugment, one random photometric or geometric operation per image before the affine view), head (the number of feature maps the last convolution gives the pooling and the linear layer, 0: one per class, the lecture's), pbn (1: "precise BN", BatchNorm's statistics recomputed on the clean training images before each validation), wd, mix
(mixup's beta parameter, 0: none), bs, drop (Dropout2d before the last convolution), jitter (brightness), tta (1: validation averages each image's and its mirror image's probabilities), ema (the decay of an exponential
moving average of the weights and BatchNorm buffers, validated instead of the weights; 0: none), cutmix (CutMix's beta parameter,
0: none), teach (knowledge distillation at this temperature, 0: none: the network learns the probabilities of a teacher, a
linear classifier on frozen ImageNet efficientnet-lite0 features fitted to the training images, which sees the same
augmented view of each image sampled from a tsize px copy; alpha weighs that loss against the labels' cross entropy), threads; probe=1 trains no network but fits a linear classifier on frozen ImageNet efficientnet-lite0
features of the same images and split (the accuracy that pretrained features give at that size). The data, split (a seeded random fifth), network, augmentation and loop are the lecture's (one-cycle
AdamW, label smoothing 0.1); it prints one JSON line: the settings, the last and best epoch's validation accuracy, the last
five epochs', the side of the first and last epochs' training views (views) and the seconds it took, on the CPU (its device and threads named)."""
import sys, time, random, numpy as np, torch, torch.nn as nn, torch.nn.functional as F, json
from pathlib import Path
from PIL import Image
from torch.utils.data import TensorDataset, DataLoader
args = dict(a.split('=') for a in sys.argv[1:])
size=int(args.get('size',96)); epochs=int(args.get('epochs',60)); lr=float(args.get('lr',0.003)); seed=int(args.get('seed',42))
width=int(args.get('width',32)); res=int(args.get('res',0)); zoom=float(args.get('zoom',0.75)); wd=float(args.get('wd',0.05))
mix=float(args.get('mix',0)); bs=int(args.get('bs',32)); drop=float(args.get('drop',0)); jitter=float(args.get('jitter',0))
tta=int(args.get('tta',0)); ema=float(args.get('ema',0)); cutmix=float(args.get('cutmix',0))
prog=int(args.get('prog',0)); pfrac=float(args.get('pfrac',0.5)); pbn=int(args.get('pbn',0)); head=int(args.get('head',0)); optim=args.get('opt','adamw'); ta=int(args.get('ta',0))
teach=float(args.get('teach',0)); tsize=int(args.get('tsize',224)); alpha=float(args.get('alpha',1))
torch.set_num_threads(int(args.get('threads',2)))
from fastcam.pets import pets_path
path = pets_path()/'images'
breed = lambda f: f.name.rsplit('_', 1)[0]
classes = ['Abyssinian', 'Bengal', 'american_bulldog']
files = sorted(f for f in path.glob('*.jpg') if breed(f) in classes)
def pixels(f, side): return np.transpose(np.asarray(Image.open(f).convert('RGB').resize((side, side), Image.BICUBIC)), (2, 0, 1))
def load(f): return pixels(f, size) / 255
x_all = torch.from_numpy(np.array([load(f) for f in files], dtype=np.float32))
y_all = torch.tensor([classes.index(breed(f)) for f in files])
torch.manual_seed(seed); random.seed(seed); np.random.seed(seed)
dataset = TensorDataset(x_all, y_all, torch.arange(len(files)))
n_val = len(dataset)//5
train_set, val_set = torch.utils.data.random_split(dataset, [len(dataset)-n_val, n_val], generator=torch.Generator().manual_seed(seed))
train_loader = DataLoader(train_set, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(seed))
val_loader = DataLoader(val_set, batch_size=64)
def imagenet_probe(x):
    "A frozen ImageNet efficientnet-lite0 body (images in [0, 1] to pooled features) and a linear classifier fitted on its features of the training images of `x` (uint8 or [0, 1] floats): (body, classifier, validation accuracy)"
    from fastcam.learner import efficientnet_lite0, lite_stats
    net = efficientnet_lite0().eval()[:-2]   # up to the pooled, flattened features
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in lite_stats)
    body = lambda xb: net((xb - mean)/std)
    with torch.no_grad(): feats = torch.cat([body(x[i:i+64].float()/(255 if x.dtype==torch.uint8 else 1)) for i in range(0, len(x), 64)])
    tr, va = torch.tensor(train_set.indices), torch.tensor(val_set.indices)
    head = nn.Linear(feats.shape[1], len(classes)); o = torch.optim.LBFGS(head.parameters(), max_iter=200)
    def closure():
        o.zero_grad(); loss = F.cross_entropy(head(feats[tr]), y_all[tr]) + 1e-3*head.weight.pow(2).sum(); loss.backward(); return loss
    o.step(closure); head.requires_grad_(False)
    return body, head, (head(feats[va]).argmax(1)==y_all[va]).float().mean().item()
if int(args.get('probe', 0)):
    t0 = time.time(); _, _, acc = imagenet_probe(x_all)
    print(json.dumps(dict(device='cpu', threads=torch.get_num_threads(), args=args, probe=acc, secs=round(time.time()-t0))), flush=True)
    sys.exit()
def conv(ni, nf, ks=3, stride=1): return [nn.Conv2d(ni, nf, ks, stride, padding=ks//2, bias=False), nn.BatchNorm2d(nf), nn.ReLU()]
class Res(nn.Module):
    def __init__(s, ni, nf):
        super().__init__(); s.c = nn.Sequential(*conv(ni,nf), nn.Conv2d(nf,nf,3,padding=1,bias=False), nn.BatchNorm2d(nf))
        s.id = nn.Identity() if ni==nf else nn.Sequential(nn.Conv2d(ni,nf,1,bias=False), nn.BatchNorm2d(nf))
    def forward(s, x): return F.relu(s.c(x)+s.id(x))
w=width
class CNN(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        if res:
            self.features = nn.Sequential(*conv(3, w, 5, stride=2), Res(w,w), nn.MaxPool2d(2), Res(w,2*w), nn.MaxPool2d(2), Res(2*w,4*w),
                *( [nn.MaxPool2d(2), Res(4*w,8*w)] if res>1 else []), nn.Dropout2d(drop), nn.Conv2d(4*w*(2 if res>1 else 1), head or n_classes, 3, padding=1))
        else:
            self.features = nn.Sequential(*conv(3, w, 5, stride=2), *conv(w, w), nn.MaxPool2d(2, 2), *conv(w, 2*w), *conv(2*w, 2*w), nn.MaxPool2d(2, 2),
                *conv(2*w, 4*w), *conv(4*w, 4*w), nn.Dropout2d(drop), nn.Conv2d(4*w, head or n_classes, 3, padding=1))
        self.avg_pool = nn.AdaptiveAvgPool2d(1); self.fc = nn.Linear(head or n_classes, n_classes)
    def forward(self, x): return self.fc(self.avg_pool(self.features(x)).flatten(1))
from torchvision.transforms import v2
trivial = v2.TrivialAugmentWide()
def augment(x, zoom=(zoom, 1.0), degrees=10, big=None, side=None):
    n = len(x)
    kw = dict(device=x.device, dtype=x.dtype)   # the batch's device and dtype
    scale = torch.empty(n, **kw).uniform_(*zoom); angle = torch.empty(n, **kw).uniform_(-degrees, degrees) * np.pi/180
    flip = 1 - 2*(torch.rand(n, **kw) < 0.5).to(x.dtype); shift = (torch.rand(2, n, **kw)*2 - 1) * (1 - scale)
    cos, sin = torch.cos(angle)*scale, torch.sin(angle)*scale
    theta = torch.stack([torch.stack([cos*flip, -sin, shift[0]], 1), torch.stack([sin*flip, cos, shift[1]], 1)], 1)
    warp = lambda t: F.grid_sample(t, F.affine_grid(theta, (*t.shape[:2], side or t.shape[-2], side or t.shape[-1]), align_corners=False), mode='bilinear', padding_mode='reflection', align_corners=False)
    if ta: x = torch.stack([trivial((t*255).round().to(torch.uint8)) for t in x]).to(x.dtype)/255   # TrivialAugment, one operation per image
    out = warp(x)
    if jitter: out = (out * torch.empty(n,1,1,1, **kw).uniform_(1-jitter,1+jitter)).clamp(0,1)
    return out if big is None else (out, warp(big))   # big: the same view of the same images, from their larger copies, for the teacher
if teach:
    tt = time.time()
    x_big = torch.from_numpy(np.array([pixels(f, tsize) for f in files]))   # uint8, to keep it small
    tbody, thead, teacher_acc = imagenet_probe(x_big); teacher_secs = time.time()-tt
torch.manual_seed(seed)
net = CNN()
criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
opt = (torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=wd) if optim=='sgd' else
       torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd))
sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs*len(train_loader))
t0=time.time(); accs=[]; sides={}   # sides: each epoch's training views' side
if ema: avg = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema), use_buffers=True)
for epoch in range(epochs):
    net.train()
    for xb, yb, ib in train_loader:
        if teach:
            xb, xt = augment(xb, big=x_big[ib].float()/255)
            with torch.no_grad(): pt = F.softmax(thead(tbody(xt))/teach, 1)
            out = net(xb)
            kd = F.kl_div(F.log_softmax(out/teach, 1), pt, reduction='batchmean') * teach**2
            loss = alpha*kd + (1-alpha)*criterion(out, yb)   # teach ignores cutmix and mix; its teacher's view (big) is not TrivialAugmented
        elif cutmix:
            xb = augment(xb)
            lam = np.random.beta(cutmix, cutmix); perm = torch.randperm(len(xb)); h = xb.shape[-1]; r = int(h*(1-lam)**0.5)
            cy, cx = np.random.randint(h), np.random.randint(h); y0, y1, x0, x1 = max(cy-r//2,0), min(cy+r//2,h), max(cx-r//2,0), min(cx+r//2,h)
            xb = xb.clone(); xb[..., y0:y1, x0:x1] = xb[perm][..., y0:y1, x0:x1]; lam = 1 - (y1-y0)*(x1-x0)/h**2
            out = net(xb); loss = lam*criterion(out, yb) + (1-lam)*criterion(out, yb[perm])
        elif mix:
            xb = augment(xb); lam = np.random.beta(mix, mix); perm = torch.randperm(len(xb)); xb = lam*xb + (1-lam)*xb[perm]
            out = net(xb); loss = lam*criterion(out, yb) + (1-lam)*criterion(out, yb[perm])
        else:
            xb = augment(xb, side=prog if epoch < pfrac*epochs else None)   # prog: progressive resizing
            loss = criterion(net(xb), yb)
        sides[epoch] = xb.shape[-1]
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
        if ema: avg.update_parameters(net)
    m = avg if ema else net
    if pbn: torch.optim.swa_utils.update_bn(train_loader, m)   # precise BN: running statistics of the clean training images
    m.eval(); c=0
    with torch.no_grad():
        for xb, yb, _ in val_loader:
            out = m(xb).softmax(1)
            if tta: out = out + m(xb.flip(-1)).softmax(1)
            c += (out.argmax(1)==yb).sum().item()
    accs.append(c/len(val_set))
print(json.dumps(dict(device='cpu', threads=torch.get_num_threads(), args=args, **(dict(teacher=teacher_acc, teacher_secs=round(teacher_secs)) if teach else {}), views=[sides[0], sides[epochs-1]], final=accs[-1], best=max(accs), last5=accs[-5:], secs=round(time.time()-t0))), flush=True)
