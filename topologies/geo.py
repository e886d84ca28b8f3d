"""Great-circle distance and propagation delay from coordinates."""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0
#: Propagation in fibre: light at about 2/3 c, i.e. about 5 microseconds per kilometre.
US_PER_KM = 5.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in kilometres between two (latitude, longitude) points in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def propagation_delay_ms(km: float) -> float:
    """One-way propagation delay in milliseconds over `km` of fibre."""
    return km * US_PER_KM / 1000.0
