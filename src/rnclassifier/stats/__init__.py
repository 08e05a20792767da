"""Statistics against pathology and radiologists: pure functions of labels, scores and groups.

No models, no MLflow, no files: training, validation, scoring and `rnclassifier evaluate` all
call the same implementation of each statistic. Positive class: tumour (label 1).
"""
