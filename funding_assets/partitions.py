"""Partitions, defined once: UTC days from 2020-01-01 x the five venues.

Today's date is a partition (``end_offset=1``) so a funding roll at 08:00 or 16:00 can
request the partitions it changes; today's rows are replaced as the day fills in.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from .venues import VENUES

START_DATE = "2020-01-01"

daily = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)
venues = dg.StaticPartitionsDefinition(list(VENUES))
date_venue = dg.MultiPartitionsDefinition({"date": daily, "venue": venues})


def lookback(days: int) -> dg.MultiPartitionMapping:
    """Same venue, this day and the ``days`` before it."""
    return dg.MultiPartitionMapping(
        {
            "date": dg.DimensionPartitionMapping(
                "date",
                dg.TimeWindowPartitionMapping(
                    start_offset=-days, end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
            ),
            "venue": dg.DimensionPartitionMapping("venue", dg.IdentityPartitionMapping()),
        }
    )


def split_key(key: str) -> tuple[dt.date, str | None]:
    """``"2024-01-07|okx"`` (dimensions sorted by name) or ``"2024-01-07"`` -> (date, venue)."""
    date, _, venue = key.partition("|")
    return dt.date.fromisoformat(date), (venue or None)


def multi_key(date: dt.date | str, venue: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": str(date), "venue": venue})
