"""Benchmark ganlab's FID/KID pipeline against pytorch-fid's plain file route, side by side.

Both routes run the same network (pytorch-fid's ``InceptionV3``, FID variant, pool3) with the
same weights on the same images:

* ganlab: uint8 tensors already in memory (as ``ganlab eval`` has them after Lab -> RGB) ->
  ``FeatureExtractor`` (batched, channels_last, inference mode) -> mean/covariance -> FID through
  the symmetric eigendecomposition, plus KID.
* pytorch-fid: the images saved as PNG files -> ``calculate_activation_statistics`` (PIL decode,
  ``ToTensor``, DataLoader, batch 50) -> ``calculate_frechet_distance`` (``scipy.linalg.sqrtm``).

It reports images/s of each, the time of each Fréchet computation at 2048 dimensions, how far
the two FIDs differ, and the agreement of ganlab's Fréchet distance with the scipy route on
random features. Without the Inception weights (offline) the network gets random weights: the
timings are the same (same graph, same arithmetic); the FID values are then meaningless, and
the output says so.

    python benchmarks/bench_fid.py --n 500 --size 64
    python benchmarks/bench_fid.py --n 2000 --size 256 --device cuda --inception-weights pt_inception-2015-12-05-6726825d.pth
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ganlab.metrics.fid import fid_kid  # noqa: E402
from ganlab.metrics.frechet import FeatureStats, frechet_distance  # noqa: E402
from ganlab.metrics.inception import (  # noqa: E402
    FeatureExtractor,
    implementation_name,
    inception_status,
    load_inception,
    pytorch_fid_inception,
)


def make_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth colour fields with rectangles and noise: image-like, deterministic."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=(size, size), mode="bicubic")
    for _ in range(4):
        y0, x0 = torch.randint(0, size // 2, (2,), generator=g).tolist()
        x[:, :, y0 : y0 + size // 4, x0 : x0 + size // 4] = torch.rand(n, 3, 1, 1, generator=g)
    x = x + 0.04 * torch.randn(x.shape, generator=g)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def save_pngs(images: torch.Tensor, folder: Path) -> list[str]:
    from PIL import Image

    files = []
    for i, img in enumerate(images):
        p = folder / f"{i:05d}.png"
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(p)
        files.append(str(p))
    return files


def random_inception_state() -> dict:
    import torchvision

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    # Scaled default init keeps activations finite and non-vanishing through the network.
    return {k: (v * 2.45 if v.ndim == 4 else v) for k, v in net.state_dict().items()}


def frechet_agreement(seed: int = 0) -> list[dict]:
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(seed)
    rows = []
    for n, d in ((500, 64), (2000, 512), (3000, 2048), (1000, 2048)):
        a = rng.normal(size=(n, d))
        b = rng.normal(size=(n, d)) * 1.2 + 0.1 + 0.3 * np.tanh(rng.normal(size=(n, d)))
        s1, s2 = FeatureStats.from_features(a), FeatureStats.from_features(b)
        t0 = time.perf_counter()
        ours = frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma)
        t1 = time.perf_counter()
        ref = calculate_frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma)
        t2 = time.perf_counter()
        rows.append(
            {"n": n, "d": d, "ours": ours, "scipy": ref, "rel_diff": abs(ours - ref) / abs(ref),
             "eigh_s": t1 - t0, "sqrtm_s": t2 - t1}
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="images per set (real and generated)")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=100, help="ganlab's batch (pytorch-fid uses its default 50)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="pytorch-fid DataLoader workers")
    ap.add_argument("--inception-weights", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    from pytorch_fid.fid_score import calculate_activation_statistics, calculate_frechet_distance

    path, reason = inception_status(args.inception_weights, download=False)
    if path is not None:
        ours_fe = load_inception(path, device=device, download=False, batch_size=args.batch_size)
        weights = f"FID weights ({path.name})"
    else:
        print(f"note: {reason}", file=sys.stderr)
        print("note: timing with random weights (same network and arithmetic); FID values are meaningless", file=sys.stderr)
        ours_fe = FeatureExtractor(
            pytorch_fid_inception(random_inception_state()).to(device),
            implementation=implementation_name() + ", RANDOM weights",
            batch_size=args.batch_size,
        )
        weights = "random (timing only)"
    lib_model = ours_fe.net  # the very same module object: same weights, same graph

    real = make_images(args.n, args.size, seed=1)
    fake = make_images(args.n, args.size, seed=2)
    results: dict = {
        "n": args.n, "size": args.size, "device": str(device), "threads": torch.get_num_threads(),
        "weights": weights, "implementation": ours_fe.implementation,
    }
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "real").mkdir()
        (Path(tmp) / "fake").mkdir()
        real_files = save_pngs(real, Path(tmp) / "real")
        fake_files = save_pngs(fake, Path(tmp) / "fake")

        # Warm-up both routes (allocator, cudnn, thread pools) on a few images.
        ours_fe(real[: min(8, args.n)])
        if device.type == "cuda":
            torch.cuda.synchronize()

        # ganlab: uint8 tensors -> features -> FID (eigh) + KID
        t0 = time.perf_counter()
        f_real = ours_fe(real).cpu().numpy()
        f_fake = ours_fe(fake).cpu().numpy()
        t1 = time.perf_counter()
        res = fid_kid(f_real, f_fake, seed=0)
        t2 = time.perf_counter()

        # pytorch-fid: PNG files -> activation statistics -> FID (sqrtm)
        t3 = time.perf_counter()
        mu1, s1 = calculate_activation_statistics(real_files, lib_model, 50, 2048, device, args.workers)
        mu2, s2 = calculate_activation_statistics(fake_files, lib_model, 50, 2048, device, args.workers)
        t4 = time.perf_counter()
        lib_fid = calculate_frechet_distance(mu1, s1, mu2, s2)
        t5 = time.perf_counter()

    images = 2 * args.n
    results["ganlab"] = {
        "features_s": t1 - t0, "img_per_s": images / (t1 - t0), "fid_kid_maths_s": t2 - t1,
        "total_s": t2 - t0, "fid": res["fid"], "kid": res["kid"],
    }
    results["pytorch_fid"] = {
        "features_s": t4 - t3, "img_per_s": images / (t4 - t3), "fid_maths_s": t5 - t4,
        "total_s": t5 - t3, "fid": float(lib_fid),
    }
    results["fid_rel_diff"] = abs(res["fid"] - lib_fid) / max(abs(lib_fid), 1e-12)
    results["frechet_vs_scipy"] = frechet_agreement()

    g, p = results["ganlab"], results["pytorch_fid"]
    print(f"FID/KID throughput: {args.n} real + {args.n} generated images, {args.size}x{args.size} px, "
          f"{device} ({results['threads']} threads), weights: {weights}")
    print(f"  {'route':<44}{'img/s':>9}{'features s':>12}{'maths s':>10}{'total s':>10}")
    print(f"  {'ganlab (uint8 tensors, batch %d, channels_last)' % args.batch_size:<44}{g['img_per_s']:>9.1f}"
          f"{g['features_s']:>12.2f}{g['fid_kid_maths_s']:>10.2f}{g['total_s']:>10.2f}   (FID + KID)")
    print(f"  {'pytorch-fid (PNG files, batch 50, %d workers)' % args.workers:<44}{p['img_per_s']:>9.1f}"
          f"{p['features_s']:>12.2f}{p['fid_maths_s']:>10.2f}{p['total_s']:>10.2f}   (FID only)")
    print(f"  speed-up of the feature pass: {g['img_per_s'] / p['img_per_s']:.2f}x; "
          f"end to end (ganlab incl. KID): {p['total_s'] / g['total_s']:.2f}x")
    print(f"  FID ganlab {g['fid']:.6g} vs pytorch-fid {p['fid']:.6g}: relative difference {results['fid_rel_diff']:.2e}")
    print("Fréchet distance, symmetric eigendecomposition (float64) vs scipy.linalg.sqrtm route, random features:")
    for r in results["frechet_vs_scipy"]:
        print(f"  n={r['n']:<5} d={r['d']:<5} ours={r['ours']:<14.8g} scipy={r['scipy']:<14.8g} "
              f"rel.diff={r['rel_diff']:.1e}  time {r['eigh_s']:.2f}s vs {r['sqrtm_s']:.2f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
