"""The imperative shells around the engine: loops, state, telemetry, secrets."""
