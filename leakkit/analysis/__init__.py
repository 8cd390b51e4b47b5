"""Pure analysis over recorded series: verdicts, rates, attribution. No measurement happens here."""
from .growth import Growth, classify, theil_sen

__all__ = ["Growth", "classify", "theil_sen"]
