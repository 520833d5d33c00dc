"Shared by the benchmarks: interleaved timing, medians."
import statistics, time

def median_times(fns:dict, runs:int)->dict:
    "Median seconds of each function in `fns` over `runs` interleaved runs (one warm-up call each first)"
    for f in fns.values(): f()
    times = {k:[] for k in fns}
    for _ in range(runs):
        for k,f in fns.items():
            t = time.perf_counter(); f(); times[k].append(time.perf_counter()-t)
    return {k:statistics.median(v) for k,v in times.items()}
