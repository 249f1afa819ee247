"""A channel-agnostic chat framework (updates, replies, routing, FSM). It knows nothing of loyalty."""
