"""Executes a plan: generation (cached, resumable), scoring, comparison, gates, verdict."""

from heldout.runner._generate import GenerationSink, generate
from heldout.runner._run import FailedGenerationsError, RunOptions, run_plan

__all__ = ["FailedGenerationsError", "GenerationSink", "RunOptions", "generate", "run_plan"]
