"""The knobs of the generator, with realistic defaults."""

from __future__ import annotations

from dataclasses import dataclass

from streams.settings import DAY_MS, HOUR_MS

__all__ = ["DEFAULT_START_MS", "MINUTE_MS", "GeneratorConfig"]

DEFAULT_START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Size, seed and model parameters; `validate` checks the ranges."""

    users: int = 500
    """Number of users."""
    days: int = 180
    """Length of the stream in days."""
    seed: int = 1
    """Seed of `random.Random`: the same config gives the same bytes."""
    start_ms: int = DEFAULT_START_MS
    """Event time of the stream's start (epoch ms)."""
    ties_per_user: float = 6.0
    """Mean number of ties (relationships) per user; the degree is heavy-tailed."""
    activity_alpha: float = 1.3
    """Pareto shape of user activity (smaller = heavier tail)."""
    reciprocal: float = 0.7
    """Probability that a tie is reciprocal (both sides interact); else one-sided."""
    fade: float = 0.35
    """Probability that a tie fades (a planted dormancy) once settled."""
    revive: float = 0.4
    """Probability that a faded tie revives."""
    rhythm_median_ms: int = 60 * HOUR_MS
    """Median of a tie's mean gap between touches (lognormal, clipped to `rhythm_bounds_ms`)."""
    rhythm_sigma: float = 0.9
    """Lognormal sigma of the rhythm."""
    rhythm_bounds_ms: tuple[int, int] = (12 * HOUR_MS, 10 * DAY_MS)
    """Clip of a tie's rhythm."""
    intensity_exponent: float = 0.8
    """Rhythm divided by (geometric mean activity of the pair / mean activity) ** this: busy pairs talk more."""
    regularity: float = 3.0
    """Gamma shape of the gaps around a tie's rhythm (1 = Poisson-like, larger = steadier)."""
    settled_touches: int = 10
    """Touches a tie has at least before it can fade."""
    silence_factor: tuple[float, float] = (1.3, 4.0)
    """A planted silence lasts U(lo, hi) x max(3 x rhythm, 14 days), plus a day."""
    burst: float = 0.6
    """Probability that a mention or reply on a reciprocal tie starts a reply burst (1-4 replies)."""
    noise_per_user_day: float = 0.3
    """Mean one-off interactions (mostly likes) per user per day outside any tie, scaled by activity."""

    @property
    def end_ms(self) -> int:
        """Event time of the stream's end (exclusive)."""
        return self.start_ms + self.days * DAY_MS

    def validate(self) -> None:
        """Raise `ValueError` when a parameter is out of range."""
        if self.users < 2 or self.days < 1:
            raise ValueError("need at least 2 users and 1 day")
        for name in ("reciprocal", "fade", "revive", "burst"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if self.ties_per_user <= 0 or self.activity_alpha <= 0 or self.regularity <= 0:
            raise ValueError("ties_per_user, activity_alpha and regularity must be positive")
        if self.noise_per_user_day < 0:
            raise ValueError("noise_per_user_day must be >= 0")
