#!/usr/bin/env python
"""Search for the best map: candidate methods, layers and fusions, chosen on the validation images, confirmed on the test images.

    python benchmarks/localise_report.py --save-learners DIR     # once: trains and exports the two learners
    python benchmarks/best_map.py --load-learners DIR [--models frozen,finetuned] [--only NAME,...] [--threads 2]

The learners are those of `localise_report.py` (efficientnet-lite0 trained on the official trainval split's seeded training
part: a frozen body with a GAP + Linear probe, and the same model fine-tuned). Each candidate is scored with `localise_report`
(pointing game, energy in the pet mask, box IoU, CorLoc) on the validation part of trainval (images the learners never
trained on), or with --choose-on trainval on all of trainval (the learners were fitted to the training part's labels, never to
its masks), and on the official test images, beside the centred Gaussian. The goal (issue 18): energy in the mask at least
0.12 above the centred Gaussian's, and a pointing game of at least 0.98. The candidate is *chosen on the --choose-on images*
(among those meeting both goals there, the highest pointing, then the highest margin; 60 validation images cannot tell 0.98
from 0.97, 300 trainval images can) and then *confirmed on the test images*, which play no part in the choice."""
import argparse, time, warnings
warnings.filterwarnings('ignore')
from pathlib import Path
import pandas as pd, torch, torch.nn.functional as F
from fastai.vision.all import set_seed
from fastcam.all import *
from fastcam.methods import *
from fastcam.localise import *
from fastcam.learner import load_exported
from fastcam.core import plain

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--load-learners', required=True, help='the folder localise_report.py --save-learners wrote')
p.add_argument('--models', default='frozen,finetuned', help='which learners: frozen, finetuned or both')
p.add_argument('--only', default=None, help='evaluate these candidates only (comma-separated names); scorecam runs only when named here')
p.add_argument('--size', type=int, default=224); p.add_argument('--bs', type=int, default=32)
p.add_argument('--n', type=int, default=None, help='the first N images of each split only (default: all)')
p.add_argument('--threads', type=int, default=2); p.add_argument('--seed', type=int, default=42)
p.add_argument('--device', default=None, help='cuda, cpu... (default: cuda when available, else cpu)')
p.add_argument('--data', default=None, help="Pets folder (default: fastai's untar_data(URLs.PETS))")
p.add_argument('--margin', type=float, default=0.12); p.add_argument('--pointing', type=float, default=0.98)
p.add_argument('--choose-on', default='valid', choices=['valid', 'trainval'], help="the images the candidate is chosen on")
p.add_argument('--tolerance', type=int, default=0, help="pointing game: a hit within this many pixels of the pet (Zhang et al.: 15 in the original image)")
a = p.parse_args()
torch.set_num_threads(a.threads)
device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
t_start = time.perf_counter()

set_seed(a.seed)
dls = pets_split_dls(a.data, size=a.size, bs=a.bs, seed=a.seed, device=device)
split = pets_split(a.data)
files = {'valid': list(dls.valid_ds.items), 'test': list(split['test'])}
if a.choose_on == 'trainval': files['trainval'] = list(dls.train_ds.items) + files['valid']
if a.n: files = {k: v[:a.n] for k,v in files.items()}
dl = {k: pets_eval_dl(dls, v, bs=a.bs) for k,v in files.items()}

def upscaled(f, k=2):
    "`f(learn, x)` on `x` resized `k` times (bilinear), explaining the classes predicted at the original size"
    def _f(l, x):
        with torch.no_grad(): t = l.model(x).argmax(1)
        return f(l, F.interpolate(x, scale_factor=k, mode='bilinear', align_corners=False), t)
    return _f

def candidates(learn):
    "name -> f(learn, x, targets=None) -> Explanation, for every candidate method, layer or fusion"
    x = dl['valid'].one_batch()[0][:1]
    s16, s8 = last_layer_at(learn.model, x, stride=16), last_layer_at(learn.model, x, stride=8)
    c = {'cam': lambda l,x,t=None: l.cam(x, t)}
    for m in ('gradcam', 'gradcam_pp', 'layercam', 'xgradcam', 'hirescam', 'eigencam'): c[m] = lambda l,x,t=None,m=m: getattr(l, m)(x, t)
    c['ablationcam'] = lambda l,x,t=None: l.ablationcam(x, t, progress=False)
    c['scorecam'] = lambda l,x,t=None: l.scorecam(x, t, progress=False)
    for m in ('gradcam_pp', 'layercam', 'hirescam'): c[f'{m} @{s16}'] = lambda l,x,t=None,m=m: getattr(l, m)(x, t, layer=s16)
    c[f'layercam @{s8}'] = lambda l,x,t=None: l.layercam(x, t, layer=s8)
    c[f'layercam last+{s16}'] = lambda l,x,t=None: multi_layer(l.layercam, [None, s16])(x, t)
    c[f'layercam last+{s16}+{s8}'] = lambda l,x,t=None: multi_layer(l.layercam, [None, s16, s8])(x, t)
    c[f'layercam last+{s16} + flip'] = lambda l,x,t=None: flip_average(multi_layer(l.layercam, [None, s16]))(x, t)
    c[f'layercam last+{s16}+{s8} + flip'] = lambda l,x,t=None: flip_average(multi_layer(l.layercam, [None, s16, s8]))(x, t)
    c['eigencam + flip'] = lambda l,x,t=None: flip_average(l.eigencam)(x, t)
    c['localise'] = lambda l,x,t=None: l.localise(x, t)   # the shipped default: layercam last+stride 16+stride 8, cubed
    c['gradcam_pp x2'] = upscaled(lambda l,x,t: l.gradcam_pp(x, t))
    if a.only: c = {k:v for k,v in c.items() if k in a.only.split(',')}
    else: del c['scorecam']   # a forward pass per channel of the layer: only when --only names it
    return c

