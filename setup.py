"""Build the C extensions (config-space parser, batch VF sysfs reads); everything else is in pyproject.toml."""

import os

from setuptools import Extension, setup

extra = ["-Wall", "-Wextra", "-Werror", "-O2", "-std=c11"]
if os.environ.get("VFCTL_ASAN"):
    extra += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]

setup(
    ext_modules=[
        Extension(
            "vfctl.pci._configspace",
            sources=["vfctl/pci/_configspace.c"],
            extra_compile_args=extra,
            extra_link_args=["-fsanitize=address,undefined"] if os.environ.get("VFCTL_ASAN") else [],
            optional=os.environ.get("VFCTL_REQUIRE_EXT") != "1",
        ),
        Extension(
            "vfctl.host._vfscan",
            sources=["vfctl/host/_vfscan.c"],
            extra_compile_args=extra,
            extra_link_args=["-fsanitize=address,undefined"] if os.environ.get("VFCTL_ASAN") else [],
            optional=os.environ.get("VFCTL_REQUIRE_EXT") != "1",
        ),
    ]
)
