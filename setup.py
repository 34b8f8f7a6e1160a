"""The build step pyproject.toml cannot declare: ship the checkout's ``deployments/prefect.yaml``
in the wheel as ``rahcp_prefect/deployments/prefect.yaml``.

There is one deployment file, ``deployments/prefect.yaml`` at the top of the checkout (the
design card's layout); the build copies it into the built package, so an installed wheel carries
it and ``rahcp-prefect prefect-file`` prints it. An editable install runs from the checkout and
needs no copy: ``rahcp_prefect.deployments.prefect_file`` finds the top-level file there.
The sdist carries the top-level file (MANIFEST.in), so ``pip install`` from it builds the same
wheel. Everything else (metadata, packages, package data) is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DEPLOYMENT_FILE = Path("deployments") / "prefect.yaml"
PACKAGED_AS = Path("rahcp_prefect") / "deployments" / "prefect.yaml"


class BuildWithDeploymentFile(build_py):
    """``build_py`` that also places ``deployments/prefect.yaml`` inside the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the package runs from the checkout, which has the file
            return
        target = Path(self.build_lib) / PACKAGED_AS
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEPLOYMENT_FILE, target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode:
            outputs.append(str(Path(self.build_lib) / PACKAGED_AS))
        return outputs


setup(cmdclass={"build_py": BuildWithDeploymentFile})
