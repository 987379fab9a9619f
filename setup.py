from setuptools import find_packages, setup

setup(
    name="npnet",
    version="0.1.0",
    description="Autoencoders in NumPy with hand-written backpropagation, for teaching.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["npnet", "npnet.*"]),
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.25",  # Generator.spawn (npnet.parallel)
        "scipy>=1.10",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "threadpoolctl>=3.1",  # one BLAS thread per shard (npnet.parallel)
    ],
    extras_require={
        # Compiled optimizer loop (npnet.kernels): the same numbers, Adam about twice as fast.
        "fast": ["numba>=0.60"],
        # The tests check the compiled loop against the NumPy version, so they need numba.
        "test": ["pytest>=7", "hypothesis>=6.80", "ruff>=0.4", "numba>=0.60"],
    },
)
