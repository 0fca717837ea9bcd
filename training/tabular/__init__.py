"""Bring your own table: a second, self-contained product beside the propensity models.

The propensity models are trained on the feature catalogue's point-in-time snapshots of the
contract tables, registered as ``propensity-<task>`` and served by the API. A tabular model is
trained on any prepared per-account table a user brings (``propensity train tabular``): its
columns are inferred (``columns``), turned into a model frame (``prepare``), three candidates
are compared (``models``), the chosen one is calibrated (``fit``) and logged as its own pyfunc
(``pyfunc``, ``tracking``). That is why it is a package of its own: nothing in it knows the
catalogue, and nothing outside it needs its internals.

The API does not serve it: serving scores accounts from the feature snapshot by the catalogue's
columns and explains scores with the catalogue's descriptions; a tabular model's columns are
whatever its table had, with no snapshot to score from. Load it with
``mlflow.pyfunc.load_model`` (it returns the calibrated probability per row).
"""
