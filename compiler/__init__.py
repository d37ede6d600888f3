"""Graph -> Graph passes and static planning (schedule and memory arena)."""
