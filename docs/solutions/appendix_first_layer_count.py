"""Appendix, exercise 4: what skipping dL/dx in the first layer saves, in multiply-adds.

A Dense layer D_in -> D_out on a batch of N, counted in multiply-adds (the bias adds no
products)::

    forward   y  = x W          (N, D_in) (D_in, D_out):  N D_in D_out
    backward  dW = x^T dout     (D_in, N) (N, D_out):     N D_in D_out
              dx = dout W^T     (N, D_out) (D_out, D_in): N D_in D_out

so a layer's backward is two equal products, and skipping dx halves it. For a chain of
Dense layers with S = sum over layers of D_in D_out, a training step costs 3 S per image;
the skip saves the first layer's D_0 D_1, the fraction D_0 D_1 / (3 S). It is largest
when the first layer dominates S: a single layer saves 1/3 of its step, and no model more.

The default DAE, 784 -> 512 -> 128 -> 16 -> 128 -> 512 -> 784:
S = 401,408 + 65,536 + 2,048 + 2,048 + 65,536 + 401,408 = 937,984, 3 S = 2,813,952, of which
the skip saves 401,408 = 1/7.01: the appendix's numbers. The default VAE,
784 -> 512 -> 256 -> 40 (mu and logvar) and 20 -> 256 -> 512 -> 784, has S = 1,080,320 and
saves 401,408 of 3,240,960, 12.4 %: less, since its middle layers are wider.

Run from anywhere: ``python docs/solutions/appendix_first_layer_count.py``.
"""

import numpy as np

from npnet import fast
from npnet.autoencoder import DenoisingAutoencoder
from npnet.optim import Adam
from npnet.vae import VAE


def multiply_adds_per_image(model):
    """(3 S, the first layer's D_in D_out), read from the model's weight shapes."""
    products = [w.shape[0] * w.shape[1] for key, w in model.params.items() if key.endswith(".W")]
    return 3 * sum(products), products[0]  # params list the encoder's first layer first


for name, model, expected_total in (("DAE", DenoisingAutoencoder(rng=0), 2_813_952),
                                    ("VAE", VAE(rng=0), 3_240_960)):
    total, saved = multiply_adds_per_image(model)
    print(f"default {name}: {total:,} multiply-adds per image, the skip saves {saved:,} "
          f"({saved / total:.1%}, 1/{total / saved:.2f})")
    assert total == expected_total and saved == 784 * 512

    # The fast path really skips it: the first layer's backward returns None, the others
    # still return dL/dx.
    fast.enable(model, Adam(model.params))
    first, second = model.encoder.layers[0], model.encoder.layers[2]
    x = np.random.default_rng(0).random((2, 784), dtype=np.float32)
    hidden = first.forward(x)
    second.forward(hidden)
    assert first.backward(np.ones_like(hidden)) is None
    assert second.backward(np.ones((2, second.out_features), np.float32)).shape == hidden.shape

# The smallest autoencoder, two equal layers: half of one backward out of 3 S = 1/6.
single = DenoisingAutoencoder(784, (), 16, rng=0)  # 784 -> 16 -> 784, two layers
total, saved = multiply_adds_per_image(single)
print(f"784 -> 16 -> 784: the skip saves {saved / total:.1%}")
assert saved / total == 1 / 6
