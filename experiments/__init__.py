"""The experiment sets that answer the assignment's questions, and the report written from
their saved numbers."""
