"""What a person reads about a run: sizes, durations, rates, relative keys, phase timings,
the summary text and throttled failure logs. Prefect-free: ``flows/artifacts.py`` publishes
what these modules render."""
