"""ml1-sheet11: TU Berlin ML1, programming sheet on neural networks (contract in assignment.toml)."""
