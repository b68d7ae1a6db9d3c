"""The papers' comparisons as studies: YAML files in ``studies/`` name the runs, the shared
budget and the report to write; ``run_study`` trains what is missing and writes the report."""

from emotrace.experiments.runner import run_study
from emotrace.experiments.study import list_studies, load_study

__all__ = ["list_studies", "load_study", "run_study"]
