"""Declares the Cython extensions of fbp_core; all other metadata lives in pyproject.toml."""

import os

import numpy
from Cython.Build import cythonize
from setuptools import find_namespace_packages, setup
from setuptools.extension import Extension

HERE = os.path.dirname(os.path.abspath(__file__))


def component_packages():
    """List `components/...` packages under their installed name `fbp_components...`."""
    found = find_namespace_packages(where=os.path.join(HERE, "components"))
    return ["fbp_components"] + [f"fbp_components.{name}" for name in found]


extensions = [
    Extension(
        "fbp_core._ring",
        ["fbp_core/_ring.pyx"],
        include_dirs=["fbp_core", numpy.get_include()],
        extra_compile_args=["-O3", "-std=gnu11"],
        libraries=["rt"],
    ),
    Extension(
        "fbp_components.xray._peaks",
        ["components/xray/_peaks.pyx"],
        include_dirs=[numpy.get_include()],
        extra_compile_args=["-O3"],
    ),
]

setup(
    packages=find_namespace_packages(where=HERE, include=["fbp", "fbp.*", "fbp_core"])
    + component_packages(),
    package_dir={"fbp_components": "components"},
    ext_modules=cythonize(
        extensions, language_level=3, compiler_directives={"embedsignature": True}
    ),
)
