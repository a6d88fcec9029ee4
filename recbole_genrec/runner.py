"""The ``recbole-genrec`` command (``run_recbole_genrec.py`` in a clone): train and
evaluate one model, e.g. ``recbole-genrec --model=TIGER --loss=apao``.

Every ``--key=value`` overrides a config key (RecBole style); ``--config_files``
takes space-separated YAML paths; ``--result_file`` sets where the result JSON
goes; ``--threads=N`` sets torch's CPU threads; ``--show_progress=false`` turns
the progress bars off; ``--verbose`` logs RecBole's per-epoch lines and the full
model tree.  The run ends with a one-screen summary
(:mod:`recbole_genrec.run_summary`).

Errors in the options, files or data end in one line ``error: <what> (<where>);
<what to do>`` and exit code 2 (the traceback with ``--debug``); Ctrl-C or SIGTERM
write a partial result JSON and say how to resume (``--resume_from=...``).
"""

import sys

from recbole_genrec.cli import parse_overrides
from recbole_genrec.errors import run_cli
from recbole_genrec.launcher import launch
from recbole_genrec.run_summary import reevaluate_command, run_summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    overrides = parse_overrides(argv)
    model = overrides.pop("model", "TIGER")
    dataset = overrides.pop("dataset", "Office")
    config_files = overrides.pop("config_files", "").split()
    result = launch(model, dataset, config_files=config_files, cmd_overrides=overrides)
    if result is None:  # a data-parallel run whose rank 0 is on another machine
        print("rank 0 runs on another machine; it writes the result JSON", flush=True)
        return None
    print(run_summary(result, reevaluate_command(argv, result)), flush=True)
    return result


def cli() -> None:
    """The console command's entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
