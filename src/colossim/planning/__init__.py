"""Planning: the engines composed (training x reliability, fleets x training, reports)."""
