"""Where the generator puts the truth, and its shape: the one file the oracle reads back.

The truth sits in a sibling folder of the raw export (``<data-dir>/truth/``), never inside it, so
nothing that reads the contract tables can see it.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

TRUTH_DIR = "truth"
TRUTH_FILE = "account_month_truth.parquet"
TRUTH_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("month", pa.date32(), nullable=False),
        pa.field("health", pa.float64(), nullable=False),
        pa.field("churn_prob", pa.float64(), nullable=False),
        pa.field("expansion_prob", pa.float64(), nullable=False),
        pa.field("churned", pa.bool_(), nullable=False),
        pa.field("expanded", pa.bool_(), nullable=False),
        pa.field("renewal_day", pa.date32(), nullable=True),
        pa.field("decided_month", pa.date32(), nullable=True),
        pa.field("renewal_churn_prob", pa.float64(), nullable=False),
        pa.field("upsell_prob", pa.float64(), nullable=False),
    ]
)


def truth_dir(data_dir: Path) -> Path:
    """The truth folder of a data directory (beside ``raw/``)."""
    return Path(data_dir) / TRUTH_DIR
