"""Chapter 9, exercise 1: the shapes of a three-convolution encoder and its mirror.

With k = 3, s = 2, p = 1 each convolution maps a side H to (H + 2 - 3) // 2 + 1::

    28 -> 27 // 2 + 1 = 14 -> 13 // 2 + 1 = 7 -> 6 // 2 + 1 = 4

so Flatten gives 4 * 4 * 64 = 1024 numbers per image. A Conv2D(C, F, 3) has 3 * 3 * C * F
weights and F biases: 160, 4,640 and 18,496; the Dense(1024, 10) has 10,250. For a batch of
128, the third convolution's cols has one row per output pixel, 128 * 4 * 4 = 2048, and one
column per patch entry, 3 * 3 * 32 = 288.

Rows never read: (H + 2p - k) % s of the padded image, at the bottom (and as many columns
at the right): 1 for H = 28 and H = 14, 0 for H = 7. The unread row is the padding, so every
real pixel is read.

The decoder's ConvTranspose2D layers get output_padding = (H + 2p - k) % s of the encoder
layer they mirror: 0 (4 -> 7), 1 (7 -> 14), 1 (14 -> 28), in decoder order. With 1 for the
first one as well, (4 - 1) 2 + 3 - 2 + 1 = 8, then 16 and 32: 1024 pixels, not 784.

Run from anywhere: ``python docs/solutions/09_predict_shapes.py``.
"""

import numpy as np

from npnet.conv import (
    Conv2D,
    ConvTranspose2D,
    col2im,
    conv_decoder,
    conv_encoder,
    conv_transpose_output_size,
    im2col,
)
from npnet.layers import Dense

encoder = conv_encoder(784, (16, 32, 64), (), 10, rng=0)
decoder = conv_decoder(10, (16, 32, 64), (), 784, output_activation="sigmoid", rng=0)

# CHECK 1: the sides, the Flatten width and the parameters, from a forward pass of 128 images.
h = np.zeros((128, 784), np.float32)
sides, params = [], []
for layer in encoder.layers:
    h = layer.forward(h)
    if isinstance(layer, Conv2D):
        sides.append(h.shape[1])
    if isinstance(layer, Conv2D | Dense):
        params.append(sum(value.size for value in layer.params.values()))
    print(f"{type(layer).__name__:8s} {h.shape}")
assert sides == [14, 7, 4]
assert encoder.layers[-2].forward(np.zeros((128, 4, 4, 64))).shape == (128, 1024)  # Flatten
assert params == [160, 4_640, 18_496, 10_250], params

# CHECK 2: the third convolution's cols, as Conv2D.forward kept it for the backward pass.
third = [layer for layer in encoder.layers if isinstance(layer, Conv2D)][2]
cols, _ = third.cache
assert cols.shape == (2048, 288), cols.shape

# CHECK 3: how many patches read each padded pixel (col2im of ones): the last padded row and
# column are unread for H = 28 and 14 (they are padding), and every real pixel is read.
for side, unread in ((28, 1), (14, 1), (7, 0)):
    padded = side + 2
    patches = im2col(np.zeros((1, padded, padded, 1)), 3, 2)
    reads = col2im(np.ones_like(patches), (padded, padded), 2)[0, :, :, 0]
    assert (reads[1:-1, 1:-1] > 0).all(), side  # every real pixel
    assert (reads[-1] == 0).all() == bool(unread) and (side + 2 - 3) % 2 == unread
    print(f"H = {side:2d}: {unread} padded row unread, every real pixel read")

# CHECK 4: the decoder's output paddings, and what 1 everywhere would give.
paddings = [layer.output_padding for layer in decoder.layers
            if isinstance(layer, ConvTranspose2D)]
assert paddings == [0, 1, 1], paddings
assert decoder.forward(np.zeros((3, 10), np.float32)).shape == (3, 784)
side = 4
for _ in range(3):
    side = conv_transpose_output_size(side, 3, 2, 1, output_padding=1)
assert side == 32 and side * side == 1024
print("28 -> 14 -> 7 -> 4, 1024 wide; output_padding 0, 1, 1 back to 28: checked")
