"""The report's sections, grouped by what they answer: a section(summary, experiment_set,
results) returns the markdown under its set's title, every number in it from the saved summaries
or from the constants the runs were built from. course: the course's questions on training;
recipe: how the 61 % recipe was built; search: how the presets' recipes were found; presets: the
presets, their budgets and what the models learned; questions: the written questions measured
(Question 4, Question 5c)."""
