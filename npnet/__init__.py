"""npnet: autoencoders in NumPy with hand-written backpropagation.

The names most programs need are importable from ``npnet`` directly; each lives in a small
module of its own (``npnet.layers``, ``npnet.losses``, ...), which is where to read it.
Plotting (``npnet.plotting``, matplotlib) is imported only when asked for.
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
