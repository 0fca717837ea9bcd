"""One small local Spark session for a test module, or a skip (a failure in CI) without Spark.

Spark needs the `spark` extra and a Java runtime; a laptop without them skips these tests, but
CI (PROPENSITY_REQUIRE_ALL_TESTS=1) must run them, so there a missing tool is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

#: Tiny data on 2 busy cores, where the JVM's warm-up is most of the time: few shuffle
#: partitions, no UI, no adaptive re-planning, no code generation and the quick JIT only
#: (measured: a 300-account snapshot 25 s -> 8 s).
TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.driver.memory": "1g",
}


def require_spark() -> None:
    missing = [
        what for what, ok in (
            ("pyspark (pip install '.[spark]')", importlib.util.find_spec("pyspark") is not None),
            ("java (Java 17)", shutil.which("java") is not None or "JAVA_HOME" in os.environ),
        ) if not ok
    ]
    if not missing:
        return
    message = f"Spark tests need {' and '.join(missing)}"
    if os.environ.get("PROPENSITY_REQUIRE_ALL_TESTS") == "1":
        pytest.fail(message + " (PROPENSITY_REQUIRE_ALL_TESTS=1)")
    pytest.skip(message)


def spark_test_settings(**overrides):
    """Settings of the test session (local[2], TEST_CONF), with ``overrides``."""
    from features.settings import Settings

    return Settings(spark_master="local[2]", spark_conf=TEST_CONF, **overrides)


def start_spark():
    """The session (getOrCreate: a module reuses the one its worker already started)."""
    require_spark()
    from features.spark.session import spark_session

    spark = spark_session("local[2]", TEST_CONF, app_name="propensity-tests")
    spark.sparkContext.setLogLevel("ERROR")
    return spark
