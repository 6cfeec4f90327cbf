"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs`` from here."""

import dagster as dg

from .defs.assets import curve_features, curve_snapshots, instruments, pca_factors, raw_prints, roll_b0, spread_signals
from .defs.automation import SCHEDULES, SENSORS
from .defs.fixed import FIXED_ASSETS
from .defs.jobs import JOBS
from .defs.live import live_prints, live_prints_job, live_prints_sensor
from .resources import build_resources

ASSETS = [
    instruments,
    live_prints,
    raw_prints,
    curve_snapshots,
    curve_features,
    pca_factors,
    roll_b0,
    spread_signals,
    *FIXED_ASSETS,
]

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[*JOBS, live_prints_job],
    sensors=[*SENSORS, live_prints_sensor],
    schedules=SCHEDULES,
    resources=build_resources(),
    # One process per run: steps never fight over DuckDB's single-writer lock, and a run
    # skips ~1-2 s of subprocess start-up per step on small machines.
    executor=dg.in_process_executor,
)
