"""Features: pyradiomics per sequence and region, delta features, clinical covariates, the cache,
the parallel runner and robustness perturbations. The public entry point is `extract_features`."""
