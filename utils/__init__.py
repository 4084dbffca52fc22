"""lead2value: the logic behind the notebooks, in layers that import one way.

    core      paths, data contracts, file I/O, hashing, splits, plots, MLflow and the registry
    leads     CodePro lead scoring: schema, synthetic leads, cleaning, model, read-outs
    clv       customer lifetime value: schema, synthetic shop, transactions, GDP, features, model, metrics
    scoring   serving: predictions (pandas or Spark), summaries, drift monitoring, dashboard
    pipeline  running the notebooks: catalog, step context, parameters, fingerprints, runner

core <- leads, clv <- scoring <- pipeline; leads and clv never import each other.
"""
