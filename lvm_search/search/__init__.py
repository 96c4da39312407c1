"""The search: space files, Ray Tune and Optuna, the private Ray cluster and its clean-up. The only part
that imports Ray.
"""
