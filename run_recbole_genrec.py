"""Train and evaluate one model: ``python run_recbole_genrec.py --model=TIGER --loss=apao``.

Every ``--key=value`` overrides a config key (RecBole style); ``--config_files``
takes space-separated YAML paths; ``--result_file`` sets where the result JSON goes.
"""

import sys

from recbole_genrec.cli import parse_overrides
from recbole_genrec.quick_start import run


def main(argv=None):
    overrides = parse_overrides(sys.argv[1:] if argv is None else argv)
    model = overrides.pop("model", "TIGER")
    dataset = overrides.pop("dataset", "Office")
    config_files = overrides.pop("config_files", "").split()
    result = run(model, dataset, config_files=config_files, cmd_overrides=overrides)
    print(f"\n{result['model']} on {result['dataset']}"
          + (f" (loss={result['loss']})" if result["loss"] else ""))
    print("best valid:", _fmt(result["valid"]))
    print("test:      ", _fmt(result["test"]))
    for name, values in result["diagnostics"].items():
        print(f"{name}: {_fmt(values)}")
    print("result JSON:", result["result_file"])


def _fmt(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in metrics.items())


if __name__ == "__main__":
    main()
