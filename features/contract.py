"""The raw data contract: the tables a CRM / billing / product-analytics export provides.

This module is the one place that says which tables exist, their columns, logical types, keys,
nullability, foreign keys and value rules, and *when each value becomes known*. Loading,
validation, the generator, the feature SQL and the generated docs all read it.

Time semantics (the same for every table): a row is known from its own timestamp
(``known_at``); a column listed in ``later_known`` records something that happened later and is
known only from its own value. At ``as_of`` anything stamped at or after ``as_of`` has not
happened yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LogicalType = Literal["string", "int64", "float64", "bool", "date", "timestamp"]

#: DuckDB type used for each logical type (``features.spark.build`` maps the same names to Spark's).
DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}

#: The generator's segments; the contract takes any non-empty label.
SEGMENTS = ("SMB", "mid-market", "enterprise")
CONTACT_ROLES = ("champion", "economic buyer", "executive sponsor", "user", "detractor")
ACTIVITY_TYPES = ("qbr", "call", "email", "onboarding session")
#: Billing periods the features know by name, with their length in months (a term's billing
#: period may also be a whole number of months, e.g. "6"). "multi-year" counts as 24: at least
#: two years. Other values are accepted with a warning; their length is then unknown (null).
BILLING_PERIOD_MONTHS: dict[str, int] = {
    "monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12, "multi-year": 24,
}
BILLING_PERIODS = tuple(BILLING_PERIOD_MONTHS)
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
#: What an undocumented role, activity type or priority means for the features.
OTHER_VALUES = "counted by no per-value feature"


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    type: LogicalType
    description: str
    nullable: bool = False
    min: float | None = None  # inclusive lower bound for numbers
    max: float | None = None  # inclusive upper bound for numbers
    label: bool = False  # free-form label: any non-empty text (an empty one is an error)
    documented: tuple[str, ...] | None = None  # known values; others are only a warning
    documented_note: str = ""  # what an undocumented value means for the features
    months: bool = False  # a whole number of months (e.g. "6") is also a documented value
    null_note: str | None = None  # nullable, but nulls are worth a warning saying this
    optional: bool = False  # may be absent from a file or source: then null in every row

    @property
    def sql_absent(self) -> str:
        """The value of an absent optional column in SQL (a typed null)."""
        return f"CAST(NULL AS {DUCKDB_TYPES[self.type]})"


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str
    ref_column: str


@dataclass(frozen=True)
class OrderRule:
    """``later`` must not be before ``earlier`` when both are set (e.g. end before start)."""

    earlier: str
    later: str


@dataclass(frozen=True)
class Table:
    """A contract table: its columns, key, references and time semantics."""

    name: str
    description: str
    columns: tuple[Column, ...]
    known_at: str  # the column from which the row is known
    key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    order_rules: tuple[OrderRule, ...] = ()
    later_known: tuple[str, ...] = ()  # columns known only from their own value
    optional: bool = False  # may be absent from an export; its features are then null

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns every file or source of the table must have (not ``optional``)."""
        return tuple(c.name for c in self.columns if not c.optional)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def time_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.type in ("date", "timestamp"))


def _fk(column: str, table: str = "accounts", ref: str | None = None) -> ForeignKey:
    return ForeignKey(column, table, ref or column)


ACCOUNTS = Table(
    name="accounts",
    description="One row per customer account (a company), with its place in the hierarchy.",
    key=("account_id",),
    known_at="created_at",
    columns=(
        Column("account_id", "string", "Stable account identifier."),
        Column("name", "string", "Company name."),
        Column(
            "parent_account_id", "string",
            "Parent account in the hierarchy (a subsidiary's group); null for a top-level account.",
            nullable=True,
        ),
        Column("segment", "string", "Sales segment, in the customer's own vocabulary (e.g. "
               "SMB / enterprise, or sales channels).", label=True),
        Column("industry", "string", "Industry of the company.", label=True),
        Column("region", "string", "Sales region; null = unknown.", nullable=True, label=True,
               null_note="shown as 'unknown'"),
        Column("owner", "string", "Account manager who owns the account; null = unassigned.",
               nullable=True, label=True, null_note="shown as 'unassigned'"),
        Column("created_at", "timestamp", "When the account was created in the CRM."),
        Column("external_id", "string",
               "The account's id in the CRM that imports the scores (its record id), written "
               "into the delivered files and webhooks; optional: absent = null.",
               nullable=True, optional=True),
    ),
    foreign_keys=(_fk("parent_account_id", "accounts", "account_id"),),
)

SUBSCRIPTIONS = Table(
    name="subscriptions",
    description=(
        "One row per contract term. A renewal is a new row starting on the previous end_date; "
        "a mid-term seat add-on is a new co-terminous row; a change to an open-ended (monthly) "
        "term sets cancelled_at on the old row and starts a new one. A term covers "
        "[start_date, end_date)."
    ),
    key=("subscription_id",),
    known_at="start_date",
    later_known=("cancelled_at",),
    columns=(
        Column("subscription_id", "string", "Contract term identifier."),
        Column("account_id", "string", "Account holding the term."),
        Column("product", "string", "Product line (cross-sell happens across products)."),
        Column("plan", "string", "Plan tier of the product (e.g. starter, pro, enterprise)."),
        Column("seats", "int64", "Paid seats.", min=0),
        Column("mrr", "float64", "Monthly recurring revenue of the term, after discount.", min=0),
        Column("start_date", "date", "First day of the term."),
        Column(
            "end_date", "date",
            "Scheduled end of the term (exclusive), known when signed; null = open-ended.",
            nullable=True,
        ),
        Column(
            "cancelled_at", "timestamp",
            "When the customer terminated (open-ended term: service stops) or gave notice "
            "(fixed term: it runs to end_date and does not renew); null = not cancelled.",
            nullable=True,
        ),
        Column("billing_period", "string",
               "How often the term is billed: one of the documented periods or a whole number "
               "of months (features use its length in months).",
               documented=BILLING_PERIODS, months=True,
               documented_note="its length in months is unknown"),
        Column("auto_renew", "bool", "Whether the term renews automatically at end_date."),
        Column("discount_pct", "float64", "Discount off list price, in percent.", min=0, max=100),
    ),
    foreign_keys=(_fk("account_id"),),
    order_rules=(OrderRule("start_date", "end_date"), OrderRule("start_date", "cancelled_at")),
)

