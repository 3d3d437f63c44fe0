"""A package beside a user space file, imported by its bare name as a script would."""
