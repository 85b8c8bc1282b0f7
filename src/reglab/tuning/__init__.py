"""Tuning: per-arm search with Optuna (samplers, pruners, storage), equal budgets, CV, paths."""
