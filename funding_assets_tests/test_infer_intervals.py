"""A settlement's interval when the venue's history does not say (Binance, OKX): from the
gaps between settlements, also when settlements are missing around an interval change."""

import datetime as dt

from funding_assets.clients import infer_intervals

T0 = dt.datetime(2024, 12, 6, tzinfo=dt.UTC)


def ms(*hours: float) -> list[int]:
    return [int((T0 + dt.timedelta(hours=h)).timestamp() * 1000) for h in hours]


def test_a_steady_schedule_keeps_its_interval_across_missing_settlements():
    assert infer_intervals(ms(0, 8, 32, 40), 8.0) == [8.0, 8.0, 8.0, 8.0]


def test_a_change_to_4h_while_two_settlements_are_missing_is_4h_from_the_first_print_after():
    # 00:00 (8 h), 08:00 and 16:00 missing, then a 4 h schedule: 20:00, 00:00, 04:00.
    # Formerly 20:00 was labelled 8 h: a window ending off the 8 h grid, which the
    # raw_prints_on_grid check refused (a one-year universe backfill failed on it).
    assert infer_intervals(ms(0, 20, 24, 28), 8.0) == [8.0, 4.0, 4.0, 4.0]


def test_a_change_to_hourly_after_a_missing_8h_settlement():
    # 00:00 (8 h), 08:00 missing, hourly from the 08:00 block: 09:00, 10:00 ...
    assert infer_intervals(ms(0, 9, 10, 11), 8.0) == [8.0, 1.0, 1.0, 1.0]


def test_every_inferred_window_ends_on_its_own_grid():
    times = ms(0, 8, 16, 20, 24, 25, 26, 40, 48)
    for t, hours in zip(times, infer_intervals(times, 8.0)):
        assert t % round(hours * 3_600_000) == 0, (t, hours)
