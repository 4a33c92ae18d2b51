"""The architecture-experiment runner: one configuration in, one JSON result file out.

A *run* is described entirely by a :class:`RunConfig` (plain data);
:func:`run_experiment` trains it and writes
``<out_dir>/<run_name>_L<L>_K<k1>-<k2>....json`` atomically. A *sweep* is the
runs of named experiments of the grid (:data:`EXPERIMENTS`, SPEC §3.7) under a
protocol (:data:`PROTOCOLS`: the data budget of a GPU or a CPU), each an
independent job that any executor can run: this machine, or a SLURM cluster.

The modules, each importing only those before it:

1. :mod:`~hw2.experiments.config`: ``RunConfig``, its validation and file
   name, the protocols, the pooling rule;
2. :mod:`~hw2.experiments.grid`: the experiments as plain data;
3. :mod:`~hw2.experiments.results`: the result file's format, reading,
   checking, which runs are done;
4. :mod:`~hw2.experiments.claims`: which process trains a run, so that
   sweeps can share one folder;
5. :mod:`~hw2.experiments.device`, then :mod:`~hw2.experiments.runner`:
   device; model, data, optimizer, trainer, one run;
6. :mod:`~hw2.experiments.sweep`: job specs and ``run_sweep(jobs, executor)``;
7. :mod:`~hw2.experiments.executors` (this machine) and
   :mod:`~hw2.experiments.slurm` (a cluster);
8. :mod:`~hw2.experiments.cli`: ``python -m hw2.experiments``.

Only :mod:`hw2.training` reads and writes checkpoints. Importing this package
does not import torch: the modules that need it import it when they run.
"""
from hw2.experiments.cli import main
from hw2.experiments.config import (IN_SIZE, LR_SCHEDULES, MODEL_TYPES, NUM_CLASSES,
                                    OPTIMIZERS, PROTOCOLS, Protocol, RunConfig,
                                    auto_pool_every, max_poolings, result_filename,
                                    result_path, results_dir, study_folder,
                                    study_results_dir)
from hw2.experiments.executors import LocalExecutor
from hw2.experiments.grid import (CHECKS, COMMON_HPARAMS, COMMON_RECIPE, CONTROLS,
                                  EXP2_RECIPE, EXPERIMENTS, SAME_HEAD, STUDY, Check,
                                  Experiment, load_grid_file)
from hw2.experiments.results import (RESULT_FORMAT, ExperimentFileError,
                                     ExperimentFileWarning,
                                     code_provenance, experiment_status,
                                     load_experiment, load_record, result_state,
                                     summary_line)
from hw2.experiments.device import (configure_backends, device_name, flush_denormals,
                                    resolve_device)
from hw2.experiments.runner import (build_batches, build_model, build_optimizer,
                                    build_trainer, checkpoint_prefix, describe_model,
                                    lr_factor, run_config, run_experiment)
from hw2.experiments.sweep import run_job, run_sweep, sweep_jobs

__all__ = [
    # configuration and grid
    "RunConfig", "Protocol", "PROTOCOLS", "Experiment", "EXPERIMENTS", "STUDY",
    "CONTROLS", "Check", "CHECKS", "COMMON_RECIPE", "EXP2_RECIPE", "COMMON_HPARAMS",
    "SAME_HEAD", "MODEL_TYPES", "OPTIMIZERS", "LR_SCHEDULES", "IN_SIZE", "NUM_CLASSES",
    "results_dir", "study_results_dir", "study_folder", "result_filename",
    "result_path", "max_poolings", "auto_pool_every", "load_grid_file",
    # one run
    "run_experiment", "run_config", "resolve_device", "device_name",
    "configure_backends", "flush_denormals", "build_model", "describe_model",
    "build_batches",
    "lr_factor", "build_optimizer", "build_trainer", "checkpoint_prefix",
    # results
    "RESULT_FORMAT", "ExperimentFileError", "ExperimentFileWarning", "load_experiment",
    "load_record",
    "result_state", "experiment_status", "summary_line", "code_provenance",
    # sweeps
    "sweep_jobs", "run_job", "run_sweep", "LocalExecutor",
    # command line
    "main",
]
