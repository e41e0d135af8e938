"""Metering: what each call used and cost (usage records), and the per-call receipt."""

from __future__ import annotations

from apicredits.metering.records import UsageRecord, UsageStore, insert_record

__all__ = ["UsageRecord", "UsageStore", "insert_record"]
