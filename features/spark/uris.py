"""Paths of the Spark engine: any Hadoop-compatible URI (``/local/path``, ``file:``, ``s3a://``,
``hdfs://``), read and written through Hadoop's filesystem so one code path serves them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def join_uri(base: str, name: str) -> str:
    """``base``/``name`` for any URI (no doubled slash)."""
    return f"{str(base).rstrip('/')}/{name}"


def is_remote(uri: str) -> bool:
    """A URI Spark must write itself (anything but a plain path or ``file:``)."""
    scheme = str(uri).split("://", 1)[0] if "://" in str(uri) else ""
    return scheme not in ("", "file")


def hadoop_path(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def uri_exists(spark: SparkSession, uri: str) -> bool:
    path, fs = hadoop_path(spark, uri)
    return bool(fs.exists(path))


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """A small text file through Hadoop's filesystem (works for every URI Spark reads)."""
    path, fs = hadoop_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode()))
    finally:
        stream.close()


def read_text(spark: SparkSession, uri: str) -> str:
    """A small text file (Spark's own readers skip names starting with ``_``)."""
    path, fs = hadoop_path(spark, uri)
    stream = fs.open(path)
    try:
        return spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def local_path(uri: str) -> str:
    """``file:///x`` or ``file:/x`` as a plain path (the local store is pathlib-based)."""
    for prefix in ("file://", "file:"):
        if uri.startswith(prefix):
            return uri[len(prefix):]
    return uri
