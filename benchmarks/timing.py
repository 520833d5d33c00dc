"""Shared by the benchmarks: the common options, the device, interleaved and synchronised timing, the header, the targets
block and the choice of files.

One implementation of the clock: `interleaved_times` runs every variant once per repetition (rotating which one goes
first, so drift and cache effects fall on all of them alike) and synchronises CUDA before each clock read."""
import argparse, os, platform, statistics, time, warnings
from importlib.metadata import version, PackageNotFoundError
import torch

DEFAULTS = {'reps': (9, 5), 'warmup': (2, 1)}  # (cuda, cpu): more repetitions where they are cheap

def common_args(description:str, gpu_bs:int=64, cpu_bs:int=16)->argparse.ArgumentParser:
    "The options both benchmarks share; `--bs`, `--reps` and `--warmup` default by device (see `device_defaults`)"
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default=None, help="cuda, cuda:1, cpu... (default: cuda when torch.cuda.is_available(), else cpu)")
    p.add_argument('--arch', default='resnet34', choices=['resnet18', 'resnet34', 'resnet50', 'efficientnet_lite0'])
    p.add_argument('--size', type=int, default=224, help="image size in pixels (default 224)")
    p.add_argument('--bs', type=int, default=None, help=f"images per batch (default {gpu_bs} on cuda, {cpu_bs} on cpu)")
    p.add_argument('--reps', type=int, default=None, help="timed repetitions; each row is their median (default %d on cuda, %d on cpu)" % DEFAULTS['reps'])
    p.add_argument('--warmup', type=int, default=None, help="untimed rounds of every variant first (default %d on cuda, %d on cpu)" % DEFAULTS['warmup'])
    p.add_argument('--threads', type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument('--seed', type=int, default=0, help="seed of the weights and of the file shuffle (default 0)")
    p.add_argument('--data', default=None, help="Pets folder (default: fastcam's pets_images(), i.e. fastai's data folder)")
    p.set_defaults(_defaults={'bs': (gpu_bs, cpu_bs), **DEFAULTS})
    return p

def device_defaults(a:argparse.Namespace)->argparse.Namespace:
    "Resolve `a.device` and fill the device-dependent defaults; `a.defaulted` names the options that took one"
    a.device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if a.device.type=='cuda' and a.device.index is None: a.device = torch.device('cuda', torch.cuda.current_device())
    if a.threads: torch.set_num_threads(a.threads)
    cuda = a.device.type=='cuda'
    a.defaulted = []
    for k,(g,c) in a._defaults.items():
        if getattr(a, k) is None: setattr(a, k, g if cuda else c); a.defaulted.append(k)
    return a

def sync(device):
    "Wait for the work queued on `device` (CUDA only: CPU work is synchronous)"
    if torch.device(device).type=='cuda': torch.cuda.synchronize(device)

def interleaved_times(fns:dict, reps:int, warmup:int=1, device='cpu')->dict:
    "Seconds of each function in `fns` over `reps` repetitions that each run every function once, after `warmup` untimed rounds"
    names = list(fns)
    for _ in range(warmup):
        for k in names: fns[k]()
    sync(device)
    times = {k:[] for k in names}
    for r in range(reps):
        for k in names[r%len(names):] + names[:r%len(names)]:  # rotate the order: no variant always follows the same one
            sync(device)
            t = time.perf_counter()
            fns[k]()
            sync(device)
            times[k].append(time.perf_counter()-t)
    return times

def median_times(fns:dict, reps:int, warmup:int=1, device='cpu')->dict:
    "Median seconds of each function in `fns` (see `interleaved_times`)"
    return {k:statistics.median(v) for k,v in interleaved_times(fns, reps, warmup, device).items()}

def _cpu_model()->str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def device_name(device)->str:
    "The GPU's name, or the CPU model with its core count and torch's thread count"
    device = torch.device(device)
    if device.type=='cuda':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            tf32 = f"cuDNN TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, matmul TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}"
        return f"{device} = {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, {tf32})"
    return f"cpu = {_cpu_model()} ({os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads)"

def pkg_version(name:str)->str:
    "The installed version of distribution `name`, else the `__version__` of the module of that name (a source checkout)"
    try: return version(name)
    except PackageNotFoundError:
        try: return __import__(name.replace('-', '_')).__version__
        except Exception: return '?'

def header(title:str, a:argparse.Namespace, packages=('torch', 'torchvision', 'fastai', 'fastcam'), **settings):
    "Print what was measured where: device, package versions, batch size, image size and the other settings"
    print(title)
    print(f"  device    {device_name(a.device)}")
    print(f"  packages  " + ', '.join(f"{p} {pkg_version(p)}" for p in packages))
    weights = "ImageNet weights (offline, from the package's files)" if getattr(a, 'pretrained', False) else f"random weights (seed {a.seed}, nothing downloaded)"
    print(f"  model     {a.arch}, {weights}")
    print(f"  batch     {a.bs} images at {a.size}x{a.size} px")
    print(f"  timing    median of {a.reps} interleaved repetitions after {a.warmup} warm-up round(s)"
          + (", CUDA synchronised before every clock read" if a.device.type=='cuda' else ""))
    if a.defaulted:
        d = a._defaults
        print(f"  defaults  {a.device.type} defaults taken for " + ', '.join(a.defaulted) + " (cuda: "
              + ', '.join(f"{k} {d[k][0]}" for k in a.defaulted) + "; cpu: " + ', '.join(f"{k} {d[k][1]}" for k in a.defaulted) + ")")
    for k,v in settings.items(): print(f"  {k:9s} {v}")

def print_rows(times:dict, labels:dict, n:dict|int):
    "One line per variant: median seconds, ms per image (`n` images, or a dict of images per variant) and the spread"
    for k,label in labels.items():
        v = times[k]; m = statistics.median(v); ni = n[k] if isinstance(n, dict) else n
        print(f"  {label:52s} {m:8.4f} s  {1000*m/ni:8.2f} ms/image   (min {min(v):.4f}, max {max(v):.4f})")

def print_targets(times:dict, rows, device, n:dict|int=1, source:str='issue 8'):
    """Rows `(name, numerator, denominator, {'cuda': target, 'cpu': target})` of `times` keys: each ratio of medians (per image,
    with `n` images per variant) beside its target (from `source`) for this device type, met or not, and the ratio of the minima"""
    kind = torch.device(device).type
    per = lambda k,f: f(times[k])/(n[k] if isinstance(n, dict) else n)
    print(f"targets on {kind} ({source}), ratios of medians; the ratio of the fastest runs beside them shows the noise:")
    for name,num,den,targets in rows:
        ratio, fastest = per(num, statistics.median)/per(den, statistics.median), per(num, min)/per(den, min)
        t = targets.get(kind)
        if t is None:
            others = ', '.join(f"<= {v:.2f} on {k}" for k,v in targets.items() if v is not None)
            verdict = "no target" + (f" on {kind} ({source}: {others})" if others else "")
        else: verdict = f"target <= {t:.2f}   {'met' if ratio<=t else 'NOT MET'}"
        print(f"  {name:42s} {ratio:7.2f}   (fastest {fastest:5.2f})   {verdict}")

def pets_files(path, n:int, seed:int=0)->tuple:
    "The first `n` RGB images of `path` after a seeded shuffle, and the non-RGB files skipped on the way (fastcam refuses them)"
    import random
    from PIL import Image
    from fastai.vision.all import get_image_files
    files = list(get_image_files(path).sorted())
    random.Random(seed).shuffle(files)
    chosen, skipped = [], []
    for f in files:
        if len(chosen)==n: break
        with Image.open(f) as im: rgb = im.mode=='RGB' and getattr(im, 'n_frames', 1)==1
        (chosen if rgb else skipped).append(f)
    if len(chosen)<n: raise SystemExit(f"{path} has {len(chosen)} RGB images, fewer than the {n} asked for (--bs)")
    return chosen, skipped

def files_note(files, skipped, path, seed:int)->str:
    "One line saying which files `pets_files` chose"
    return (f"the first {len(files)} RGB images of {path} after a shuffle (seed {seed})"
            + (f"; skipped {len(skipped)} non-RGB: {', '.join(f.name for f in skipped)}" if skipped else ""))
