"""Training: the loop, its steppers (eager, captured CUDA graphs, several processes)."""
