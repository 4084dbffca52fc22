"""Running the notebooks: the catalog, the step context, parameters, fingerprints, the runner and its parts."""