USAGE_EVENTS = Table(
    name="usage_events",
    description=(
        "One row per product event, or per (user, day, event type) aggregate for exports that "
        "only have those; quantity is the number of events the row stands for."
    ),
    known_at="event_time",
    columns=(
        Column("account_id", "string", "Account the user belongs to."),
        Column("user_id", "string", "User who produced the event."),
        Column("event_time", "timestamp", "When the event happened (start of day for aggregates)."),
        Column("event_type", "string", "Kind of event (login, report, export, ...)."),
        Column("quantity", "int64", "Number of events this row stands for.", min=0),
    ),
    foreign_keys=(_fk("account_id"),),
)

SUPPORT_TICKETS = Table(
    name="support_tickets",
    description="One row per support ticket.",
    key=("ticket_id",),
    known_at="opened_at",
    later_known=("closed_at", "csat"),
    optional=True,
    columns=(
        Column("ticket_id", "string", "Ticket identifier."),
        Column("account_id", "string", "Account that opened the ticket."),
        Column("opened_at", "timestamp", "When the ticket was opened."),
        Column("closed_at", "timestamp", "When it was resolved; null = still open.", nullable=True),
        Column("priority", "string", "Ticket priority.", documented=TICKET_PRIORITIES,
               documented_note=OTHER_VALUES),
        Column("escalated", "bool", "Whether the ticket was escalated."),
        Column(
            "csat", "float64", "Satisfaction score 1-5 given at closure; null = none given.",
            nullable=True, min=1, max=5,
        ),
    ),
    foreign_keys=(_fk("account_id"),),
    order_rules=(OrderRule("opened_at", "closed_at"),),
)

NPS_RESPONSES = Table(
    name="nps_responses",
    description="One row per Net Promoter Score survey answer.",
    known_at="responded_at",
    optional=True,
    columns=(
        Column("account_id", "string", "Account of the respondent."),
        Column("contact_id", "string", "Contact who answered; null if anonymous.", nullable=True),
        Column("responded_at", "timestamp", "When the answer was given."),
        Column("score", "int64", "Likelihood to recommend, 0-10.", min=0, max=10),
    ),
    foreign_keys=(_fk("account_id"),),
)

CONTACTS = Table(
    name="contacts",
    description="People at the customer and their role in the relationship.",
    key=("contact_id",),
    known_at="start_date",
    later_known=("end_date",),
    optional=True,
    columns=(
        Column("contact_id", "string", "Contact identifier."),
        Column("account_id", "string", "Account the person works for."),
        Column("role", "string", "Role in the relationship.", documented=CONTACT_ROLES,
               documented_note=OTHER_VALUES),
        Column("start_date", "date", "When the person took the role."),
        Column(
            "end_date", "date", "When the person left the role; null = still in it.",
            nullable=True,
        ),
    ),
    foreign_keys=(_fk("account_id"),),
    order_rules=(OrderRule("start_date", "end_date"),),
)

ACTIVITIES = Table(
    name="activities",
    description="Account-management touchpoints logged in the CRM.",
    known_at="occurred_at",
    optional=True,
    columns=(
        Column("account_id", "string", "Account the activity was with."),
        Column("occurred_at", "timestamp", "When it happened."),
        Column("type", "string", "Kind of touchpoint (qbr = account review meeting).",
               documented=ACTIVITY_TYPES, documented_note=OTHER_VALUES),
    ),
    foreign_keys=(_fk("account_id"),),
)

HEALTH_SCORES = Table(
    name="health_scores",
    description=(
        "The customer's own account health score, as their customer-success tool (Gainsight, "
        "ChurnZero, Totango, a spreadsheet) computed it: one row per account and scoring run. "
        "Training reports how well it ranks churn and expansion beside the model, on the same "
        "rows; the `customer_score_as_feature` setting also makes its latest value a feature."
    ),
    key=("account_id", "scored_at"),
    known_at="scored_at",
    optional=True,
    columns=(
        Column("account_id", "string", "Account scored."),
        Column("scored_at", "timestamp", "When the score was computed; a snapshot at as_of "
               "reads the latest score stamped strictly before as_of."),
        Column("score", "float64", "The score on the tool's own scale (any direction: "
               "training learns whether higher means healthier)."),
        Column("label", "string", "The tool's band for the score (e.g. red / amber / green); "
               "null = none.", nullable=True, label=True),
    ),
    foreign_keys=(_fk("account_id"),),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        ACCOUNTS, SUBSCRIPTIONS, USAGE_EVENTS, SUPPORT_TICKETS, NPS_RESPONSES, CONTACTS,
        ACTIVITIES, HEALTH_SCORES,
    )
}
REQUIRED_TABLES = tuple(name for name, t in TABLES.items() if not t.optional)
OPTIONAL_TABLES = tuple(name for name, t in TABLES.items() if t.optional)

#: File next to the tables in ``raw/`` stating when the export was taken (``extracted_at``:
#: no timestamp in the tables may be later; read by ``features.sources.read_manifest``).
MANIFEST_FILE = "_manifest.json"
