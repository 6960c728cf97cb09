from pathlib import Path

from setuptools import find_packages, setup

README = Path(__file__).with_name("README.md")

setup(
    name="tf-assign2",
    version="0.1.0",
    description="Keras 3 / TensorFlow 2 port of the Rice ELEC/COMP 576 Assignment 2 starters "
    "(LeNet5 on CIFAR10, RNN/LSTM/GRU on MNIST) with tuning, visualisation and export.",
    long_description=README.read_text() if README.is_file() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tf_assign2", "tf_assign2.*"]),
    package_data={"tf_assign2": ["py.typed"]},  # the public API has type hints (PEP 561)
    license="MIT",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    # Upper bounds at the next major version: the code reaches into private parts of Keras
    # (the optimizer's variable lists), keras-tuner (keras_tuner.src for the chief's gRPC service)
    # and TensorFlow (the gradient registry); constraints.txt pins the versions CI runs.
    install_requires=[
        "tensorflow>=2.16,<3",
        "keras>=3.6,<4",  # 3.6: model.export(..., verbose=False)
        "tensorboard<3",  # TF 2.21 no longer pulls it in; tf.summary and keras-tuner need it
        "tensorflow-datasets<5",
        "keras-tuner[bayesian]>=1.4,<2",  # [bayesian]: scikit-learn and scipy for BayesianOptimization
        "matplotlib<4",
        "pillow",
        "pyyaml<7",
        "psutil",  # the resident memory a run records per epoch
        "importlib_resources",  # tensorflow-datasets 4.9 imports it but does not declare it
        "numpy<3",
    ],
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Education",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",  # the version CI tests (constraints.txt)
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ],
    extras_require={
        # nbclient, nbformat and ipykernel: the notebooks run in a real Jupyter kernel in the slow tier;
        # pytest-xdist: the suite runs on two workers (python -m pytest -n 2); onnx and onnxruntime: hostile
        # .onnx files are tried on the runtime (without tf2onnx, runs still write no ONNX file).
        "test": ["pytest", "pytest-xdist", "hypothesis", "ruff", "nbclient", "nbformat", "ipykernel", "onnx",
                 "onnxruntime"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # ONNX and LiteRT files beside the SavedModel (python -m tf_assign2.export; training runs write
        # them when these are installed) and the runtimes evaluate runs them on. LiteRT conversion is
        # TensorFlow's own; without ai-edge-litert, .tflite files run on the deprecated tf.lite.
        "export": ["tf2onnx>=1.16", "onnx", "onnxruntime", "ai-edge-litert"],
        # PyTorch's loop on the same networks, as peer rows in python -m benchmarks.bench (CPU wheels:
        # pip install torch --index-url https://download.pytorch.org/whl/cpu, then this extra).
        "bench": ["torch>=2.1"],
    },
    entry_points={
        "console_scripts": [
            "tf-assign2-cifar=tf_assign2.cifar:main",
            "tf-assign2-mnist=tf_assign2.mnist:main",
            "tf-assign2-evaluate=tf_assign2.evaluate:main",
            "tf-assign2-tune=tf_assign2.tune:main",
            "tf-assign2-sweep=tf_assign2.sweep:main",
            "tf-assign2-report=tf_assign2.report:main",
            "tf-assign2-visualize=tf_assign2.visualize:main",
            "tf-assign2-export=tf_assign2.export:main",
        ]
    },
)
