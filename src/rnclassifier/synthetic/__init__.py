"""SYNTHETIC cohorts that imitate the seed study, with a Bayes oracle: for running and testing
every path without patient data. Nothing made here is clinical evidence."""

from rnclassifier.synthetic.write import SynthSummary, write_synthetic_cohort

__all__ = ["SynthSummary", "write_synthetic_cohort"]
