"""Parameters of the synthetic B2B SaaS world the generator simulates, and its realism targets.

Arrays indexed by segment follow the order of ``contract.SEGMENTS`` (SMB, mid-market,
enterprise). Link functions are logistic in the latent health ``h`` (about N(0, 0.9) across
accounts); the intercepts were tuned so that a generated sample lands inside the ``TARGET_*``
ranges, which the tests assert.
"""

from __future__ import annotations

import numpy as np

from features.catalogue import DEFAULT_EVENT_TYPES

# --- what the world holds -------------------------------------------------------------------
SEGMENT_SHARES = np.array([0.60, 0.30, 0.10])
PRODUCTS = ("core", "analytics", "automation", "integrations")
PLANS = ("starter", "pro", "enterprise")
#: List price per seat and month, ``PRICES[product, plan]``.
PRICES = np.array(
    [
        [40.0, 75.0, 140.0],
        [15.0, 30.0, 55.0],
        [20.0, 40.0, 70.0],
        [10.0, 20.0, 35.0],
    ]
)
EVENT_TYPES = DEFAULT_EVENT_TYPES  # the usage features count exactly these one by one
INDUSTRIES = (
    "software", "financial services", "healthcare", "manufacturing", "retail", "logistics",
    "education", "media", "professional services", "energy", "telecom", "public sector",
)
INDUSTRY_WEIGHTS = np.array([16, 12, 10, 10, 9, 8, 6, 6, 10, 4, 4, 5], dtype=float)
REGIONS = ("North America", "EMEA", "APAC", "LATAM")
REGION_WEIGHTS = np.array([0.45, 0.32, 0.15, 0.08])

# --- accounts -------------------------------------------------------------------------------
EXISTING_SHARE = 0.72  # share of accounts already customers when the window starts
TENURE_GAMMA = (1.6, 16.0)  # shape, scale in months of the tenure of existing accounts
MAX_TENURE_MONTHS = 120
NEW_LOGO_MONTH_WEIGHTS = np.array([0.9, 0.9, 1.1, 0.9, 0.9, 1.0, 0.8, 0.7, 1.0, 1.2, 1.4, 1.6])
FIRST_OF_MONTH_SHARE = 0.4  # share of terms starting on the 1st; others on days 2-28
CREATED_LEAD_DAYS = 60  # an account is created in the CRM 0-60 days before its first term
ANNUAL_SHARE = np.array([0.20, 0.85, 0.95])  # share of accounts on annual (fixed) terms
MULTI_YEAR_SHARE = np.array([0.0, 0.05, 0.30])  # share of annual accounts on 24-month terms
AUTO_RENEW_SHARE = 0.7
SEATS_MEDIAN = np.array([7.0, 30.0, 120.0])
SEATS_SIGMA = np.array([0.55, 0.55, 0.65])
PLAN_PROBS = np.array([[0.55, 0.40, 0.05], [0.15, 0.65, 0.20], [0.0, 0.35, 0.65]])
#: Discount: share with none, then uniform percent range, per segment.
NO_DISCOUNT_SHARE = np.array([0.55, 0.15, 0.05])
DISCOUNT_RANGE = np.array([[5.0, 20.0], [5.0, 25.0], [10.0, 40.0]])
#: Probability of holding each product (columns: PRODUCTS) at the start, per segment.
ADOPTION_EXISTING = np.array([[1, 0.25, 0.10, 0.10], [1, 0.45, 0.25, 0.30], [1, 0.65, 0.45, 0.50]])
ADOPTION_NEW = np.array([[1, 0.15, 0.05, 0.05], [1, 0.30, 0.10, 0.15], [1, 0.45, 0.25, 0.30]])
HISTORY_SEAT_GROWTH = 1.12  # seats grew by this factor per past renewal
PARENT_POOL_SHARE = 0.30  # share of enterprise accounts that are groups with subsidiaries
CHILD_SHARE = 0.10  # share of all accounts that are subsidiaries
ACCOUNTS_PER_OWNER = 125

# --- latent health --------------------------------------------------------------------------
# Persistent (half-life ~2 years) with sudden shocks: account health drifts slowly and drops on
# events (a champion leaving, a reorg), so what the signals show up to T still holds over the
# next quarter, as in real customer-success data.
HEALTH_PHI = 0.97  # AR(1) persistence per month
HEALTH_SIGMA = 0.15  # monthly innovation
HEALTH_MU_SD = 0.55  # spread of account-level long-run health
SPONSOR_LIFT = 0.40  # long-run health added by an executive sponsor
CHAMPION_SHOCK = 0.9  # health lost when the champion leaves
RANDOM_SHOCK_RATE = 0.01  # monthly rate of other bad news (reorg, budget cut)
RANDOM_SHOCK_SIZE = 0.8

# --- churn, expansion, contraction ----------------------------------------------------------
MONTHLY_CHURN_LOGIT = np.array([-3.85, -4.8, -5.5])  # open-ended terms, per month
RENEWAL_CHURN_LOGIT = np.array([-1.6, -2.4, -3.25])  # fixed terms, at renewal
CHURN_HEALTH_SLOPE = 1.1
DISCOUNT_CHURN_SLOPE = 3.0  # logit per unit of discount share above DISCOUNT_REFERENCE
DISCOUNT_REFERENCE = 0.10
NOTICE_SHARE = 0.6  # churning fixed terms whose customer gave notice 30-90 days ahead
DECISION_LEAD_DAYS = 91  # leaving with notice is decided this many days before the end
EXPANSION_LOGIT = np.array([-4.1, -4.0, -3.8])
EXPANSION_HEALTH_SLOPE = 0.9
UPSELL_REFERENCE_GROWTH = 0.10  # truth's upsell_prob: ARR growth that counts (settings default)
CROSS_SELL_SHARE = 0.35  # of expansions, share that adopts a new product
CONTRACTION_LOGIT = -4.6
CONTRACTION_HEALTH_SLOPE = 0.9
RENEWAL_CONTRACTION_LOGIT = -2.4  # contraction is likelier when the contract is renegotiated

