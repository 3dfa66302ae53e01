"""`vfctl sim init/snapshot`: build a simulated host, or record a real one as one."""

from pathlib import Path

import typer

from vfctl.cli_app import guarded, session, sim_app
from vfctl.cli_opts import ForceOpt
from vfctl.errors import RefusedError, UsageError


@sim_app.command("init")
def sim_init(
    dir: Path = typer.Argument(..., help="Directory to create the host in."),
    preset: str = typer.Option("default", "--preset", help="Host shape."),
    force: bool = ForceOpt(False),
) -> None:
    """Write a simulated host (real sysfs layout) that follows the kernel's SR-IOV rules."""

    def go() -> None:
        from vfctl import sim

        if preset not in sim.PRESETS:
            raise UsageError(
                f"unknown preset {preset!r}; presets: {', '.join(sorted(sim.PRESETS))}"
            )
        if dir.is_symlink():
            raise RefusedError(f"{dir} is a symbolic link; give the directory itself")
        if dir.exists() and not dir.is_dir():
            raise RefusedError(f"{dir} exists and is not a directory")
        if dir.exists() and any(dir.iterdir()) and not force:
            raise RefusedError(
                f"{dir} exists and is not empty (--force to replace it)", override="--force"
            )
        if dir.exists() and force:
            import shutil

            if not (dir / sim.MARKER).is_dir():
                raise RefusedError(f"{dir} is not a simulated host; refusing to delete it")
            shutil.rmtree(dir)
        sim.init(dir, preset)
        print(f"simulated host ({preset}) written to {dir}; use: vfctl --root {dir} list")

    guarded(False, True, go)


@sim_app.command("snapshot")
def sim_snapshot(
    dir: Path = typer.Argument(..., help="Directory to write the snapshot to."),
) -> None:
    """Record this host's (or --root's) PCI/SR-IOV state as a simulated host."""

    def go() -> None:
        from vfctl import sim

        root = session().opts.root
        if dir.exists() and (not dir.is_dir() or any(dir.iterdir())):
            raise RefusedError(f"{dir} exists and is not an empty directory")
        sim.snapshot(Path(root), dir)
        print(f"snapshot of {root} written to {dir}")

    guarded(False, True, go)
