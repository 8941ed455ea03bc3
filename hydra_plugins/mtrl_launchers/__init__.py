"""mtrl's Hydra launchers (Hydra looks for launcher plugins in the ``hydra_plugins`` namespace only)."""
