"""Notice a streaming query whose micro-batch has stopped making progress.

Why: a local Spark 4.0 micro-batch hung once in about a hundred runs, the task thread waiting for
a ``mapInArrow`` step's output while its Python worker waited to write it (docs/spark.md,
"Stalls"). Nothing in Spark times that out. Stopping the query kills the task and its worker;
the job then restarts the query from its checkpoint, which replays the micro-batch, and every
write of a micro-batch is idempotent, so nothing is lost or doubled.

Progress is anything that moves: a Spark task finishing, a stage or a job of the query starting,
a step of the job's own ``foreachBatch`` code (:meth:`StallWatch.beat`), a micro-batch completing.
Only an active trigger can stall; an idle processing-time query is just waiting.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

from pyspark.sql import SparkSession

# How long stopping a query may take (spark.sql.streaming.stopTimeout): Spark's default waits
# forever, which stopping a stalled query could.
STOP_TIMEOUT = "120s"


class StalledQueryError(RuntimeError):
    """The query kept stalling (or could not be stopped); restarting the job resumes it."""


class StallWatch:
    """Tells whether a query's active trigger has made no progress for ``timeout_seconds``.

    Args:
        spark: The query's session (its status tracker shows the query's Spark jobs).
        timeout_seconds: How long an active trigger may go without any progress.
    """

    def __init__(self, spark: SparkSession, timeout_seconds: float) -> None:
        if timeout_seconds <= 0:
            raise ValueError("the stall timeout is a positive number of seconds")
        self.timeout_seconds = timeout_seconds
        self._tracker = _status_tracker(spark)
        # Only the foreachBatch thread counts beats and only the watching loop reads them: no lock.
        self._beats = 0
        self._last: Hashable = None
        self._since = time.monotonic()

    def beat(self) -> None:
        """Record progress made outside Spark tasks (the job's own steps, e.g. a Delta write)."""
        self._beats += 1

    def reset(self) -> None:
        """Start timing afresh (a new query)."""
        self._last, self._since = None, time.monotonic()

    def stalled(self, query: Any) -> bool:
        """Whether ``query`` is in a trigger and nothing has moved for ``timeout_seconds``."""
        now = time.monotonic()
        if not query.isActive or not query.status.get("isTriggerActive"):
            self.reset()
            return False
        progress = query.lastProgress or {}
        fingerprint = (self._beats, progress.get("batchId"), self._spark_work(str(query.runId)))
        if fingerprint != self._last:
            self._last, self._since = fingerprint, now
            return False
        return now - self._since >= self.timeout_seconds

    def _spark_work(self, run_id: str) -> tuple[Any, ...]:
        """Every active stage with its finished task counts, and how many jobs the query has run.

        A streaming query's jobs, its ``foreachBatch``'s included, run in a job group named by
        its run id. Stages are taken from the whole application rather than that group: where
        the runtime names groups its own way (a platform may), work in progress must still
        count, and other work moving can only delay a restart, never cause a wrong one.
        """
        if self._tracker is None:
            return ()
        work: list[Any] = [len(self._tracker.getJobIdsForGroup(run_id))]
        for stage_id in sorted(self._tracker.getActiveStageIds()):
            stage = self._tracker.getStageInfo(stage_id)
            if stage is not None:
                work.append((stage_id, stage.currentAttemptId, stage.numCompletedTasks, stage.numFailedTasks))
        return tuple(work)


def _status_tracker(spark: SparkSession) -> Any:
    """The session's status tracker, or None where the session has no SparkContext (Spark
    Connect, e.g. Databricks standard access mode): then batches and beats alone show progress."""
    try:
        return spark.sparkContext.statusTracker()
    except Exception:  # Spark Connect has no sparkContext (and its own error types)
        return None
