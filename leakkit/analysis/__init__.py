"""Pure analysis over recorded series: verdicts, rates, attribution. No measurement happens here."""
from .growth import Growth, classify, slowing_down, theil_sen

__all__ = ["Growth", "classify", "slowing_down", "theil_sen"]
