"""Feature snapshots on Apache Spark, for data that outgrows one machine (the ``spark`` extra).

``build`` registers the raw tables and builds/stores snapshots with the DuckDB build's own SQL,
``sql`` carries that SQL to Spark's dialect, ``session`` opens the configured session and
``uris`` reads and writes any Hadoop-compatible URI. The as_of rule is the DuckDB build's
(``features.build.check_as_of``): one rule for both engines.
"""
