"""anyedge."""
