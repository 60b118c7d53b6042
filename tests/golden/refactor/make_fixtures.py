"""NumPy reference of the spectral refactor (docs/seed-behaviour.md §5.1) on small fixtures.

Writes refactor_cases.json next to this file: fp32-representable inputs (B, A, their Adam
moments) for three LoRA pairs (two of one shape, one of another, so the C++ side batches a
group of two and a group of one) and, per settings case, the refactored B', A', mB', mA',
v (unchanged or zeroed) and the spectra, computed in float64. Sign conventions as
kernels/linalg_backend.h fixes them: R's diagonal >= 0; the largest-magnitude entry of each
column of U_c positive (V_c flipped with it).

Run: /work/venv/bin/python tests/golden/refactor/make_fixtures.py   (CI runs no Python.)
"""
import json
import os

import numpy as np

GUARD = 1e-12  # 1/(h + 1e-12), §5.1 step 4


def qr_positive(x):
    q, r = np.linalg.qr(x)  # reduced
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return q * signs, r * signs[:, None]


def svd_signed(c):
    u, s, vt = np.linalg.svd(c)
    for k in range(u.shape[1]):
        if u[np.argmax(np.abs(u[:, k])), k] < 0:
            u[:, k] *= -1
            vt[k, :] *= -1
    return u, s, vt


def spectrum(s, case):
    s = s.copy()
    if case["damping_eps"] > 0:
        s = s + case["damping_eps"]
    if case["clip_min_sigma"] > 0:
        s = np.maximum(s, case["clip_min_sigma"])
    if case["balanced"]:
        s = (1 - case["lambda"]) * s + case["lambda"] * s.mean()
    return s


def refactor(pair, case):
    b, a, ma, mb = (pair[k].astype(np.float64) for k in ("b", "a", "ma", "mb"))
    qb, rb = qr_positive(b)
    qa, ra = qr_positive(a.T)
    u, s, vt = svd_signed(rb @ ra.T)
    gaps = np.abs(np.diff(s)) / s[0]
    assert gaps.min() > 0.05, "fixture spectrum too degenerate for a sign-stable reference"
    tilde = spectrum(s, case)
    h = np.sqrt(np.maximum(tilde, 0))
    out = {"b": qb @ u @ np.diag(h), "a": np.diag(h) @ vt @ qa.T, "ma": ma, "mb": mb,
           "va": pair["va"].astype(np.float64), "vb": pair["vb"].astype(np.float64),
           "spectrum_before": s, "spectrum_after": h * h}
    if case["preserve_momentum"]:
        inv = np.diag(1 / (h + GUARD))
        out["mb"] = mb @ ra.T @ vt.T @ inv
        out["ma"] = inv @ u.T @ rb @ ma
    if case["clear_momentum"]:
        for k in ("ma", "mb", "va", "vb"):
            out[k] = np.zeros_like(out[k])
    return out


def main():
    rng = np.random.default_rng(20261202)
    shapes = [(12, 10, 4), (12, 10, 4), (6, 16, 3)]  # (out, in, r)
    pairs = []
    for i, (o, n, r) in enumerate(shapes):
        pairs.append({
            "name": f"model.layers.{i}.self_attn.q_proj",
            "b": rng.standard_normal((o, r)).astype(np.float32),
            "a": (0.3 * rng.standard_normal((r, n))).astype(np.float32),
            "mb": (1e-2 * rng.standard_normal((o, r))).astype(np.float32),
            "ma": (1e-2 * rng.standard_normal((r, n))).astype(np.float32),
            "vb": (1e-4 * rng.random((o, r))).astype(np.float32),
            "va": (1e-4 * rng.random((r, n))).astype(np.float32),
        })
    cases = [
        {"name": "exact", "balanced": False, "lambda": 0.0, "damping_eps": 0.0,
         "clip_min_sigma": 0.0, "preserve_momentum": True, "clear_momentum": False},
        {"name": "balanced_preserve", "balanced": True, "lambda": 0.7, "damping_eps": 0.0,
         "clip_min_sigma": 0.0, "preserve_momentum": True, "clear_momentum": False},
        {"name": "exact_damped_clipped", "balanced": False, "lambda": 0.0, "damping_eps": 0.05,
         "clip_min_sigma": 0.5, "preserve_momentum": False, "clear_momentum": False},
        {"name": "balanced_clear", "balanced": True, "lambda": 1.0, "damping_eps": 0.0,
         "clip_min_sigma": 0.0, "preserve_momentum": True, "clear_momentum": True},
    ]
    doc = {"pairs": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in p.items()}
                     for p in pairs],
           "cases": []}
    for case in cases:
        outs = [refactor(p, case) for p in pairs]
        doc["cases"].append({**case, "expected": [{k: v.tolist() for k, v in o.items()}
                                                  for o in outs]})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "refactor_cases.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
