"""The reporting views Power BI imports: ``fact_weather_window``, ``dim_location``, ``dim_date``.

The fact view joins the synced table to the integer location keys; ``dim_date`` is a calendar
spanning the years the data covers, generated where each engine generates rows: a digits cross
join on SQL Server, ``GENERATE_SERIES`` on PostgreSQL, a recursive CTE on SQLite. The statements
are spelled with a :class:`functions.sql_target.dialects.Dialect` (names, quoting); what differs per
engine overrides the base. See docs/sql-and-powerbi.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from functions.sql_target.dialects import Dialect
from functions.sync_core import GOLD_COLUMNS

MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")  # fmt: skip
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ReportingViews:
    """The views' SQL for one engine. Subclasses override only what differs."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect, self.names = dialect, dialect.names
        # The dialect's spelling, as the statements below use it.
        self.quote: Callable[[str], str] = dialect.quote
        self.qualified: Callable[[str], str] = dialect.qualified

    def date_key(self, expr: str) -> str:
        parts = (f"EXTRACT({part} FROM {expr})" for part in ("YEAR", "MONTH", "DAY"))
        return "CAST({} * 10000 + {} * 100 + {} AS INTEGER)".format(*parts)

    def hour_of(self, expr: str) -> str:
        return f"CAST(EXTRACT(HOUR FROM {expr}) AS INTEGER)"

    def fact_view(self) -> str:
        q, n = self.quote, self.names
        measures = ", ".join(f"w.{q(c)}" for c in GOLD_COLUMNS if c not in ("location",))
        return (
            f"SELECT l.{q('location_key')}, {self.date_key('w.' + q('window_start'))} AS {q('date_key')}, "
            f"{self.hour_of('w.' + q('window_start'))} AS {q('window_hour')}, w.{q('location')}, {measures}, "
            f"w.{q('synced_at')} FROM {self.qualified(n.table)} AS w "
            f"INNER JOIN {self.qualified(n.location)} AS l ON l.{q('location')} = w.{q('location')}"
        )

    def dim_location_view(self) -> str:
        q = self.quote
        return f"SELECT {q('location_key')}, {q('location')} FROM {self.qualified(self.names.location)}"

    @staticmethod
    def _case(expr: str, names: Sequence[str]) -> str:
        whens = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(names, start=1))
        return f"CASE {expr} {whens} END"

    def date_columns(self, d: str, year: str, month: str, day: str, dow: str, iso_week: str) -> str:
        """The dim_date select list from expressions for the parts (dow: Monday = 1)."""
        q = self.quote
        return (
            f"{year} * 10000 + {month} * 100 + {day} AS {q('date_key')}, {d} AS {q('date')}, "
            f"{year} AS {q('year')}, ({month} + 2) / 3 AS {q('quarter')}, {month} AS {q('month')}, "
            f"{self._case(month, MONTH_NAMES)} AS {q('month_name')}, "
            f"{self._case(month, [m[:3] for m in MONTH_NAMES])} AS {q('month_short')}, "
            f"{year} * 100 + {month} AS {q('year_month')}, {day} AS {q('day_of_month')}, "
            f"{dow} AS {q('day_of_week')}, {self._case(dow, DAY_NAMES)} AS {q('day_name')}, "
            f"{iso_week} AS {q('iso_week')}, CASE WHEN {dow} >= 6 THEN 1 ELSE 0 END AS {q('is_weekend')}"
        )

    def dim_date_view(self) -> str:
        raise NotImplementedError

    def views(self) -> dict[str, str]:
        n = self.names
        return {
            n.dim_location_view: self.dim_location_view(),
            n.dim_date_view: self.dim_date_view(),
            n.fact_view: self.fact_view(),
        }