def unit(m): m = m.clamp(min=0); return m/m.amax((-2,-1), keepdim=True).clamp(min=1e-12)
sharpen = {'': lambda m: m, ' ^2': lambda m: unit(m)**2, ' ^3': lambda m: unit(m)**3,
           ' -20%': lambda m: (unit(m)-0.2).clamp(min=0)}   # on the maps at their own resolution, before the bilinear resize

def scores(learn, cs, dl):
    "Per candidate (and sharpening), per-image pointing and energy in the pet mask; the centred Gaussian's; ms per image"
    res, ms = {}, {}
    for xb,gt,*_ in dl:
        masks, size = pet_mask(gt), xb.shape[-2:]
        res.setdefault('centre Gaussian', []).append(
            (pointing_game(centre_maps(len(xb), size), masks, a.tolerance).float(), energy_in_mask(centre_maps(len(xb), size), masks)))
        for name,f in cs.items():
            t0 = time.perf_counter(); e = f(learn, xb)
            ms[name] = ms.get(name, 0) + (time.perf_counter()-t0)*1000
            for k,g in (sharpen.items() if name != 'localise' else [('', sharpen[''])]):   # localise is sharpened already
                up = as_maps(g(plain(e.maps).detach().float().cpu()), size)
                res.setdefault(name+k, []).append((pointing_game(up, masks, a.tolerance).float(), energy_in_mask(up, masks)))
    n = len(dl.dataset)
    t = pd.DataFrame({k: {'pointing': torch.cat([p for p,_ in v]).mean().item(), 'energy': torch.cat([e for _,e in v]).mean().item()}
                      for k,v in res.items()}).T
    t['margin'] = t.energy - t.loc['centre Gaussian', 'energy']
    t['ms/img'] = [ms.get(k.split(' ^')[0].split(' -20%')[0], float('nan'))/n for k in t.index]
    return t

def load(name):
    learn = load_exported(Path(a.load_learners)/f'{name}.pkl', cpu=device.type=='cpu')
    learn.dls = dls
    return learn

chosen_on = {'valid': "validation images (trainval's held-out part)", 'trainval': "trainval images (the learners' training and validation images)"}
print(f"Pets at {pets_root(a.data)}: choose on {len(files[a.choose_on])} {chosen_on[a.choose_on]}, confirm on "
      f"{len(files['test'])} test images; {a.size} px, on {device} "
      f"({torch.cuda.get_device_name(device) if device.type=='cuda' else str(a.threads)+' CPU threads'}), torch {torch.__version__}", flush=True)
print(f"pointing: the map's maximum (the middle of its top plateau) within {a.tolerance} px of the pet; "
      "pet = trimap pet + boundary; energy = share of the map's positive mass in the pet (map resized bilinearly to the input); "
      "margin = energy - the centred Gaussian's (sigma 0.25) on the same images; ^2, ^3: the map (ReLU, divided by its max) "
      "squared, cubed; -20%: minus 20% of its max, ReLU; ms/img: the method's call (sharpening is free)", flush=True)
pd.set_option('display.width', 200)
for model in a.models.split(','):
    learn = load(model)
    cs = candidates(learn)
    tables = {k: scores(learn, cs, dl[k]) for k in (a.choose_on, 'test')}
    both = pd.concat(tables, axis=1)
    print(f"\n{model}: valid accuracy {learn.validate()[1]:.3f}; goal: margin >= {a.margin}, pointing >= {a.pointing}\n")
    print(both.to_string(float_format=lambda v: f"{v:.3f}"))
    v = tables[a.choose_on].drop(index=['centre Gaussian'])
    ok = v[(v.pointing >= a.pointing) & (v.margin >= a.margin)]
    if len(ok):
        best = ok.sort_values(['pointing', 'margin'], ascending=False).index[0]
        t = tables['test'].loc[best]
        met = t.margin >= a.margin and t.pointing >= a.pointing
        print(f"\nchosen on {a.choose_on} ({model}): {best} ({a.choose_on}: pointing {v.loc[best,'pointing']:.3f}, margin {v.loc[best,'margin']:+.3f}); "
              f"on test: pointing {t.pointing:.3f}, margin {t.margin:+.3f}: goal {'met' if met else 'NOT met'}")
    else: print(f"\nno candidate reaches both goals on the {a.choose_on} images ({model})")
    tt = tables['test'].drop(index=['centre Gaussian'])
    tt = tt[(tt.pointing >= a.pointing) & (tt.margin >= a.margin)]
    print(f"candidates meeting both goals on test ({model}): {', '.join(tt.index) if len(tt) else 'none'}", flush=True)
print(f"\ntotal {time.perf_counter()-t_start:.0f} s")
