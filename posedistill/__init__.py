"""posedistill: fast, small human pose estimation through knowledge distillation."""

__version__ = "0.1.0"
