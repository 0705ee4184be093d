"""Feature selection for HDNNPs: embedded (Group Lasso / Adaptive Group Lasso) and filter baselines."""
