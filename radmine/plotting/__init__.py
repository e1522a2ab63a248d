"""Plots for radmine pipelines: functions returning matplotlib Figures."""
