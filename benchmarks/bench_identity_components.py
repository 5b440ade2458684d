"""Identity components step: graph.resolve (array) vs scipy csgraph (the floor) vs networkx, side by side.

    python -m benchmarks.bench_identity_components                       # 100k and 1M customers
    python -m benchmarks.bench_identity_components --customers 100000 --no-networkx

The identity-like integer edge list (seeded): every customer has 1-10 identifiers (15 % singletons, else
2 + Binomial(8, 0.45); types in a fixed order that respects the limits: mobiles, card, unionid, two openids,
buyer ids, WeCom id), joined by a random spanning tree plus Poisson(1.3) extra links and ~10 % duplicate
links; 2 % of customers get one link to another customer (family / shared phone: most such pairs break a limit);
a few large chains of customers stand for what is left of hubs after shared-identifier removal. Node ids are a
random permutation (as a dense rank of hashed keys would be). Ranks are uniform in 0..5.

Each method runs in its own spawned process on the same arrays (loaded from .npy files), so its peak RSS
above the loaded-data baseline (`ru_maxrss`) is its own; scipy and resolve are timed best of 3 (plus one extra
run under tracemalloc for their peak of traced numpy allocations), networkx once. The table is written into
docs/benchmarks.md under "Identity components" (replacing the previous one) and printed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Identity components"
# type order: 0 unionid, 1 member_card, 2 openid app 1, 3 openid app 2, 4 external_userid, 5 mobile, 6 buyer_id
TYPE_LIMITS = np.array([1, 1, 1, 1, 1, 3, 0], dtype=np.int32)
SLOTS = np.array([5, 1, 0, 2, 6, 3, 4, 5, 6, 5], dtype=np.int16)   # the k-th identifier of a customer


def identity_edges(customers: int, seed: int = 7) -> dict[str, np.ndarray]:
    """A seeded identity-like graph: node_type (N,), src, dst, rank (E,)."""
    rng = np.random.default_rng(seed)
    size = np.where(rng.random(customers) < 0.15, 1, 2 + rng.binomial(8, 0.45, customers)).astype(np.int64)
    n = int(size.sum())
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    owner = np.repeat(np.arange(customers), size)
    pos = np.arange(n) - start[owner]
    node_type = SLOTS[pos]
    # spanning tree inside each customer: node at position j > 0 links to a random earlier position
    child = np.flatnonzero(pos > 0)
    parent = start[owner[child]] + (rng.random(child.size) * pos[child]).astype(np.int64)
    src, dst = [child], [parent]
    # extra links inside customers with >= 2 identifiers
    multi = np.flatnonzero(size >= 2)
    extra_owner = np.repeat(multi, rng.poisson(1.3, multi.size))
    a = start[extra_owner] + (rng.random(extra_owner.size) * size[extra_owner]).astype(np.int64)
    b = start[extra_owner] + (rng.random(extra_owner.size) * size[extra_owner]).astype(np.int64)
    keep = a != b
    src.append(a[keep])
    dst.append(b[keep])
    # over-merging links between customers (shared / family phones)
    linked = rng.choice(customers, int(0.02 * customers), replace=False)
    other = rng.integers(0, customers, linked.size)
    src.append(start[linked] + (rng.random(linked.size) * size[linked]).astype(np.int64))
    dst.append(start[other] + (rng.random(other.size) * size[other]).astype(np.int64))
    # a few long chains of customers: what is left of hubs after shared-identifier removal
    chain_len = max(50, customers // 2000)
    for _ in range(5):
        chain = rng.choice(customers, chain_len, replace=False)
        src.append(start[chain[:-1]])
        dst.append(start[chain[1:]] + size[chain[1:]] - 1)
    src_a, dst_a = np.concatenate(src), np.concatenate(dst)
    dup = rng.choice(src_a.size, src_a.size // 10, replace=False)
    src_a, dst_a = np.concatenate([src_a, dst_a[dup]]), np.concatenate([dst_a, src_a[dup]])
    perm = rng.permutation(n)
    order = rng.permutation(src_a.size)
    return {"node_type": node_type[np.argsort(perm)], "src": perm[src_a][order], "dst": perm[dst_a][order],
            "rank": rng.integers(0, 6, src_a.size)}


# ------------------------------------------------------------------------------------------------ methods
def _run_scipy(g):
    from cdp.identity.graph import scipy_components

    return scipy_components(g["node_type"].size, g["src"], g["dst"])[0]


def _run_resolve(g):
    from cdp.identity.graph import resolve

    return resolve(g["node_type"], g["src"], g["dst"], g["rank"], TYPE_LIMITS)


def _run_networkx(g):
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(g["node_type"].size))
    graph.add_edges_from(zip(g["src"].tolist(), g["dst"].tolist()))
    return sum(1 for _ in nx.connected_components(graph))


METHODS = {"scipy csgraph (floor)": _run_scipy, "graph.resolve (array)": _run_resolve,
           "networkx connected_components": _run_networkx}


ARRAY_METHODS = ["scipy csgraph (floor)", "graph.resolve (array)"]


def _proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> float:
    """Reset this process's RSS high-water mark (Linux clear_refs "5") and return the current RSS in MiB.

    ru_maxrss cannot be used: a spawned child starts with the max RSS of the parent it was forked from.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass                                          # then VmHWM still excludes the parent (it is per mm)
    return _proc_status_mb("VmHWM")


