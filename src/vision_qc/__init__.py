"""vision_qc: glue-bead inspection in mm, against ground truth."""

__version__ = "0.1.0"
