"""Input hardening (issue 11): every hostile input ends in a one-line error and its exit code."""
