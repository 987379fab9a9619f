"""npnet: autoencoders in NumPy with hand-written backpropagation.

The package is in three groups, and imports run one way (``tests/test_layout.py``):

* **the teaching core**, what the docs derive and a student reads: ``layers``, ``losses``,
  ``optim``, ``autoencoder``, ``reparameterize``, ``vae``, ``importance``, ``patches``,
  ``conv``, ``gradcheck``, and ``checks``, where their argument checks live. Each imports
  NumPy and other core modules only, and is written as the formulas it implements.
* **the plumbing** that runs experiments: ``data``, ``io``, ``train``, ``analysis``,
  ``plotting`` (matplotlib, imported only when asked for) and ``cli``. It uses the core.
* **the fast path**, ``npnet.fast``: opt-in speed that gives the core's numbers bit for bit,
  entered through ``npnet.fast.enable(model, optimizer)``. The core never imports it.

The names most programs need are importable from ``npnet`` directly.
"""

from .autoencoder import DenoisingAutoencoder
from .data import MNISTError, load_mnist
from .gradcheck import check_gradients, check_layer
from .io import load_params, save_params
from .layers import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh, mlp
from .losses import bce_with_logits, mse_loss
from .optim import SGD, Adam
from .train import fit
from .vae import VAE, Reparameterize

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "DenoisingAutoencoder",
    "Dense",
    "LeakyReLU",
    "MNISTError",
    "ReLU",
    "Reparameterize",
    "SGD",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "VAE",
    "bce_with_logits",
    "check_gradients",
    "check_layer",
    "fit",
    "load_mnist",
    "load_params",
    "mlp",
    "mse_loss",
    "save_params",
]