def _child(methods: list[str], repeats: int, path: str, trace: bool, queue) -> None:
    """Run `methods` interleaved `repeats` times on the saved graph; report wall/CPU times and peak memory."""
    import cdp.identity.graph  # noqa: F401  (imports outside the timed part)
    import networkx  # noqa: F401
    import scipy.sparse.csgraph  # noqa: F401

    # one .npy per array, read straight into place (an .npz would pass through a second buffer and its
    # transient would hide the method's own peak in ru_maxrss)
    g = {f.stem: np.load(f) for f in Path(path).glob("*.npy")}
    base_mb = _reset_peak_rss()
    out = {m: {"wall": [], "cpu": [], "result": None} for m in methods}
    for _ in range(repeats):
        for m in methods:
            w0, c0 = time.perf_counter(), time.process_time()
            out[m]["result"] = METHODS[m](g)
            out[m]["cpu"].append(time.process_time() - c0)
            out[m]["wall"].append(time.perf_counter() - w0)
            if not isinstance(out[m]["result"], int):      # a Resolution: count outside the timed part
                out[m]["result"] = out[m]["result"].n_components
    rss_mb = _proc_status_mb("VmHWM") - base_mb
    traced = None
    if trace:                                         # numpy allocations are traced; cheap for array code
        tracemalloc.start()
        METHODS[methods[0]](g)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    queue.put({"methods": out, "rss_mb": rss_mb, "traced_mb": traced})


def run_child(methods: list[str], repeats: int, path: str, trace: bool = False) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(methods, repeats, path, trace, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def violating_share(g) -> tuple[int, int, int]:
    """(components, components breaking a limit, edges in them): what the sequential part has to do."""
    from cdp.identity.graph import scipy_components

    n_comp, comp = scipy_components(g["node_type"].size, g["src"], g["dst"])
    bad = np.zeros(n_comp, dtype=bool)
    for t in np.flatnonzero(TYPE_LIMITS > 0):
        bad |= np.bincount(comp[g["node_type"] == t], minlength=n_comp) > TYPE_LIMITS[t]
    return n_comp, int(bad.sum()), int(bad[comp[g["src"]]].sum())


def write_section(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if HEADING in doc:
        head, rest = doc.split(HEADING, 1)
        nxt = rest.find("\n## ")
        doc = head + text.rstrip("\n") + "\n" + (rest[nxt:] if nxt >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc if doc.endswith("\n") else doc + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-networkx", action="store_true")
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds of scipy and resolve")
    parser.add_argument("--no-doc", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for customers in args.customers:
            g = identity_edges(customers, args.seed)
            path = Path(tmp) / f"g{customers}"
            path.mkdir()
            for name, arr in g.items():
                np.save(path / f"{name}.npy", arr)
            path = str(path)
            n_comp, n_bad, bad_edges = violating_share(g)
            # timing: scipy and resolve interleaved in one process, so load changes hit both alike
            timing = run_child(ARRAY_METHODS, args.repeats, path)["methods"]
            results = {}
            for method in METHODS:
                if method.startswith("networkx") and args.no_networkx:
                    continue
                # memory: one process per method (its own max RSS); networkx is timed here, once
                mem = run_child([method], 1, path, trace=method in ARRAY_METHODS)
                r = timing[method] if method in timing else mem["methods"][method]
                results[method] = {**r, "rss_mb": mem["rss_mb"], "traced_mb": mem["traced_mb"]}
                print(f"{customers:>9,} customers {method:32s} best CPU {min(r['cpu']):7.2f} s  "
                      f"wall {min(r['wall']):7.2f} s  components {r['result']:,}  "
                      f"peak RSS +{mem['rss_mb']:.0f} MiB", flush=True)
            floor = min(results["scipy csgraph (floor)"]["cpu"])
            for method, r in results.items():
                traced = f"{r['traced_mb']:.0f}" if r["traced_mb"] is not None else "-"
                rows.append(f"| {customers:,} | {g['node_type'].size:,} | {g['src'].size:,} | {method} | "
                            f"{min(r['cpu']):.2f} | {np.median(r['cpu']):.2f} | {min(r['wall']):.2f} | "
                            f"{min(r['cpu']) / floor:.1f}x | {r['rss_mb']:.0f} | {traced} | {r['result']:,} |")
            rows.append(f"| {customers:,} | | | components breaking a limit (sequential part) | | | | | | | "
                        f"{n_bad:,} of {n_comp:,} ({n_bad / n_comp:.1%}), {bad_edges:,} edges |")
    load_after = os.getloadavg()[0]
    text = "\n".join([
        HEADING, "",
        f"`python -m benchmarks.bench_identity_components` on {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {dt.date.today()} (load average {load_before:.1f} -> "
        f"{load_after:.1f}: the machine is shared by several sessions, so wall times are inflated and noisy; CPU "
        "time of the process is the measure). Same seeded identity-like integer edge list for all methods; each in its own process.", "",
        "| customers | nodes | edges | method | best CPU s | median CPU s | best wall s | CPU vs scipy | "
        "peak RSS MiB | traced MiB | components |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        "`graph.resolve` = scipy components + type counts per component + the sequential constrained union-find "
        "on the components that break a limit only. Peak RSS = rise of the process's RSS high-water mark "
        "(VmHWM) above the loaded edge list; traced = tracemalloc peak of numpy allocations. Target: resolve within 3x of scipy.", ""])
    print(text)
    if not args.no_doc:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
