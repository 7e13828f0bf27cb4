"""core: NoFlo-style general-purpose components (sequences, routing, counting, output)."""
