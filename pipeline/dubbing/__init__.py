"""Dubbing: lines placed at their cue times (timed tracks), one file per line (clips), and
lines fitted into their cue's slot (a faster request, or a local time-stretch)."""
