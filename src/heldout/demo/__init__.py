"""The built-in demo: a real tiny model, a real fine-tune, evaluated end to end (heldout[hf])."""

from heldout.demo._demo import DemoConfig, DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "run_demo"]
