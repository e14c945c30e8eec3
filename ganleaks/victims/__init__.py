"""What is attacked: one Victim interface, one class per kind (a training run made here, a generator or a
sample set the user brings, objects given in Python)."""
