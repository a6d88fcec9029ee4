"""Where the project's files are, worked out once: the property files, the default
dataset folder and, when running from a clone, the clone itself.

A clone keeps ``properties/``, ``dataset/`` and ``tuning/`` at its top, where RecBole
users look for them; an installed wheel carries the same folders inside the package
(``recbole_genrec/properties`` ...; see ``setup.py``).  Imports nothing of the project.
"""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# the clone this package runs from, or None when it is installed (a wheel)
CHECKOUT = (PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "run_recbole_genrec.py").is_file()
            and not (PACKAGE_DIR / "properties").is_dir() else None)
DATA_ROOT = CHECKOUT or PACKAGE_DIR  # holds properties/, dataset/ (and tuning/ in a clone)

PROPERTIES = DATA_ROOT / "properties"
DATASET_ROOT = DATA_ROOT / "dataset"  # the default data_path (Office is embedded there)
RUN_SCRIPT = CHECKOUT / "run_recbole_genrec.py" if CHECKOUT else None

# raw datasets in the JSON format of docs/data.md, converted on first use into
# <data_path>/<D>/ when a run names a dataset that data_path lacks
RAW_DATA = Path(os.environ.get("RECBOLE_GENREC_RAW_DATA")
                or (CHECKOUT.parent / "shared" / "data" if CHECKOUT else "raw_data"))


def checkout_relative(path) -> str:
    """``path`` relative to the clone when it lies inside it (for messages)."""
    path = Path(path)
    try:
        return str(path.relative_to(CHECKOUT)) if CHECKOUT else str(path)
    except ValueError:
        return str(path)
