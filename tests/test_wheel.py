"""The package as a user installs it: a wheel built from this repository, installed
offline into a fresh virtual environment, run from an empty folder with the console
commands -- TIGER + APAO on the embedded Office, then on the user's own RecBole atomic
files tokenized from their item text, each step by the command the previous one printed.

The new environment gets the dependencies from the one running the tests (a ``.pth``
line to its site-packages), so nothing is downloaded."""

import os
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_TIGER = ["--d_model=16", "--n_heads=2", "--head_dim=8", "--d_ff=32", "--n_encoder_layers=1",
              "--n_decoder_layers=1", "--epochs=1", "--beam_size=20", "--pruning_rate_users=0",
              "--show_progress=false", "--threads=1"]
COMMANDS = ["recbole-genrec", "recbole-genrec-tokenize", "recbole-genrec-search",
            "recbole-genrec-compare", "recbole-genrec-reproduce"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """-> (venv folder, environment whose PATH starts with the venv's bin/)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"  # the files the wheel is built from (the checkout stays clean)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("recbole_genrec", "tuning", "properties"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    shutil.copytree(REPO / "dataset" / "Office", src / "dataset" / "Office")
    shutil.copy(REPO / "setup.py", src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(root / "dist"), str(src)], check=True, capture_output=True)
    [wheel] = (root / "dist").glob("recbole_genrec-*.whl")

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], check=True, capture_output=True, text=True)
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], *site.getsitepackages()])
    (Path(purelib.stdout.strip()) / "test-deps.pth").write_text("\n".join(deps) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1",
               VIRTUAL_ENV=str(venv))
    return venv, env


def shell(command: str, cwd: Path, env: dict, expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == expect, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_installs_the_package_its_files_and_commands(installed, tmp_path):
    venv, env = installed
    assert all((venv / "bin" / name).is_file() for name in COMMANDS)
    code = ("import recbole_genrec.paths as p, importlib.util as u; "
            "import recbole_genrec.tuning.search, recbole_genrec.tuning.compare, "
            "recbole_genrec.tuning.reproduce; "
            "assert p.CHECKOUT is None and (p.PROPERTIES / 'model' / 'TIGER.yaml').is_file(); "
            "assert (p.DATASET_ROOT / 'Office' / 'Office.inter').is_file(); "
            "assert u.find_spec('tuning') is None, 'a top-level tuning package is installed'; "
            "print(p.PACKAGE_DIR)")
    out = shell(f"python -c {shlex.quote(code)}", tmp_path, env).stdout
    assert out.strip().startswith(str(venv))  # the wheel's copy, not the checkout
    shell("recbole-genrec-compare --help", tmp_path, env)


def test_wheel_trains_on_office_and_on_own_atomic_files(installed, tmp_path):
    _, env = installed
    # 1. the embedded default dataset
    out = shell(shlex.join(["recbole-genrec", "--model=TIGER", "--loss=apao", *TINY_TIGER]),
                tmp_path, env).stdout
    assert "== TIGER on Office (loss=apao)" in out
    assert (tmp_path / "saved" / "TIGER-Office-apao.json").is_file()
    reevaluate = out.split("re-evaluate: ", 1)[1].splitlines()[0]
    assert reevaluate.startswith("recbole-genrec --model=TIGER --dataset=Office")

    # 2. the user's own atomic files (the README's example): item text, no semantic IDs yet
    shutil.copytree(REPO / "docs" / "examples" / "Shop", tmp_path / "mydata" / "Shop")
    run = ["recbole-genrec", "--model=TIGER", "--loss=apao", "--dataset=Shop",
           "--data_path=mydata", "--train_batch_size=64", "--eval_batch_size=64", *TINY_TIGER]
    refused = shell(shlex.join(run), tmp_path, env, expect=2).stderr
    [tokenize] = [line.strip() for line in refused.splitlines() if "recbole-genrec-tokenize" in line]
    assert tokenize == "recbole-genrec-tokenize --dataset=Shop --data_path=mydata"
    shell(f"{tokenize} --levels=2 --codebook_size=4", tmp_path, env)
    out = shell(shlex.join(run), tmp_path, env).stdout
    assert "== TIGER on Shop (loss=apao)" in out and "test: recall@5=" in out