class SqlServerViews(ReportingViews):
    """T-SQL: a calendar from a cross join of digits, independent of ``SET DATEFIRST``."""

    def date_key(self, expr: str) -> str:
        return f"YEAR({expr}) * 10000 + MONTH({expr}) * 100 + DAY({expr})"

    def hour_of(self, expr: str) -> str:
        return f"DATEPART(HOUR, {expr})"

    def dim_date_view(self) -> str:
        q, target = self.quote, self.qualified(self.names.table)
        d = f"days.{q('date')}"
        # 1900-01-01 was a Monday: this day-of-week does not depend on SET DATEFIRST.
        dow = f"(DATEDIFF(DAY, CAST('19000101' AS DATE), {d}) % 7 + 1)"
        iso_week = f"DATEPART(ISO_WEEK, {d})"
        return (
            "WITH digits AS (SELECT v.d FROM (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), "
            "(9)) AS v(d)), "
            "numbers AS (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n FROM digits AS a "
            "CROSS JOIN digits AS b CROSS JOIN digits AS c CROSS JOIN digits AS e CROSS JOIN digits AS f), "
            f"bounds AS (SELECT DATEFROMPARTS(YEAR(MIN({q('window_start')})), 1, 1) AS first_day, "
            f"DATEFROMPARTS(YEAR(MAX({q('window_start')})), 12, 31) AS last_day FROM {target}), "
            f"days AS (SELECT DATEADD(DAY, numbers.n, bounds.first_day) AS {q('date')} FROM bounds "
            "INNER JOIN numbers ON numbers.n <= DATEDIFF(DAY, bounds.first_day, bounds.last_day)) "
            "SELECT "
            f"{self.date_columns(d, f'YEAR({d})', f'MONTH({d})', f'DAY({d})', dow, iso_week)} "
            "FROM days"
        )


class PostgresViews(ReportingViews):
    """PostgreSQL: a calendar from ``GENERATE_SERIES``."""

    def dim_date_view(self) -> str:
        q, target = self.quote, self.qualified(self.names.table)
        d = f"days.{q('date')}"

        def part(field: str) -> str:
            return f"CAST(EXTRACT({field} FROM {d}) AS INTEGER)"

        return (
            f"WITH bounds AS (SELECT MAKE_DATE(CAST(EXTRACT(YEAR FROM MIN({q('window_start')})) AS "
            "INTEGER), 1, 1) "
            f"AS first_day, MAKE_DATE(CAST(EXTRACT(YEAR FROM MAX({q('window_start')})) AS INTEGER), 12, 31) "
            f"AS last_day FROM {target}), "
            f"days AS (SELECT CAST(g.d AS DATE) AS {q('date')} FROM bounds, "
            "GENERATE_SERIES(bounds.first_day, bounds.last_day, INTERVAL '1 day') AS g(d)) "
            "SELECT "
            f"{self.date_columns(d, part('YEAR'), part('MONTH'), part('DAY'), part('ISODOW'), part('WEEK'))} "
            "FROM days"
        )


class SqliteViews(ReportingViews):
    """SQLite: a calendar from a recursive CTE (``STRFTIME`` for the parts)."""

    def date_key(self, expr: str) -> str:
        return f"CAST(STRFTIME('%Y%m%d', {expr}) AS INTEGER)"

    def hour_of(self, expr: str) -> str:
        return f"CAST(STRFTIME('%H', {expr}) AS INTEGER)"

    def dim_date_view(self) -> str:
        q, target = self.quote, self.qualified(self.names.table)
        d = f"days.{q('date')}"

        def part(fmt: str) -> str:
            return f"CAST(STRFTIME('{fmt}', {d}) AS INTEGER)"

        dow = f"((CAST(STRFTIME('%w', {d}) AS INTEGER) + 6) % 7 + 1)"
        # ISO week: the week of the year of this week's Thursday.
        iso_week = f"((CAST(STRFTIME('%j', DATE({d}, '-3 days', 'weekday 4')) AS INTEGER) - 1) / 7 + 1)"
        return (
            f"WITH RECURSIVE bounds AS (SELECT DATE(MIN({q('window_start')}), 'start of year') AS first_day, "
            f"DATE(MAX({q('window_start')}), 'start of year', '+1 year', '-1 day') AS last_day FROM "
            f"{target}), "
            f"days({q('date')}) AS (SELECT first_day FROM bounds WHERE first_day IS NOT NULL UNION ALL "
            f"SELECT DATE(days.{q('date')}, '+1 day') FROM days, bounds WHERE days.{q('date')} < "
            "bounds.last_day) "
            f"SELECT {self.date_columns(d, part('%Y'), part('%m'), part('%d'), dow, iso_week)} FROM days"
        )


def reporting_views(dialect: Dialect) -> ReportingViews:
    """The views for the dialect's engine."""
    views: dict[str, type[ReportingViews]] = {
        "sqlserver": SqlServerViews,
        "postgresql": PostgresViews,
        "sqlite": SqliteViews,
    }
    return views[dialect.name](dialect)
