"""Judging: from measured numbers to verdicts, alarms, onsets and advice.

A snapshot's verdict (collapse.judge), a run's change-point alarms and verdict ladder (alarms), the method-aware
advice (advice), the summaries every surface reads (summary), a run's state for Home (run_state) and the one
judgement per run the worker keeps beside the records. Reads records (store) and numbers (measure); draws
nothing.
"""
