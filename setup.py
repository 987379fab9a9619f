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
        "numpy>=1.25",  # Generator.spawn (npnet.fast.parallel)
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "threadpoolctl>=3.1",  # one BLAS thread per shard (npnet.fast.parallel)
    ],
    extras_require={
        # Adam as one compiled loop in the fast path (npnet.fast.optim): the same numbers.
        "fast": ["numba>=0.60"],
        # The tests check the compiled loop against the core's Adam, so they need numba; they
        # run the chapters as notebooks in a Jupyter kernel (tests/test_notebooks.py) and open
        # the docs site in Debian's chromium through Playwright (tests/test_site.py).
        "test": ["pytest>=7", "hypothesis>=6.80", "ruff>=0.4", "numba>=0.60",
                 "nbformat>=5.9", "nbclient>=0.10", "ipykernel>=6.29", "playwright>=1.45"],
        # The docs site: mkdocs.yml, docs/hooks/ (pandoc renders the math to MathML).
        "docs": ["mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10", "mkdocstrings[python]>=0.26",
                 "pymdown-extensions>=10.7", "pypandoc-binary>=1.13"],
    },
)
