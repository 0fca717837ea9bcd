"""Features layer (the bottom one): the raw data contract and its validation, the feature
catalogue, point-in-time snapshots on DuckDB (``build``) or Spark (``spark``), the snapshot
store, KPIs, and the pipeline and command options the other layers' commands share."""
