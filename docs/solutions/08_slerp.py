r"""Chapter 8, exercise 3: spherical interpolation (slerp) between two codes.

For codes z_a, z_b (J,) at an angle Omega,

    cos Omega = z_a . z_b / (|z_a| |z_b|),    0 <= Omega <= pi,

slerp moves along the great circle through them (Shoemake, 1985; White, *Sampling
Generative Networks*, 2016):

    z(tau) = sin((1 - tau) Omega) / sin(Omega) z_a + sin(tau Omega) / sin(Omega) z_b,
    tau in [0, 1].

Properties, for the check below.

* Endpoints: tau = 0 gives z_a, tau = 1 gives z_b (sin 0 = 0).
* Equal angles: if |z_a| = |z_b| = r, then |z(tau)| = r for every tau, and the angle between
  z_a and z(tau) is tau Omega, so the I + 1 steps between tau_i = i / (I + 1) all turn by the same
  angle Omega / (I + 1). (In the plane of z_a and z_b, with z_a = r e_1 and
  z_b = r (cos Omega e_1 + sin Omega e_2), the formula gives z(tau) = r (cos(tau Omega) e_1 +
  sin(tau Omega) e_2), by the sine subtraction formula.)
* The straight line instead has, for |z_a| = |z_b| = r,
  |z(tau)|^2 = r^2 (1 - 2 tau (1 - tau) (1 - cos Omega)): at tau = 1/2, r cos(Omega / 2), which is
  r / sqrt(2) for the nearly orthogonal codes that random codes in J = 20 dimensions are.
* Collinear codes. As Omega -> 0, sin(c Omega) / sin(Omega) -> c, and slerp becomes the
  straight line: the formula's 0/0 is replaced by that limit when sin Omega is tiny. For
  opposite codes (Omega = pi) every great circle through both is as good as any other, so
  there is no single answer: slerp refuses them. So does it a zero code, which has no
  direction.

Shapes: z_a, z_b (J,) or (pairs, J), tau (I,); the result (I, J) or (pairs, I, J), the layout of
npnet.analysis.interpolate_codes, which slerp_codes mirrors with the same tau_i = i / 8.

The figure: a tiny VAE trained for a few hundred steps on synthetic 8 x 8 images (a
horizontal or a vertical bar), then both decoded paths between a horizontal and a vertical
bar, drawn into npnet_slerp_vs_linear.png in the system's temporary folder (never into the
repository).
"""

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from npnet.analysis import interpolate_codes, interpolation_times  # noqa: E402
from npnet.optim import Adam  # noqa: E402
from npnet.plotting import image_grid_figure, save_figure  # noqa: E402
from npnet.vae import VAE  # noqa: E402


