"""Serving tuned encoders: one base model, many adapters switched per request (`adapters`), and
the HTTP service over it (`app`, FastAPI; an optional extra)."""

from __future__ import annotations

from .adapters import AdapterInfo, AdapterRetriever

__all__ = ["AdapterInfo", "AdapterRetriever"]
