"""Shift service: rota, supporters, training, assignments, on-call bag, debriefs."""
