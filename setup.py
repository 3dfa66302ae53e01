"""Build the C extensions (config-space parser, batch VF sysfs reads, JSON rows); everything else is in pyproject.toml."""

import os

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExtOrSay(build_ext):
    """Build the optional C parser; when it cannot be built (no Python headers, no compiler),
    say so plainly instead of setuptools' buried warning: vfctl then uses its pure-Python
    parser (same results, slower on hosts with many PFs)."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # setuptools raises CompileError/LinkError/PlatformError
            if os.environ.get("VFCTL_REQUIRE_EXT") == "1":
                raise
            print(
                f"\nvfctl: NOTE: the C extension {ext.name} was not built ({type(e).__name__}: "
                f"{str(e).strip().splitlines()[-1] if str(e).strip() else 'no detail'}).\n"
                "vfctl: NOTE: falling back to the pure-Python parser (same results, slower). "
                "Install the Python headers and a C compiler (Debian: python3-dev gcc) and "
                "reinstall to get it.\n",
                file=sys.stderr,
            )

extra = ["-Wall", "-Wextra", "-Werror", "-O2", "-std=c11"]
if os.environ.get("VFCTL_ASAN"):
    extra += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]

setup(
    cmdclass={"build_ext": BuildExtOrSay},
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
        Extension(
            "vfctl._jsonrows",
            sources=["vfctl/_jsonrows.c"],
            extra_compile_args=extra,
            extra_link_args=["-fsanitize=address,undefined"] if os.environ.get("VFCTL_ASAN") else [],
            optional=os.environ.get("VFCTL_REQUIRE_EXT") != "1",
        ),
    ]
)
