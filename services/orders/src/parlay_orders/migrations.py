"""Migrations of the orders service (`parlay migrate` / `parlay dev` look here)."""

from __future__ import annotations

from parlay_orders.readmodel import MIGRATIONS

__all__ = ["MIGRATIONS"]
