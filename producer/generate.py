"""Realistic weather telemetry and its chaos variants, derived from the event contract.

Everything random comes from one seeded ``random.Random`` (and a Faker seeded from it), so the
same seed and the same start time give byte-identical events. Faker is used only up front, to
place the devices; the per-event path is plain arithmetic on precomputed per-device state.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from faker import Faker

import contract
from contract import FIELDS, FIELDS_BY_NAME, MAX_BODY_BYTES, FieldRule

# Kinds of event the generator emits; the summary counts by these.
VALID = "valid"
LATE = "late"
DUPLICATE = "duplicate"
FILE = "file"

_REQUIRED = tuple(f for f in FIELDS if f.required)
_NUMBERS = tuple(f for f in FIELDS if f.type in ("number", "integer"))
_RANGED = tuple(f for f in _NUMBERS if f.minimum is not None or f.maximum is not None)
_ENUMS = tuple(f for f in FIELDS if f.enum)
_LENGTHS = tuple(f for f in FIELDS if f.max_length is not None and not f.format)
_BLANKABLE = tuple(f for f in FIELDS if f.pattern and not f.format and f.type == "string")
_TIME = FIELDS_BY_NAME[contract.EVENT_TIME_FIELD]
# "SS.mmmZ" for every millisecond of a minute: a list lookup beats formatting each time.
_SECONDS_SUFFIX = [f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000)]
# Version-4 and RFC 4122 variant bits of a UUID.
_UUID_MASK = ~(0xF000 << 64) & ~(0xC000 << 48)
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)
_RADIANS_PER_HOUR = 2 * math.pi / 24.0
_COMPASS = FIELDS_BY_NAME["windDirection"].enum or ()
_LOCATION_MAX = FIELDS_BY_NAME["location"].max_length


def _bounds(name: str) -> tuple[float, float]:
    rule = FIELDS_BY_NAME[name]
    return (
        float(rule.minimum if rule.minimum is not None else -math.inf),
        float(rule.maximum if rule.maximum is not None else math.inf),
    )


# The plausible-value model stays inside the contract's ranges, read from the schema.
_T_MIN, _T_MAX = _bounds("temperature")
_H_MIN, _H_MAX = _bounds("humidity")
_W_MIN, _W_MAX = _bounds("windSpeed")
_P_MAX = _bounds("precipitation")[1]  # the minimum is 0 and rain amounts are never negative


@dataclass(slots=True)
class Device:
    """One weather station: where it is, its climate, and the state it carries between readings."""

    device_id: str
    location: str
    longitude: float
    hour_shift: float  # hours from UTC to local solar time, minus 15 (the warmest hour)
    mean_temperature: float  # °C, the day's mean at this place and season
    daily_amplitude: float  # °C, half the day's swing
    humidity_swing: float  # % of humidity lost per unit of the diurnal curve
    mean_humidity: float
    mean_wind: float
    direction_index: int
    seq: int = 0
    rain_left: int = 0  # readings of the current shower still to come


@dataclass
class Plan:
    """What to generate (all rates are fractions of the events sent)."""

    seed: int | None = None
    devices: int = 50
    cities: int = 10
    start_time: datetime | None = None  # None: event times from the wall clock
    interval: float = 60.0  # simulated seconds between two readings of one device
    bad_rate: float = 0.0
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    max_lateness: float = 3600.0
    clock: Callable[[], float] = time.time


class Generated(NamedTuple):
    """One body to send, its partition key and what kind of event it is."""

    body: bytes
    partition_key: str | None
    kind: str


def make_devices(rng: random.Random, devices: int, cities: int, start: datetime) -> list[Device]:
    """Place ``devices`` stations among ``cities`` real places (Faker's land locations)."""
    fake = Faker()
    fake.seed_instance(rng.getrandbits(32))
    places: list[tuple[str, float, float]] = []
    names: set[str] = set()
    attempts = 0
    while len(places) < cities:
        lat_text, lon_text, place, _country, _tz = fake.location_on_land()
        attempts += 1
        if place in names and attempts < 20 * cities:
            continue  # prefer distinct places; past that, number the repeats
        name = place if place not in names else f"{place} {len(places) + 1}"
        name = name[: _LOCATION_MAX or None]
        names.add(name)
        places.append((name, float(lat_text), float(lon_text)))
    day_of_year = start.timetuple().tm_yday
    result = []
    for index in range(devices):
        name, lat, lon = places[index % cities] if index < cities else rng.choice(places)
        # A crude climate: warmer near the equator, seasons opposite in the two hemispheres.
        season = math.cos(2 * math.pi * (day_of_year - 196) / 365.25) * (1 if lat >= 0 else -1)
        mean = 27.0 - 0.45 * abs(lat) + season * min(abs(lat), 60) * 0.25 + rng.uniform(-2, 2)
        amplitude = rng.uniform(3.0, 7.0)
        result.append(
            Device(
                device_id=f"{fake.lexify('????').lower()}-{index:04d}",
                location=name,
                longitude=lon,
                hour_shift=lon / 15.0 - 15.0,
                mean_temperature=mean,
                daily_amplitude=amplitude,
                humidity_swing=2.5 * amplitude,
                mean_humidity=rng.uniform(45, 80),
                mean_wind=rng.uniform(1.5, 8.0),
                direction_index=rng.randrange(len(_COMPASS)),
            )
        )
    return result


class EventGenerator:
    """Yields events per the plan: valid readings mixed with late, duplicate and bad ones."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        start = plan.start_time or datetime.fromtimestamp(plan.clock(), tz=UTC)
        self.devices = make_devices(self.rng, plan.devices, plan.cities, start)
        self._start = start.timestamp() if plan.start_time else None
        self._step = plan.interval / plan.devices
        self._n = 0
        self._recent: list[tuple[bytes, str]] = []
        self._recent_at = 0
        self._bad_kinds = list(BAD_KINDS)
        self._time_cache: tuple[int, str] = (-1, "")
        self._chaos = bool(plan.bad_rate or plan.duplicate_rate or plan.late_rate)

    # --- one valid reading ------------------------------------------------------------------
    def _event_time(self) -> float:
        if self._start is None:
            return self.plan.clock()
        return self._start + self._n * self._step

    def _format(self, timestamp: float) -> str:
        """RFC 3339 UTC, milliseconds, uppercase ``Z``; strftime only once a minute (it is slow)."""
        minute, rest = divmod(int(timestamp * 1000), 60_000)
        if self._time_cache[0] != minute:
            prefix = datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:")
            self._time_cache = (minute, prefix)
        return self._time_cache[1] + _SECONDS_SUFFIX[rest]

    def _event_id(self) -> str:
        """A version-4 UUID from the seeded generator: unique, yet reproducible."""
        h = f"{(self.rng.getrandbits(128) & _UUID_MASK) | _UUID_V4:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def reading(self, device: Device, timestamp: float) -> dict[str, Any]:
        """One plausible reading of ``device`` at ``timestamp`` (advances its deviceSeq)."""
        rng = self.rng
        noise = rng.random  # (U1 - U2) * k: a cheap bell-shaped noise, sd = 0.408 * k
        # Warmest mid-afternoon (15:00 local solar time), coolest before dawn.
        diurnal = math.cos(_RADIANS_PER_HOUR * (timestamp / 3600.0 + device.hour_shift))
        temperature = device.mean_temperature + device.daily_amplitude * diurnal + (noise() - noise()) * 1.5
        if device.rain_left > 0:
            device.rain_left -= 1
        elif rng.random() < 0.01:
            device.rain_left = rng.randint(5, 60)
        raining = device.rain_left > 0
        # Humidity falls as the air warms and rises in rain.
        humidity = device.mean_humidity - device.humidity_swing * diurnal + (noise() - noise()) * 7.0
        if raining:
            humidity += 20
        # Clamp to the contract's bounds (conditional expressions: min/max calls cost 10x more).
        humidity = _H_MIN if humidity < _H_MIN else (_H_MAX if humidity > _H_MAX else humidity)
        precipitation = min(round(rng.expovariate(1 / 1.5) * 10) / 10, _P_MAX) if raining else 0.0
        wind = device.mean_wind + (3 if raining else 0) + (noise() - noise()) * 3.0
        wind = _W_MIN if wind < _W_MIN else (_W_MAX if wind > _W_MAX else wind)
        temperature = _T_MIN if temperature < _T_MIN else (_T_MAX if temperature > _T_MAX else temperature)
        if rng.random() < 0.1:
            device.direction_index = (device.direction_index + rng.choice((-1, 1))) % len(_COMPASS)
        if raining:
            conditions = "Snow" if temperature < 0 else ("Thunderstorm" if wind > 10 else "Rain")
        elif humidity > 95:
            conditions = "Fog"
        elif humidity > 80:
            conditions = "Overcast"
        elif humidity > 60:
            conditions = "Partly Cloudy"
        else:
            conditions = "Clear"
        seq = device.seq
        device.seq += 1
        return {
            "eventId": self._event_id(),
            "deviceId": device.device_id,
            "location": device.location,
            "eventTime": self._format(timestamp),
            # round(x * 100) / 100 gives the same shortest repr as round(x, 2), at half the cost.
            "temperature": round(temperature * 100) / 100,
            "humidity": round(humidity * 10) / 10,
            "windSpeed": round(wind * 100) / 100,
            "windDirection": _COMPASS[device.direction_index],
            "precipitation": precipitation,
            "conditions": conditions,
            "deviceSeq": seq,
            "schemaVersion": contract.SCHEMA_VERSION,
        }

    # --- the stream -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Generated]:
        return self

    def __next__(self) -> Generated:
        plan, rng = self.plan, self.rng
        timestamp = self._event_time()
        self._n += 1
        if not self._chaos:  # the common case, kept short
            device = self.devices[int(rng.random() * len(self.devices))]
            return Generated(orjson.dumps(self.reading(device, timestamp)), device.device_id, VALID)
        roll = rng.random()
        if roll < plan.bad_rate:
            device = self.devices[rng.randrange(len(self.devices))]
            kind = self._bad_kinds[rng.randrange(len(self._bad_kinds))]
            body = BAD_KINDS[kind](self.reading(device, timestamp), rng)
            return Generated(body, device.device_id, f"bad:{kind}")
        roll -= plan.bad_rate
        if roll < plan.duplicate_rate and self._recent:
            body, key = self._recent[rng.randrange(len(self._recent))]
            return Generated(body, key, DUPLICATE)
        roll -= plan.duplicate_rate
        kind = VALID
        if roll < plan.late_rate:
            timestamp -= rng.uniform(1.0, plan.max_lateness)
            kind = LATE
        device = self.devices[int(rng.random() * len(self.devices))]
        body = orjson.dumps(self.reading(device, timestamp))
        if plan.duplicate_rate:
            self._remember(body, device.device_id)
        return Generated(body, device.device_id, kind)

    def _remember(self, body: bytes, key: str) -> None:
        # A bounded ring of recent valid events to duplicate from (memory stays flat).
        if len(self._recent) < 1024:
            self._recent.append((body, key))
        else:
            self._recent[self._recent_at] = (body, key)
            self._recent_at = (self._recent_at + 1) % 1024


# ---------------------------------------------------------------------------------------------
# Bad events: one maker per invalid kind the contract names. Each takes a valid reading and
# breaks it in one way; the field it breaks is picked from the contract's rules.

BadMaker = Callable[[dict[str, Any], random.Random], bytes]


def _pick(rng: random.Random, rules: tuple[FieldRule, ...]) -> FieldRule:
    return rules[rng.randrange(len(rules))]


def _dump(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def _missing(event: dict[str, Any], rng: random.Random) -> bytes:
    del event[_pick(rng, _REQUIRED).name]
    return _dump(event)


def _wrong_type(event: dict[str, Any], rng: random.Random) -> bytes:
    rule = _pick(rng, _REQUIRED)
    event[rule.name] = [event[rule.name]] if rng.random() < 0.5 else {"value": event[rule.name]}
    return _dump(event)


def _boolean(event: dict[str, Any], rng: random.Random) -> bytes:
    event[_pick(rng, _NUMBERS).name] = rng.random() < 0.5
    return _dump(event)


def _numeric_string(event: dict[str, Any], rng: random.Random) -> bytes:
    rule = _pick(rng, _NUMBERS)
    event[rule.name] = str(event.get(rule.name, 1))
    return _dump(event)


def _null(event: dict[str, Any], rng: random.Random) -> bytes:
    event[_pick(rng, _REQUIRED).name] = None
    return _dump(event)


def _non_finite(event: dict[str, Any], rng: random.Random) -> bytes:
    # orjson will not write NaN, so splice the literal in by hand.
    rule = _pick(rng, _NUMBERS)
    literal = rng.choice((b"NaN", b"Infinity", b"-Infinity"))
    event[rule.name] = "@@NONFINITE@@"
    return _dump(event).replace(b'"@@NONFINITE@@"', literal)


def _out_of_range(event: dict[str, Any], rng: random.Random) -> bytes:
    rule = _pick(rng, _RANGED)
    above = rule.maximum is not None and (rule.minimum is None or rng.random() < 0.5)
    if above:
        value: float = (rule.maximum or 0) + rng.uniform(0.1, 100)
    else:
        value = (rule.minimum or 0) - rng.uniform(0.1, 100)
    if rule.type == "number":
        event[rule.name] = round(value, 2)
    else:  # away from the bound: an integer past it even when the bound is huge (floats round)
        event[rule.name] = math.ceil(value) + 1 if above else math.floor(value) - 1
    return _dump(event)


def _bad_enum(event: dict[str, Any], rng: random.Random) -> bytes:
    rule = _pick(rng, _ENUMS)
    event[rule.name] = rng.choice(("NORTH", "n", "X", "north-east"))
    return _dump(event)


def _bad_length(event: dict[str, Any], rng: random.Random) -> bytes:
    rule = _pick(rng, _LENGTHS)
    event[rule.name] = "" if rng.random() < 0.5 else "x" * ((rule.max_length or 64) + 1)
    return _dump(event)


def _blank(event: dict[str, Any], rng: random.Random) -> bytes:
    event[_pick(rng, _BLANKABLE).name] = rng.choice((" ", "   ", "\t"))
    return _dump(event)


def _bad_timestamp(event: dict[str, Any], rng: random.Random) -> bytes:
    text = event[_TIME.name]
    event[_TIME.name] = rng.choice(
        (
            text.replace("T", " "),  # space separator
            text.removesuffix("Z"),  # no offset
            text.replace("T", "t").replace("Z", "z"),  # lowercase
            text[:10],  # a date only
            "yesterday",
        )
    )
    return _dump(event)


def _future(event: dict[str, Any], rng: random.Random) -> bytes:
    # Far enough ahead to be in the future of any enqueued time, whatever the start time.
    when = datetime.fromisoformat(event[_TIME.name]) + timedelta(days=36525 + rng.randint(0, 365))
    event[_TIME.name] = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return _dump(event)


def _invalid_json(event: dict[str, Any], rng: random.Random) -> bytes:
    body = _dump(event)
    return rng.choice((body[: rng.randrange(1, len(body) - 1)], body.replace(b":", b"=", 1), body + b"}"))


def _not_utf8(event: dict[str, Any], rng: random.Random) -> bytes:
    return _dump(event).replace(b'"conditions":"', b'"conditions":"\xff\xfe', 1)


def _too_large(event: dict[str, Any], rng: random.Random) -> bytes:
    # An extra field is allowed; its size is what breaks the limit.
    event["padding"] = "x" * (MAX_BODY_BYTES + rng.randrange(1, 1024))
    return _dump(event)


def _not_object(event: dict[str, Any], rng: random.Random) -> bytes:
    return rng.choice((orjson.dumps([event]), b'"hello"', b"42", b"null", b"[]"))


# kind -> (maker, the reason code the contract gives it; "<field>" stands for the broken field)
BAD_KINDS: dict[str, BadMaker] = {
    "missing": _missing,
    "wrong_type": _wrong_type,
    "boolean": _boolean,
    "numeric_string": _numeric_string,
    "null": _null,
    "non_finite": _non_finite,
    "out_of_range": _out_of_range,
    "bad_enum": _bad_enum,
    "bad_length": _bad_length,
    "blank": _blank,
    "bad_timestamp": _bad_timestamp,
    "future_time": _future,
    "invalid_json": _invalid_json,
    "not_utf8": _not_utf8,
    "too_large": _too_large,
    "not_object": _not_object,
}

# The reason code class each bad kind must earn from the contract (``type`` means ``type:<f>``).
EXPECTED_REASON: dict[str, str] = {
    "missing": contract.MISSING,
    "wrong_type": contract.WRONG_TYPE,
    "boolean": contract.WRONG_TYPE,
    "numeric_string": contract.WRONG_TYPE,
    "null": contract.WRONG_TYPE,
    "non_finite": contract.WRONG_TYPE,
    "out_of_range": contract.OUT_OF_RANGE,
    "bad_enum": contract.NOT_IN_ENUM,
    "bad_length": contract.BAD_LENGTH,
    "blank": contract.PATTERN_MISMATCH,
    "bad_timestamp": contract.BAD_FORMAT,
    "future_time": contract.FUTURE_TIME,
    "invalid_json": contract.BODY_NOT_JSON,
    "not_utf8": contract.BODY_NOT_UTF8,
    "too_large": contract.TOO_LARGE,
    "not_object": contract.BODY_NOT_OBJECT,
}
