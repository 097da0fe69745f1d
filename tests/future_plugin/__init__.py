"""A plugin app made for a plugin API this Levity does not provide (tests of the check)."""
