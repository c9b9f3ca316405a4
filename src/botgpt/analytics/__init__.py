"""Admin analytics: usage, cost, latency and reliability aggregated over a period."""
