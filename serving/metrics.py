"""Prometheus metrics: requests and latency by route, what is loaded, and score distributions.

Each app owns its registry (tests build many apps in one process). Request metrics come from
a plain ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware on a sub-millisecond
route); the route label is the route's path template, never the raw path, so account ids do
not explode the label set. Model and score metrics are read from the current generation at
scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
SCORE_BUCKETS = tuple(np.round(np.linspace(0.1, 1.0, 10), 1))


class Metrics:
    def __init__(self, current: Callable[[], object],
                 monitoring: Callable[[], dict | None] = lambda: None):
        self.registry = CollectorRegistry()
        self.requests = Counter("propensity_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("propensity_request_seconds", "Request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.scored = Counter("propensity_scored_accounts", "Accounts scored through the API",
                              ["source"], registry=self.registry)
        self.reloads = Counter("propensity_reloads", "Reloads by outcome", ["outcome"],
                               registry=self.registry)
        self.registry.register(GenerationCollector(current))
        self.registry.register(MonitoringCollector(monitoring))


class GenerationCollector(Collector):
    """Loaded model versions, accounts, snapshot date and score distributions."""

    def __init__(self, current: Callable[[], object]):
        self.current = current

    def collect(self):
        generation = self.current()
        info = GaugeMetricFamily("propensity_model_info", "Served model versions (value 1)",
                                 labels=["task", "version", "uri"])
        scores = GaugeMetricFamily("propensity_score_accounts",
                                   "Accounts with a probability <= le (cumulative)",
                                   labels=["score", "le"])
        accounts = GaugeMetricFamily("propensity_accounts", "Accounts in the served snapshot")
        warmed = GaugeMetricFamily("propensity_reasons_ready",
                                   "Share of accounts whose reasons are computed")
        as_of = GaugeMetricFamily("propensity_snapshot_as_of_seconds",
                                  "The served snapshot's as_of (Unix time)")
        if generation is not None:
            scorer = generation.scorer
            for task, model in scorer.models.items():
                info.add_metric([task, model.version or "", model.uri], 1)
            for column in ("churn_probability", "upsell_probability",
                           "next_best_product_probability"):
                values = scorer.cols[column]
                values = values[~np.isnan(values)]
                for le in (*SCORE_BUCKETS, float("inf")):
                    label = "+Inf" if le == float("inf") else f"{le:g}"
                    scores.add_metric([column, label], float((values <= le).sum()))
            accounts.add_metric([], len(scorer.ids))
            warmed.add_metric([], scorer.warmed())
            as_of.add_metric([], time.mktime(scorer.as_of.timetuple()))
        yield from (info, scores, accounts, warmed, as_of)


class MonitoringCollector(Collector):
    """The newest monitor result (``propensity monitor``): each feature's PSI over all
    accounts, alerts, each task's score PSI, and the ROC AUC of the newest realised and the
    newest estimated run (cross-sell pooled over products; per product in the ``_product``
    gauges, labelled ``product``). Nothing before the monitor has run."""

    def __init__(self, latest: Callable[[], dict | None]):
        self.latest = latest

    def collect(self):
        result = self.latest()
        psi = GaugeMetricFamily("propensity_feature_psi",
                                "Input drift: PSI of a feature against the training window",
                                labels=["feature", "family"])
        alerts = GaugeMetricFamily("propensity_drift_alerts",
                                   "Features on drift alert (overall or in a segment)")
        scores = GaugeMetricFamily("propensity_score_psi",
                                   "PSI of a task's probabilities against the training window",
                                   labels=["task"])
        auc = GaugeMetricFamily("propensity_monitor_roc_auc",
                                "ROC AUC of the newest run: realised (matured) or estimated",
                                labels=["task", "kind", "as_of"])
        product_scores = GaugeMetricFamily(
            "propensity_score_psi_product",
            "PSI of a product's cross-sell probabilities against the training window",
            labels=["task", "product"])
        product_auc = GaugeMetricFamily(
            "propensity_monitor_product_roc_auc",
            "ROC AUC of one product's cross-sell scores in the newest run: realised or "
            "estimated", labels=["task", "product", "kind", "as_of"])
        as_of = GaugeMetricFamily("propensity_monitor_as_of_seconds",
                                  "The monitored snapshot's as_of (Unix time)")
        if result is not None:
            for row in result.get("drift", []):
                if row.get("psi") is not None:
                    psi.add_metric([row["feature"], row.get("family", "")], row["psi"])
            alerts.add_metric([], sum(1 for r in result.get("drift", [])
                                      if r.get("alert") or r.get("segments_alerting")))
            for row in result.get("score_drift", {}).get("vs_training", []):
                if row.get("psi") is None:
                    continue
                if row.get("product") is None:
                    scores.add_metric([row["task"]], row["psi"])
                else:
                    product_scores.add_metric([row["task"], row["product"]], row["psi"])
            for kind, key in (("realised", "roc_auc"), ("estimated", "estimated_roc_auc")):
                newest: dict[tuple, dict] = {}
                for row in result.get("performance", []):
                    if row.get(key) is not None:
                        newest[row["task"], row.get("product")] = row  # runs: oldest first
                for (task, product), row in newest.items():
                    if product is None:
                        auc.add_metric([task, kind, row["as_of"]], row[key])
                    else:
                        product_auc.add_metric([task, product, kind, row["as_of"]], row[key])
            day = time.strptime(result["as_of"], "%Y-%m-%d")
            as_of.add_metric([], time.mktime(day))
        yield from (psi, alerts, scores, auc, product_scores, product_auc, as_of)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status["code"])).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - started)
