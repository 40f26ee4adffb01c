"""What the two trainers share: the options, the run around the loop and its folder,
preprocessing, schedules, resuming, saved models and their evaluation, plots, and the command
line."""
