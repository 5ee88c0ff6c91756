"""A local Bybit v5-compatible exchange for tests and rehearsals (issue 10).

`LocalVenue` holds the books and one account, matched by the simulated venue;
`LocalExchange` serves it over HTTP the way ccxt's bybit client expects;
`FaultControl` lets a test break it on purpose.
"""

from bot.venues.local_exchange.auth import ApiKey
from bot.venues.local_exchange.faults import FaultControl
from bot.venues.local_exchange.server import LocalExchange
from bot.venues.local_exchange.venue import LocalVenue, LocalVenueError

__all__ = ["ApiKey", "FaultControl", "LocalExchange", "LocalVenue", "LocalVenueError"]
