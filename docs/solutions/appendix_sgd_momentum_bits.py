"""Appendix, exercise 1: check the bit-equality claim yourself, on SGD with momentum.

tests/test_fast.py trains whole models through ``npnet.fast.enable`` with Adam and with
plain SGD. Not covered there: SGD with momentum, Nesterov and weight decay, whose
velocities ``FastSGD`` places beside their parameters, under the cosine schedule, which
rewrites ``optimizer.lr`` before every step. The claim to test: the same operations on the
same operands in the same order, so the same bits. Nothing is allowed a tolerance:
``np.testing.assert_array_equal``, and ``==`` on the lists of losses.

What the fast path changes here, and why none of it touches a value:

* Dense -> FastDense: y = x W, then y += b (the same additions, in place); the gradients
  written with out= (the same BLAS call); the first layer skips dL/dx, which nothing reads.
* SGD -> FastSGD: the update is inherited unchanged; only the velocity arrays are placed.
* The parameters are copied into placed arrays: a copy is exact.

Run from anywhere: ``python docs/solutions/appendix_sgd_momentum_bits.py``.
"""

import numpy as np

from npnet import fast
from npnet.autoencoder import DenoisingAutoencoder
from npnet.optim import SGD
from npnet.train import cosine_decay, fit
from npnet.vae import VAE

# 100 examples: 6 batches of 16 an epoch, and fit drops the other 4.
x = np.random.default_rng(0).random((100, 30), dtype=np.float32)


def train(make_model, nesterov, use_fast):
    model = make_model()
    optimizer = SGD(model.params, lr=1e-3, momentum=0.9, nesterov=nesterov, weight_decay=1e-4)
    trainer = fast.enable(model, optimizer) if use_fast else model
    history = fit(trainer, optimizer, x, epochs=3, batch_size=16, seed=0,
                  lr_schedule=cosine_decay, progress=False, log=lambda line: None)
    velocities = {name: slots["velocity"] for name, slots in optimizer.state.items()}
    return history["train_loss"], model.params, velocities, type(optimizer).__name__


models = {
    "DAE": lambda: DenoisingAutoencoder(30, (16, 8), 4, rng=0),
    "VAE": lambda: VAE(30, (16, 8), 3, rng=0),
}
for model_name, make_model in models.items():
    for nesterov in (False, True):
        core, quick = (train(make_model, nesterov, use_fast) for use_fast in (False, True))
        assert core[3] == "SGD" and quick[3] == "FastSGD"  # the fast path did run
        assert quick[0] == core[0]  # every epoch's loss, to the last bit
        assert quick[1].keys() == core[1].keys() and quick[2].keys() == core[2].keys()
        for key in core[1]:
            np.testing.assert_array_equal(quick[1][key], core[1][key])
            np.testing.assert_array_equal(quick[2][key], core[2][key])
        print(f"{model_name}, SGD momentum 0.9, nesterov={nesterov!s:5s}: losses "
              f"{[f'{loss:.4f}' for loss in core[0]]}, parameters and velocities: same bits")
