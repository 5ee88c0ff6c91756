"""Where orders go: the simulated venue, the shadow venue, a ccxt exchange."""
