"""Optuna studies of trick combinations: each trial an ordinary ganlab run folder.

=============  ======================================================================
module         job
=============  ======================================================================
``spec``       the study definition (TOML): its schema, declared once on StudySpec, checked with one
               line per mistake
``record``     what a trial and a study store in Optuna (TrialRecord, StudyRecord), typed
``objective``  the objectives, the in-loop metrics, what the pruner is told
``space``      the search space: base hyperparameters, tricks on, their parameters
``storage``    Optuna storages (SQLite, journal, PostgreSQL), sampler and pruner
``recovery``   trials whose worker died: found, failed and queued again
``runner``     one trial (a training run) and a worker's share of the study
``workers``    ``--n-jobs N``: the other worker processes on the same storage
``table``      the live table of trials
``report``     what a study found: importances, Pareto front, per-trick spread, plots
``_optuna``    the two private Optuna attributes ganlab reads, with the Optuna range tested
=============  ======================================================================

Importing this package loads only the definition's schema; Optuna loads with the modules that
use it.
"""

from ganlab.study.objective import OBJECTIVES, Objective
from ganlab.study.record import StudyRecord, TrialRecord, study_record, trial_record
from ganlab.study.spec import StudySpec, builtin_studies, load_study_file, parse_study

__all__ = ["OBJECTIVES", "Objective", "StudyRecord", "StudySpec", "TrialRecord", "builtin_studies", "load_study_file",
           "parse_study", "study_record", "trial_record"]
