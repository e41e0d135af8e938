"""apicredits: tokenised API credits for AI workloads.

Every call is quoted, locked, metered and consumed against prepaid credits held in a
double-entry ledger; see ``apicredits.ledger`` for the money core.
"""

from __future__ import annotations

from apicredits.errors import ApicreditsError

__all__ = ["ApicreditsError", "__version__"]
__version__ = "0.1.0"
