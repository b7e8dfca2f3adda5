"""The trigger that waits for an async Upstage request in the triggerer."""
