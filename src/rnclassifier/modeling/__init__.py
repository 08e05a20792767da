"""Modelling: the per-fold pipeline, search spaces, and nested patient-grouped cross-validation.

Everything learned (imputation, filtering, scaling, selection, hyperparameters) is fitted inside
the training part of each fold; the outer test fold is only ever predicted.
"""
