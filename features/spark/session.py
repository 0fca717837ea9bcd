"""The Spark session the engine runs on, configured from the settings' master and conf.

pyspark is imported inside the function: it is an optional extra (``pip install '.[spark]'``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The feature SQL compares naive timestamps and counts seconds in UTC: not a user choice.
FIXED_CONF = {"spark.sql.session.timeZone": "UTC"}
DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def spark_session(master: str, conf: Mapping[str, str], app_name: str = "propensity"
                  ) -> SparkSession:
    """The Spark session of ``master`` (``spark_master``) with ``conf`` (``spark_conf``) applied.

    Local mode needs the workers to run this very Python and to bind to the loopback address
    (the host name of a container often does not resolve); both are set unless already given.
    """
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RuntimeError(
            "the Spark engine needs the `spark` extra: pip install '.[spark]' (and Java 17)"
        ) from exc
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**DEFAULT_CONF, **conf, **FIXED_CONF}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    for key, value in FIXED_CONF.items():  # an existing session keeps its own otherwise
        spark.conf.set(key, value)
    return spark
