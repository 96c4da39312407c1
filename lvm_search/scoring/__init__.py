"""How predictions are scored: cosine and ranking metrics, the classical baselines, bootstrap intervals."""
