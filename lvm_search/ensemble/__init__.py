"""Ensembles of trained models: weights fitted on validation, the ensemble folder, teachers for
distillation.
"""
