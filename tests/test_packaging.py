"""kernels/ ships as kanbench.kernels, after an editable and after a normal install, and never as a top-level
`kernels` package (that name belongs to another PyPI project)."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["kanbench.kernels", "kanbench.variants", "kanbench.harness", "kanbench.data", "kanbench.report"]
CHECK = (
    "import importlib.util, kanbench, " + ", ".join(SUBPACKAGES) + "\n"
    "assert importlib.util.find_spec('kernels') is None, 'a top-level kernels package is importable'\n"
    "import kanbench.kernels.grkan.rational_triton\n"
    "print(kanbench.__file__)\n"
)


def test_the_installed_package_imports_its_kernels_and_no_top_level_kernels(tmp_path):
    # from a neutral folder, through whatever install this environment has (editable in CI)
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_normal_install_from_the_wheel(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheel_dir.glob("kanbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kanbench/kernels/__init__.py" in names and "kanbench/kernels/grkan/rational_triton.py" in names
    for source in ("grkan/rational_cuda.cu", "grkan/rational_cuda.cuh", "grkan/rational_cuda.cpp"):
        assert f"kanbench/kernels/{source}" in names, source  # the cuda impl compiles these on first use
    assert not any(n.startswith("kernels/") for n in names)
    for package in SUBPACKAGES:
        assert package.replace(".", "/") + "/__init__.py" in names
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    # -S: no site hooks, so the editable finder of a development install cannot serve kanbench; the installed copy
    # must. Third-party packages (torch) still come from this environment's site-packages.
    env = {"PYTHONPATH": f"{site}:{sysconfig.get_paths()['purelib']}:{sysconfig.get_paths()['platlib']}"}
    out = subprocess.run([sys.executable, "-S", "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(site))
