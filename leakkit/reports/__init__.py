"""What a user reads: the trace and bisect reports (text, HTML, DataFrames) and their plots."""