def slerp(z_a: np.ndarray, z_b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points z(tau) on the great circle from z_a to z_b: (J,), (J,), (I,) -> (I, J), or
    (pairs, J), (pairs, J), (I,) -> (pairs, I, J)."""
    z_a, z_b = np.asarray(z_a, dtype=np.float64), np.asarray(z_b, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[:, None]  # (n, 1)
    norm_a = np.linalg.norm(z_a, axis=-1, keepdims=True)  # (..., 1)
    norm_b = np.linalg.norm(z_b, axis=-1, keepdims=True)
    if np.any(norm_a == 0) or np.any(norm_b == 0):
        raise ValueError("slerp: a zero code has no direction")
    cos = np.clip(np.sum(z_a * z_b, axis=-1, keepdims=True) / (norm_a * norm_b), -1, 1)
    omega = np.arccos(cos)[..., None, :]  # (..., 1, 1)
    sin = np.sin(omega)
    if np.any((sin < 1e-6) & (cos[..., None, :] < 0)):
        raise ValueError("slerp: opposite codes lie on infinitely many great circles")
    nearly_parallel = sin < 1e-6
    safe_sin = np.where(nearly_parallel, 1.0, sin)
    weight_a = np.where(nearly_parallel, 1 - t, np.sin((1 - t) * omega) / safe_sin)
    weight_b = np.where(nearly_parallel, t, np.sin(t * omega) / safe_sin)
    return weight_a * z_a[..., None, :] + weight_b * z_b[..., None, :]


def slerp_codes(z_a: np.ndarray, z_b: np.ndarray, n_interpolates: int = 7) -> np.ndarray:
    """The interior points at tau_i = i / (I + 1), like interpolate_codes, on the great circle."""
    return slerp(z_a, z_b, interpolation_times(n_interpolates))


def angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = np.sum(u * v, axis=-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.arccos(np.clip(cos, -1, 1))


rng = np.random.default_rng(0)
J = 20

# Endpoints, and equal angular steps at constant norm for codes of equal norm.
z_a, z_b = rng.standard_normal(J), rng.standard_normal(J)
z_b *= np.linalg.norm(z_a) / np.linalg.norm(z_b)  # the same norm r
r, omega = np.linalg.norm(z_a), angle(z_a, z_b)
ends = slerp(z_a, z_b, [0.0, 1.0])
np.testing.assert_allclose(ends, [z_a, z_b], atol=1e-12)
path = slerp(z_a, z_b, np.arange(9) / 8)  # t = 0, 1/8, ..., 1: (9, J)
np.testing.assert_allclose(np.linalg.norm(path, axis=1), r, rtol=1e-12)
np.testing.assert_allclose(angle(path[:-1], path[1:]), omega / 8, rtol=1e-9)
np.testing.assert_allclose(angle(z_a, path), np.arange(9) / 8 * omega, atol=1e-7)

# The straight line between the same codes: |z(1/2)| = r cos(Omega / 2).
line = np.concatenate([[z_a], interpolate_codes(z_a, z_b, 7), [z_b]])
np.testing.assert_allclose(np.linalg.norm(line[4]), r * np.cos(omega / 2), rtol=1e-12)

# Two random N(0, I) codes in 20 dimensions, norms along both paths.
z_a, z_b = rng.standard_normal(J), rng.standard_normal(J)
t = np.arange(9) / 8
linear_norms = np.linalg.norm((1 - t)[:, None] * z_a + t[:, None] * z_b, axis=1)
slerp_norms = np.linalg.norm(slerp(z_a, z_b, t), axis=1)
print(f"angle between the codes {np.degrees(angle(z_a, z_b)):.0f} degrees")
print("|z| along the line: ", linear_norms.round(2))
print("|z| along slerp:    ", slerp_norms.round(2))
low, high = sorted(np.linalg.norm([z_a, z_b], axis=1))
assert np.all((slerp_norms >= low - 1e-9) & (slerp_norms <= high + 1e-9))
assert linear_norms[4] < 0.8 * low

# Over many pairs, the midpoints: the line shrinks them by about 1/sqrt(2), slerp does not.
pairs = rng.standard_normal((2000, 2, J))
middle_line = np.linalg.norm(interpolate_codes(pairs[:, 0], pairs[:, 1], 1)[:, 0], axis=1)
middle_slerp = np.linalg.norm(slerp_codes(pairs[:, 0], pairs[:, 1], 1)[:, 0], axis=1)
ends = np.linalg.norm(pairs, axis=2).mean()
print(f"mean |z|: ends {ends:.2f}, line midpoints {middle_line.mean():.2f}, "
      f"slerp midpoints {middle_slerp.mean():.2f}")
assert abs(middle_line.mean() / ends - 1 / np.sqrt(2)) < 0.03
assert abs(middle_slerp.mean() / ends - 1) < 0.03

# Collinear codes: the parallel case is the straight line, the opposite case is refused.
z = rng.standard_normal(J)
np.testing.assert_allclose(slerp_codes(z, 3 * z), interpolate_codes(z, 3 * z), rtol=1e-12)
for bad in (-2 * z, np.zeros(J)):
    try:
        slerp_codes(z, bad)
    except ValueError as error:
        print("refused:", error)
    else:
        raise AssertionError("slerp accepted codes without a unique great circle")
assert slerp_codes(pairs[:5, 0], pairs[:5, 1]).shape == (5, 7, J)  # batched, like the line

# The figure: a tiny VAE on 8 x 8 bars, both paths from a horizontal to a vertical bar.
bars = np.zeros((16, 8, 8), dtype=np.float32)
for i in range(8):
    bars[i, i, :] = 1  # horizontal bar in row i
    bars[8 + i, :, i] = 1  # vertical bar in column i
data = bars[rng.integers(0, 16, 512)].reshape(512, 64)
data = np.clip(data * 0.9 + 0.05 + 0.03 * rng.standard_normal(data.shape), 0, 1)
data = data.astype(np.float32)
model = VAE(64, hidden=(64, 32), latent=J, rng=0)
optimizer = Adam(model.params, lr=3e-3)
for _ in range(400):
    model.train_step(data[rng.integers(0, 512, 64)], rng=rng)
    optimizer.step(model.grads)

mu, _ = model.encode(bars[[3, 12]].reshape(2, 64))  # a horizontal and a vertical bar
paths = {"line": interpolate_codes(mu[0], mu[1], 7), "slerp": slerp_codes(mu[0], mu[1], 7)}
rows, peak_uncertainty = [], {}
for name, codes in paths.items():
    decoded = model.decode(codes.astype(np.float32))  # (7, 64) Bernoulli means
    pixels = np.clip(decoded.astype(np.float64), 1e-7, 1 - 1e-7)
    entropy = -np.sum(pixels * np.log(pixels) + (1 - pixels) * np.log(1 - pixels), axis=1)
    print(f"{name:5s} |z| {np.linalg.norm(codes, axis=1).round(2)}, "
          f"decoder's uncertainty (nats) {entropy.round(1)}")
    peak_uncertainty[name] = entropy.max()
    rows.append(np.concatenate([bars[[3]].reshape(1, 64), decoded, bars[[12]].reshape(1, 64)]))
low, high = sorted(np.linalg.norm(mu, axis=1))
slerp_norms = np.linalg.norm(paths["slerp"], axis=1)
assert np.all((slerp_norms >= low - 1e-5) & (slerp_norms <= high + 1e-5))
assert np.linalg.norm(paths["line"], axis=1).min() < 0.8 * low
# In this run, the short codes in the middle of the line decode to grayer images.
assert peak_uncertainty["slerp"] < peak_uncertainty["line"]
figure = image_grid_figure(
    np.stack(rows), row_labels=["line", "slerp"],
    column_titles=["A"] + [f"{k}/8" for k in range(1, 8)] + ["B"],
)
written = save_figure(figure, Path(tempfile.gettempdir()) / "npnet_slerp_vs_linear.png")
assert written.exists() and written.stat().st_size > 0
print(f"wrote {written}")