# --- observable signals ---------------------------------------------------------------------
# Usage (seat utilisation, active days, breadth) follows health strongly, as real usage declines
# well before a churn; account-level habits (``util_bias``, ``breadth``) blur its level, not its
# trend.
UTIL_LOGIT = np.array([0.6, -0.1, -0.7])  # seat utilisation (engaged users / seats) at h = 0
UTIL_HEALTH_SLOPE = 1.5
DAY_ACTIVITY = np.array([0.0255, 0.0235, 0.021])  # chance an engaged user is active on a weekday
DAY_HEALTH_SLOPE = 0.8
WEEKEND_FACTOR = 0.12
AUGUST_FACTOR = 0.7
LATE_DECEMBER_FACTOR = 0.35  # from December 20th
#: Per-type logit of being used on an active user-day (login is always used).
TYPE_LOGIT = np.array([0.0, -1.3, -2.6, -2.8, -3.0, -2.8, -3.6])
TYPE_HEALTH_SLOPE = 0.8
TYPE_QUANTITY = np.array([1.5, 4.0, 1.0, 1.0, 30.0, 12.0, 1.5])  # mean extra events per row
TICKETS_PER_MONTH = np.array([0.15, 0.5, 1.4])
TICKET_HEALTH_SLOPE = 0.8
CSAT_SHARE = 0.55
NPS_SURVEY_SHARE = 0.8  # accounts surveyed in their survey month (every third month)
NPS_RESPONSE = {"champion": 0.5, "economic buyer": 0.3, "executive sponsor": 0.2,
                "user": 0.3, "detractor": 0.5}
NPS_ROLE_SHIFT = {"champion": 0.5, "economic buyer": 0.0, "executive sponsor": 0.2,
                  "user": 0.0, "detractor": -2.0}
NPS_BASE = 1.3
NPS_NOISE = 0.6
NPS_ANONYMOUS_SHARE = 0.1
CHAMPION_SHARE = 0.92
ECONOMIC_BUYER_SHARE = np.array([0.5, 0.9, 0.95])
SPONSOR_SHARE = np.array([0.05, 0.35, 0.65])
USERS_PER_ACCOUNT = np.array([0.8, 2.0, 4.0])
CHAMPION_DEPARTURE_RATE = 0.015
CHAMPION_REPLACEMENT_RATE = 0.3
SPONSOR_DEPARTURE_RATE = 0.006
SPONSOR_GAIN_RATE = np.array([0.0, 0.008, 0.015])
USER_DEPARTURE_RATE = 0.01
DETRACTOR_LOGIT = -4.6
DETRACTOR_HEALTH_SLOPE = 1.5
QBR_SHARE = np.array([0.0, 0.6, 0.85])  # of mid-market / enterprise review months with a QBR
CALLS_PER_MONTH = np.array([0.15, 0.6, 1.5])
EMAILS_PER_MONTH = np.array([0.4, 1.5, 3.0])
RENEWAL_OUTREACH = 1.0  # extra calls (relative) in the 90 days before a fixed term ends
ONBOARDING_MONTHS = 3
ONBOARDING_PER_MONTH = np.array([0.8, 1.5, 2.5])

# --- realism targets (asserted by tests/simulator/test_generator.py) -------------------------
TARGET_SEGMENT_SHARE = {"SMB": (0.55, 0.65), "mid-market": (0.25, 0.35), "enterprise": (0.07, 0.13)}
TARGET_MEDIAN_ARR = {
    "SMB": (3_000, 15_000), "mid-market": (20_000, 80_000), "enterprise": (100_000, 600_000),
}
TARGET_ANNUAL_CHURN = {"SMB": (0.20, 0.40), "mid-market": (0.08, 0.20), "enterprise": (0.03, 0.12)}
TARGET_ANNUAL_EXPANSION = (0.15, 0.40)
TARGET_PARENT_SHARE = (0.07, 0.13)
TARGET_ACCOUNTS_PER_OWNER = (100, 150)
#: usage rows per active account-month: gives 40-60 million rows at 100,000 accounts x 24 months.
TARGET_USAGE_ROWS_PER_ACCOUNT_MONTH = (22, 34)

# --- the customer's own health score (health_scores) ----------------------------------------
# A customer-success tool's monthly score of known quality: 100 * sigmoid(SCALE * (health +
# noise)), noise ~ N(0, HEALTH_SCORE_NOISE) in units of latent health (whose spread across
# accounts is about 0.6-0.8), computed from the month's health and stamped on its last day.
# A share of accounts is never onboarded into the tool (no rows at all).
HEALTH_SCORE_NOISE = 0.5
HEALTH_SCORE_SCALE = 1.5
HEALTH_SCORE_COVERAGE = 0.9  # share of accounts the tool scores
HEALTH_SCORE_HOUR = 18  # the scoring run's time of day on the month's last day
HEALTH_SCORE_BANDS = ((40.0, "red"), (70.0, "amber"), (101.0, "green"))  # upper bounds
