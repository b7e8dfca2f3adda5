"""The sensor that waits for an async Upstage request and lands its results."""
