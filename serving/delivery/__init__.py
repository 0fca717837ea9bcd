"""Delivery of each daily run into the CRM: bulk files and signed webhooks.

``publish(settings, history, as_of)`` is the entry point (the run's publish step):
:mod:`~serving.delivery.changes` picks the changed accounts, :mod:`~serving.delivery.files`
writes the run's files, :mod:`~serving.delivery.webhooks` POSTs the changed accounts signed by
:mod:`~serving.delivery.signing`, and :mod:`~serving.delivery.dead_letter` keeps what failed.
"""

from serving.delivery.publish import DeliveryError, DeliveryReport, publish

__all__ = ["DeliveryError", "DeliveryReport", "publish"]
