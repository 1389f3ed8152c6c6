#!/usr/bin/env python3
"""Plots every panel of deploy/grafana/frontdoor.json from a Prometheus's query_range API into
one PNG: the dashboard with real data where Grafana itself cannot run.

    deploy/grafana/plot.py PROMETHEUS_URL OUT.png [minutes=10]
"""
import json, os, sys, time, urllib.parse, urllib.request

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

prom, out = sys.argv[1].rstrip("/"), sys.argv[2]
minutes = int(sys.argv[3]) if len(sys.argv) > 3 else 10
here = os.path.dirname(os.path.abspath(__file__))
dash = json.load(open(os.path.join(here, "frontdoor.json")))
end = time.time()
start = end - minutes * 60
panels = dash["panels"]
cols = 3
rows = (len(panels) + cols - 1) // cols
fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False)
for ax, panel in zip(axes.flat, panels):
    expr = panel["targets"][0]["expr"]
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": max(1, minutes * 60 // 300)})
    data = json.load(urllib.request.urlopen(f"{prom}/api/v1/query_range?{q}"))
    for series in data["data"]["result"][:8]:
        xs = [(float(t) - end) / 60 for t, _ in series["values"]]
        ys = [float(v) for _, v in series["values"]]
        label = ",".join(f"{k}={v}" for k, v in series["metric"].items()) or expr[:40]
        ax.plot(xs, ys, label=label[:48])
    ax.set_title(panel["title"], fontsize=10)
    ax.set_xlabel("minutes ago", fontsize=8)
    ax.tick_params(labelsize=7)
    if data["data"]["result"]:
        ax.legend(fontsize=6, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
for ax in list(axes.flat)[len(panels):]:
    ax.axis("off")
fig.suptitle(f"frontdoor dashboard, last {minutes} min (panels of deploy/grafana/frontdoor.json)")
fig.tight_layout()
fig.savefig(out, dpi=80)
print(f"wrote {out}")
