"""Start one run: in this process, or as ``nproc`` data-parallel ranks on this machine.

:func:`launch` is what the ``recbole-genrec`` command, ``tuning.compare`` and each
trial of ``tuning.search`` call.  It resolves the configuration once; with
``--nproc=N`` (RecBole's option, ``single_spec`` while no rank is set) it spawns N
processes as ``recbole.quick_start.run_recboles`` does, each running
:func:`recbole_genrec.quick_start.run` as one rank (``local_rank``), and returns rank
0's result -- or None when rank 0 runs on another machine (``offset`` > 0).
Otherwise it calls :func:`~recbole_genrec.quick_start.run` with that configuration.
"""

from recbole_genrec import distributed
from recbole_genrec.config import GenRecConfig
from recbole_genrec.errors import UserError
from recbole_genrec.quick_start import run


def launch(model, dataset, config_files=None, config_dict=None, cmd_overrides=None,
           epoch_callback=None, result_file=None, saved=True) -> dict | None:
    """Arguments as :func:`recbole_genrec.quick_start.run`; ``epoch_callback`` is called
    in a one-process run only."""
    config = GenRecConfig(model, dataset, config_files, config_dict, cmd_overrides)
    if not is_data_parallel(config):
        return run(model, dataset, config_files, config_dict, cmd_overrides,
                   epoch_callback=epoch_callback, result_file=result_file, saved=saved,
                   config=config)
    return run_data_parallel(model, dataset, config_files, config_dict, cmd_overrides,
                             result_file, config)


def is_data_parallel(config) -> bool:
    """``--nproc`` above 1 in the launching process (a rank has ``single_spec`` false)."""
    return config["nproc"] > 1 and config["single_spec"]


def run_data_parallel(model, dataset, config_files, config_dict, cmd_overrides, result_file,
                      config) -> dict | None:
    """``nproc`` processes, one rank each, on this machine (RecBole's ``run_recboles``)."""
    import torch.multiprocessing as mp

    if config["resume_from"]:
        raise UserError("--resume_from is for one-process runs", "--nproc="
                        f"{config['nproc']}", "resume without --nproc (the state holds rank 0's "
                        "random streams only)")
    shared = {**(config_dict or {}), "port": config["port"] or distributed.free_port()}
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_run_rank, args=(model, dataset, config_files, shared, cmd_overrides, result_file,
                              queue), nprocs=config["nproc"], join=True)
    return None if queue.empty() else queue.get()


def _run_rank(local_rank, model, dataset, config_files, config_dict, cmd_overrides,
              result_file, queue):
    import torch.distributed as dist

    try:
        result = run(model, dataset, config_files, {**config_dict, "local_rank": local_rank},
                     cmd_overrides, result_file=result_file)
        if result is not None:
            queue.put(result)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
