"""Experiments: compositions of problems, dynamics and rules that write results and figures."""
