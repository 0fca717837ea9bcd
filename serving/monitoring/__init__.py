"""Monitoring of the served models: input drift, score drift, realised and estimated
performance, and the retraining triggers. Lives in serving (it reads the score history and
loads models through MLflow like the rest of serving); the labels it needs are features'."""
